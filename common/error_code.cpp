#include "common/error_code.hpp"

namespace rc {

std::string_view to_string(error_code c) {
  switch (c) {
    case error_code::bad_json: return "bad_json";
    case error_code::bad_request: return "bad_request";
    case error_code::unknown_type: return "unknown_type";
    case error_code::bad_name: return "bad_name";
    case error_code::not_member: return "not_member";
    case error_code::forbidden: return "forbidden";
    case error_code::rate_limited: return "rate_limited";
    case error_code::unavailable: return "unavailable";
    case error_code::internal: return "internal";
  }
  return "internal";
}

int http_status(error_code c) {
  switch (c) {
    case error_code::forbidden: return 403;
    case error_code::rate_limited: return 429;
    case error_code::unavailable: return 503;
    case error_code::internal: return 500;
    default: return 400;
  }
}

} // namespace rc
