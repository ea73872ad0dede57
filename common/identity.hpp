#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace rc {

/// Who is on the other end of a WebSocket, as established at the upgrade.
struct identity {
  std::string user;
  /// Glob patterns (`chat:*`) from the token's `rooms` claim; empty and
  /// `restricted == false` means every room.
  std::vector<std::string> room_globs;
  bool restricted = false;
  /// When the token stops being valid (its `exp`), if it has one.
  std::optional<std::chrono::system_clock::time_point> expires;
};

} // namespace rc
