#pragma once

#include <cstdint>
#include <string_view>

namespace rc {

/// Client-visible error codes of PROTOCOL.md. All of them answer a request
/// with an `error` frame (or an HTTP 4xx/5xx body); the connection stays open.
enum class error_code : std::uint8_t {
  bad_json,      ///< the frame (or body) is not a JSON object
  bad_request,   ///< a field is missing or has the wrong type
  unknown_type,  ///< `type` names no request
  bad_name,      ///< a room or user name breaks the naming rule
  not_member,    ///< publish/leave in a room the connection has not joined
  forbidden,     ///< not allowed by the token's rooms or by configuration
  rate_limited,  ///< over the per-connection request rate
  unavailable,   ///< temporarily impossible; try again
  internal,      ///< a bug or an unexpected failure on our side
};

inline constexpr std::size_t error_code_count = 9;

std::string_view to_string(error_code c);

/// The HTTP status the publish API answers with for `c`.
int http_status(error_code c);

} // namespace rc
