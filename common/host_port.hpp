#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace rc {

/// `host:port`, an IPv6 address in brackets as in a URL: `[::1]:9000`.
std::string join_host_port(const std::string& host, std::uint16_t port);

struct host_and_port {
  std::string host; ///< without brackets
  std::string port; ///< the text after the colon; empty if there is none
};

/// Splits `host:port`, `[v6]:port` or `[v6]` (brackets removed from the
/// host); a bare IPv6 address with a port (`::1:9000`) splits at its last
/// colon. Nothing when a bracket is not closed or is followed by anything
/// but `:port`. The port is not checked.
std::optional<host_and_port> split_host_port(const std::string& text);

/// A host given without a port: `[v6]` (brackets removed), a bare IPv6
/// address (two or more colons) or a name or IPv4 address (none). Nothing
/// for a text with a port (`host:7000`, `[v6]:7000`) or a bracket not closed.
std::optional<std::string> host_alone(const std::string& text);

} // namespace rc
