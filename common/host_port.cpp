#include "common/host_port.hpp"

#include <algorithm>

namespace rc {

std::string join_host_port(const std::string& host, std::uint16_t port) {
  auto p = std::to_string(port);
  return host.find(':') == std::string::npos ? host + ":" + p : "[" + host + "]:" + p;
}

std::optional<host_and_port> split_host_port(const std::string& text) {
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string::npos)
      return std::nullopt;
    auto rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':')
      return std::nullopt;
    return host_and_port{text.substr(1, close - 1), rest.empty() ? rest : rest.substr(1)};
  }
  auto colon = text.rfind(':');
  if (colon == std::string::npos)
    return host_and_port{text, {}};
  return host_and_port{text.substr(0, colon), text.substr(colon + 1)};
}

std::optional<std::string> host_alone(const std::string& text) {
  if (!text.empty() && text.front() == '[') {
    auto hp = split_host_port(text);
    if (!hp || hp->host.empty() || text.back() != ']')
      return std::nullopt;
    return hp->host;
  }
  auto colons = std::count(text.begin(), text.end(), ':');
  if (text.empty() || colons == 1)
    return std::nullopt;
  return text;
}

} // namespace rc
