#pragma once

// The version of what nodes send each other: the CAF types of
// actors/messages.hpp and cluster/membership.hpp, and the messages built of
// them. CAF 0.17 does not version them, and a node cannot read a type whose
// layout changed, so nodes of two builds whose messages differ must not form
// one cluster: a move between them would fail and lose what it carried.

#include <cstdint>
#include <string>
#include <string_view>

namespace rc {

/// This build's wire version (cluster/wire_version.cpp). Bump it whenever a
/// message between nodes changes: the layout of a type that crosses nodes
/// (tests/unit/wire_test.cpp holds their bytes and fails until it is
/// bumped), or the arguments of a message a node sends another node's
/// actors (adopt, handoff, fan-out, ...), which no test can tell.
std::uint32_t wire_version();

/// A node carries its wire version in its incarnation id (`node_info`,
/// whose layout must never change): "<random>/w<version>".
inline constexpr std::string_view wire_version_tag = "/w";

/// The wire version an incarnation names; 0 for a build before versions.
inline std::uint32_t wire_version_of(std::string_view incarnation) {
  auto at = incarnation.rfind(wire_version_tag);
  if (at == std::string_view::npos)
    return 0;
  std::uint32_t version = 0;
  for (auto c : incarnation.substr(at + wire_version_tag.size())) {
    if (c < '0' || c > '9')
      return 0;
    version = version * 10 + static_cast<std::uint32_t>(c - '0');
  }
  return version;
}

} // namespace rc
