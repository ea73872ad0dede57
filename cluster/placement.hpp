#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rc {

/// The owner of a room or user name among the live members, by rendezvous
/// (highest random weight) hashing: every node computes the same answer from
/// the same member list, and when a member joins or leaves only the names it
/// wins or held (about 1/n of them) change owner. Pure; no I/O.
/// Returns an empty string when `members` is empty.
std::string owner_of(std::string_view name, const std::vector<std::string>& members);

/// The 64-bit score of `member` for `name` (exposed for tests).
std::uint64_t placement_score(std::string_view name, std::string_view member);

} // namespace rc
