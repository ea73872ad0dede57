#include "net/authenticator.hpp"

#include <jwt.h>

#include <memory>
#include <optional>
#include <random>
#include <nlohmann/json.hpp>

#include "actors/names.hpp"

namespace rc::net {

namespace {

/// Anonymous names are users like any other: two clients with one name get
/// each other's private messages. A counter per process starting at a
/// random 64-bit value keeps names apart across nodes and restarts.
std::uint64_t random_start() {
  std::random_device rd;
  return (std::uint64_t{rd()} << 32) ^ rd();
}

/// A claim of the token as JSON (discarded when it is not JSON), or none
/// when the token lacks it. libjwt's typed getters would read a fractional
/// NumericDate as 0.
std::optional<nlohmann::json> claim(jwt_t* jwt, const char* name) {
  char* text = jwt_get_grants_json(jwt, name);
  if (text == nullptr)
    return std::nullopt;
  std::unique_ptr<char, decltype(&free)> owned{text, &free};
  return nlohmann::json::parse(text, nullptr, false);
}

} // namespace

authenticator::authenticator(const settings& cfg)
  : secret_(cfg.jwt_secret), anon_counter_(random_start()) {
}

std::variant<identity, http_refusal> authenticator::resolve(std::string_view token,
                                                            std::string_view bearer,
                                                            std::optional<std::string_view> user) {
  if (!secret_.empty()) {
    // Two different tokens: checking only one would let the other, maybe
    // bad or another user's, through unnoticed.
    if (!token.empty() && !bearer.empty() && token != bearer)
      return http_refusal{401, "unauthorized",
                          "two different tokens (?token= and Authorization: Bearer); send one"};
    std::string jwt{!token.empty() ? token : bearer};
    if (jwt.empty())
      return http_refusal{401, "unauthorized", "a token is required (?token= or Authorization: Bearer)"};
    return verify_jwt(jwt);
  }
  // A client that brings a token believes it is who the token says: naming
  // it anon-<n> instead would lose its private messages without a word.
  if (!token.empty() || !bearer.empty())
    return http_refusal{401, "unauthorized",
                        "this node has no --jwt-secret and cannot check tokens; in development, "
                        "connect with ?user=NAME"};
  identity who;
  if (user) {
    if (!valid_name(*user))
      return http_refusal{400, "bad_name", "user must be 1 to 128 characters of [A-Za-z0-9_.:@-]"};
    who.user = std::string{*user};
  } else {
    who.user = "anon-" + std::to_string(++anon_counter_);
  }
  return who;
}

std::variant<identity, http_refusal> authenticator::verify_jwt(const std::string& token) const {
  auto refuse = [](std::string message) {
    return http_refusal{401, "unauthorized", std::move(message)};
  };
  jwt_t* raw = nullptr;
  if (jwt_decode(&raw, token.c_str(), reinterpret_cast<const unsigned char*>(secret_.data()),
                 static_cast<int>(secret_.size()))
        != 0
      || raw == nullptr)
    return refuse("invalid token");
  std::unique_ptr<jwt_t, decltype(&jwt_free)> jwt{raw, &jwt_free};
  // A key was supplied, but insist on the one algorithm we accept. libjwt
  // matches the header's `alg` case-insensitively; RFC 7515 does not.
  const char* alg = jwt_get_header(jwt.get(), "alg");
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256 || alg == nullptr
      || std::string_view{alg} != "HS256")
    return refuse("token must be signed with HS256");
  identity who;
  const char* sub = jwt_get_grant(jwt.get(), "sub");
  if (sub == nullptr || !valid_name(sub))
    return refuse("token claim 'sub' is missing or not a valid user name");
  who.user = sub;
  // `exp` is a NumericDate and may have a fraction (RFC 7519).
  if (auto exp = claim(jwt.get(), "exp")) {
    if (!exp->is_number())
      return refuse("token claim 'exp' must be a number");
    auto seconds = exp->get<double>();
    // The clock counts nanoseconds since 1970 in 64 bits, up to 2262: an
    // `exp` beyond that would wrap into the past. Such a token outlives the
    // process, so it gets no expiry; one as far before 1970 has expired.
    constexpr double clock_range = 9.2e9; // seconds, just inside 2^63 ns
    if (seconds < -clock_range)
      return refuse("token has expired");
    if (seconds < clock_range) {
      auto expires = std::chrono::system_clock::time_point{
        std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::duration<double>{seconds})};
      if (expires <= std::chrono::system_clock::now())
        return refuse("token has expired");
      who.expires = expires;
    }
  }
  // `nbf`: not before (RFC 7519 4.1.5); a NumericDate like `exp`.
  if (auto nbf = claim(jwt.get(), "nbf")) {
    if (!nbf->is_number())
      return refuse("token claim 'nbf' must be a number");
    auto now = std::chrono::duration<double>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
    if (nbf->get<double>() > now)
      return refuse("token is not valid yet (claim 'nbf' is in the future)");
  }
  if (auto list = claim(jwt.get(), "rooms")) {
    if (!list->is_array())
      return refuse("token claim 'rooms' must be a list of patterns");
    for (auto& p : *list) {
      if (!p.is_string())
        return refuse("token claim 'rooms' must be a list of patterns");
      who.room_globs.push_back(p.get<std::string>());
    }
    who.restricted = true;
  }
  return who;
}

} // namespace rc::net
