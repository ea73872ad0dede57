#include "common/close_reason.hpp"

namespace rc {

std::string_view to_string(close_reason r) {
  switch (r) {
    case close_reason::client_closed: return "client_closed";
    case close_reason::shutdown: return "shutdown";
    case close_reason::binary_frame: return "binary_frame";
    case close_reason::invalid_utf8: return "invalid_utf8";
    case close_reason::protocol_error: return "protocol_error";
    case close_reason::too_large: return "too_large";
    case close_reason::slow_consumer: return "slow_consumer";
    case close_reason::auth_expired: return "auth_expired";
    case close_reason::ping_timeout: return "ping_timeout";
    case close_reason::network_error: return "network_error";
    case close_reason::server_error: return "server_error";
    case close_reason::node_full: return "node_full";
  }
  return "unknown";
}

std::uint16_t close_code(close_reason r) {
  switch (r) {
    case close_reason::client_closed: return 1000;
    case close_reason::shutdown: return 1001;
    case close_reason::binary_frame: return 1003;
    case close_reason::invalid_utf8: return 1007;
    case close_reason::protocol_error: return 1002;
    case close_reason::too_large: return 1009;
    case close_reason::slow_consumer:
    case close_reason::auth_expired:
    case close_reason::ping_timeout: return 1008;
    case close_reason::network_error: return 1006;
    case close_reason::server_error: return 1011;
    case close_reason::node_full: return 1013;
  }
  return 1011;
}

} // namespace rc
