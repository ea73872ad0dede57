#pragma once

#include <cstdint>
#include <string_view>

namespace rc {

/// Why a WebSocket connection ended. Each reason is logged once per session,
/// counted in `roomcast_closes_total{reason}` and mapped to one close code.
enum class close_reason : std::uint8_t {
  client_closed,     ///< the client sent a close frame or hung up
  shutdown,          ///< the node is stopping (1001 going away)
  binary_frame,      ///< binary frames are refused (1003)
  invalid_utf8,      ///< text frame that is not UTF-8 (1007)
  protocol_error,    ///< a frame breaking RFC 6455 (1002)
  too_large,         ///< message above the frame size limit (1009)
  slow_consumer,     ///< outgoing queue over its limit (1008)
  auth_expired,      ///< the JWT's `exp` passed while connected (1008)
  ping_timeout,      ///< missed too many server pings (1008)
  network_error,     ///< read or write failed (no close frame possible)
  server_error,      ///< the connection actor failed (1011)
  node_full,         ///< the node holds --max-connections already (1013 try again later)
};

inline constexpr std::size_t close_reason_count = 12;

/// The snake_case name used in logs and metrics.
std::string_view to_string(close_reason r);

/// The RFC 6455 close code sent for `r`.
std::uint16_t close_code(close_reason r);

} // namespace rc
