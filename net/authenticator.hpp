#pragma once

#include <atomic>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "common/identity.hpp"
#include "config/settings.hpp"

namespace rc::net {

/// An HTTP refusal of an upgrade: status, error code and message.
struct http_refusal {
  unsigned status;
  std::string code;
  std::string message;
};

/// Establishes who opens a WebSocket, per PROTOCOL.md "Identity": an HS256
/// JWT (query `token` or `Authorization: Bearer`) when a secret is set,
/// otherwise `?user=` or a generated `anon-<n>`. Thread-safe.
class authenticator {
public:
  explicit authenticator(const settings& cfg);

  /// `token` is the decoded query value and `bearer` the Authorization
  /// header's token ("" when absent); `user` is the decoded `?user=` value,
  /// none when absent (an empty `?user=` is an invalid name, not anonymous).
  std::variant<identity, http_refusal> resolve(std::string_view token, std::string_view bearer,
                                               std::optional<std::string_view> user);

private:
  std::variant<identity, http_refusal> verify_jwt(const std::string& token) const;

  std::string secret_;
  std::atomic<std::uint64_t> anon_counter_;
};

} // namespace rc::net
