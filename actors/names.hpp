#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace rc {

/// Names of rooms and users: 1 to 128 bytes of `[A-Za-z0-9_.:@-]`.
bool valid_name(std::string_view name);

/// Shell-style glob with `*` (any run) and `?` (one character), as used by
/// the JWT `rooms` claim and by room-logic patterns.
bool glob_match(std::string_view pattern, std::string_view text);

/// True when `name` matches at least one of `patterns`.
bool any_glob_match(const std::vector<std::string>& patterns, std::string_view name);

} // namespace rc
