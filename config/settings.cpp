#include "config/settings.hpp"

#include <arpa/inet.h>
#include <unistd.h>

#include <cctype>

#include "actors/names.hpp"
#include "common/cpu_share.hpp"
#include "common/host_port.hpp"

namespace rc {

namespace {

/// Whether `text` is a numeric IPv4 or IPv6 address (with an optional
/// `%scope`), the only form the HTTP listener binds to: it resolves no names.
bool is_ip_address(const std::string& text) {
  unsigned char buf[sizeof(in6_addr)];
  auto v6 = text.substr(0, text.find('%'));
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, v6.c_str(), buf) == 1;
}

/// Whether `port` is a TCP port number, 1 to 65535 (digits only).
bool valid_port(const std::string& port) {
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
    return false;
  auto n = std::stoul(port);
  return n != 0 && n <= 65535;
}

} // namespace

std::string settings::validate() const {
  if (!is_ip_address(bind))
    return "bind must be an IPv4 or IPv6 address such as 0.0.0.0, 127.0.0.1 or ::, got '" + bind
           + "'";
  if (limits.max_frame_bytes < 64 || limits.max_frame_bytes > limits_settings::max_frame_bytes_limit)
    return "max-frame-bytes must be between 64 and 268435456 (256 MiB)";
  if (limits.max_rooms_per_connection == 0)
    return "max-rooms-per-connection must be at least 1";
  if (threads > max_threads)
    return "threads must be at most " + std::to_string(max_threads) + " (0 = the cores this process may use)";
  if (actor_threads > max_threads)
    return "actor-threads must be at most " + std::to_string(max_threads)
           + " (0 = the cores this process may use)";
  if (limits.max_queue_frames == 0)
    return "max-queue-frames must be at least 1";
  if (limits.max_queue_bytes < limits.max_frame_bytes)
    return "max-queue-bytes must be at least max-frame-bytes";
  if (limits.rate_limit <= 0)
    return "rate-limit must be positive";
  if (limits.rate_burst == 0)
    return "rate-burst must be at least 1";
  if (limits.max_connections == 0)
    return "max-connections must be at least 1";
  if (limits.handshake_timeout.count() <= 0)
    return "handshake-timeout must be positive";
  if (limits.ping_interval.count() <= 0)
    return "ping-interval must be positive";
  if (limits.max_missed_pongs == 0)
    return "max-missed-pongs must be at least 1";
  if (write_delay.count() < 0 || write_delay.count() > 1000)
    return "write-delay must be between 0 and 1s";
  if (drain_timeout.count() < 0)
    return "drain-timeout must not be negative";
  if (room_idle_timeout.count() <= 0)
    return "room-idle-timeout must be positive";
  if (failure_timeout.count() < 200)
    return "failure-timeout must be at least 200ms";
  for (auto& seed : seeds) {
    auto hp = split_host_port(seed);
    if (!hp || hp->host.empty() || !valid_port(hp->port))
      return "seeds must be host:port entries ([v6]:port for an IPv6 address), got '" +
             seed + "'";
  }
  if (!seeds.empty() && cluster_port == 0)
    return "seeds need a cluster-port";
  // Both listeners on one address: the second bind would fail.
  if (cluster_port != 0 && cluster_port == http_port && effective_cluster_bind() == bind)
    return "cluster-port must differ from http-port (both are " + std::to_string(http_port)
           + ")";
  // With a port, peers would look "host:7000" up as a name, and fail.
  if (!cluster_advertise.empty() && !host_alone(cluster_advertise))
    return "cluster-advertise is a host or address without a port (other nodes use "
           "cluster-port), got '" +
           cluster_advertise + "'";
  if (!node_name.empty() && !valid_name(node_name))
    return "node-name must be 1 to 128 characters of [A-Za-z0-9_.:@-]";
  if (!amqp.url.empty()) {
    amqp_endpoint ep;
    std::string err;
    if (!parse_amqp_url(amqp.url, ep, err))
      return "amqp-url: " + err;
    if (amqp.exchange.empty())
      return "amqp-exchange must not be empty";
    if (amqp.queue.empty())
      return "amqp-queue must not be empty";
    if (amqp.prefetch == 0 || amqp.prefetch > 65535)
      return "amqp-prefetch must be between 1 and 65535";
    if (amqp.reconnect_min.count() <= 0 || amqp.reconnect_max < amqp.reconnect_min)
      return "amqp-reconnect-min must be positive and at most amqp-reconnect-max";
  }
  static const char* levels[] = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  bool known = false;
  for (auto lvl : levels)
    known = known || log_level == lvl;
  if (!known)
    return "log-level must be one of trace, debug, info, warn, error, critical, off";
  return {};
}

namespace {

bool percent_decode(const std::string& in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    if (i + 2 >= in.size() || !std::isxdigit(static_cast<unsigned char>(in[i + 1]))
        || !std::isxdigit(static_cast<unsigned char>(in[i + 2])))
      return false;
    out += static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16));
    i += 2;
  }
  return true;
}

} // namespace

bool parse_amqp_url(const std::string& url, amqp_endpoint& out, std::string& error) {
  const std::string scheme = "amqp://";
  if (url.compare(0, scheme.size(), scheme) != 0) {
    error = "expected amqp://user:pass@host:port/vhost, got '" + mask_url_password(url) + "'";
    return false;
  }
  auto rest = url.substr(scheme.size());
  std::string path;
  if (auto slash = rest.find('/'); slash != std::string::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  amqp_endpoint ep;
  if (auto at = rest.rfind('@'); at != std::string::npos) {
    auto userinfo = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = userinfo.find(':');
    if (!percent_decode(userinfo.substr(0, colon), ep.user)
        || (colon != std::string::npos && !percent_decode(userinfo.substr(colon + 1), ep.password))) {
      error = "bad percent-encoding in the user or password of '" + mask_url_password(url) + "'";
      return false;
    }
  }
  auto hp = split_host_port(rest);
  if (!hp) {
    error = "bad host in '" + mask_url_password(url) + "'";
    return false;
  }
  ep.host = hp->host;
  if (!hp->port.empty() || (!rest.empty() && rest.back() == ':')) {
    if (!valid_port(hp->port)) {
      error = "bad port in '" + mask_url_password(url) + "'";
      return false;
    }
    ep.port = static_cast<std::uint16_t>(std::stoul(hp->port));
  }
  if (ep.host.empty()) {
    error = "no host in '" + mask_url_password(url) + "'";
    return false;
  }
  if (!path.empty() && !percent_decode(path, ep.vhost)) {
    error = "bad percent-encoding in the vhost of '" + mask_url_password(url) + "'";
    return false;
  }
  out = std::move(ep);
  return true;
}

std::string mask_url_password(std::string url) {
  auto at = url.rfind('@');
  auto start = url.find("://");
  if (at == std::string::npos || start == std::string::npos)
    return url;
  auto colon = url.find(':', start + 3);
  if (colon != std::string::npos && colon < at)
    url.replace(colon + 1, at - colon - 1, "***");
  return url;
}

std::string settings::effective_cluster_advertise() const {
  if (!cluster_advertise.empty()) // `[::1]` as in a URL: peers look it up without brackets
    return host_alone(cluster_advertise).value_or(cluster_advertise);
  auto& b = effective_cluster_bind();
  if (b != "0.0.0.0" && b != "::")
    return b;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
    return "localhost";
  return host;
}

std::string settings::default_web_root() {
#ifdef ROOMCAST_WEB_ROOT
  return ROOMCAST_WEB_ROOT;
#else
  return {};
#endif
}

std::string settings::effective_node_name() const {
  if (!node_name.empty())
    return node_name;
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
    return "roomcast";
  return host;
}

unsigned settings::effective_threads() const {
  return threads != 0 ? threads : usable_cores();
}

unsigned settings::effective_actor_threads() const {
  return actor_threads != 0 ? actor_threads : usable_cores();
}

} // namespace rc
