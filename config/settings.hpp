#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace rc {

using duration = std::chrono::milliseconds;

/// The longest value any duration setting takes (365 days): the clocks count
/// nanoseconds, so a few hundred years added to now overflows them.
constexpr duration max_duration = std::chrono::hours{24 * 365};

/// Per-connection and per-node limits. Every limit is explicit and
/// configurable; the defaults are the ones PROTOCOL.md and the docs promise.
struct limits_settings {
  /// Largest inbound WebSocket message in bytes; larger closes with 1009.
  std::uint64_t max_frame_bytes = 64 * 1024;
  /// The largest `max_frame_bytes` allowed: a message is held whole in memory.
  static constexpr std::uint64_t max_frame_bytes_limit = std::uint64_t{256} << 20;
  /// Outgoing frames queued per connection before it is closed (1008 slow_consumer).
  std::uint64_t max_queue_frames = 1024;
  /// Outgoing bytes queued per connection before it is closed (1008 slow_consumer).
  std::uint64_t max_queue_bytes = 4 * 1024 * 1024;
  /// Sustained requests per second per connection (token bucket refill rate).
  double rate_limit = 100;
  /// Requests a connection may send in a burst above the rate.
  std::uint64_t rate_burst = 200;
  /// Open WebSocket connections per node; further upgrades succeed only to
  /// be closed with 1013 `node_full` (a browser cannot read an HTTP status).
  std::uint64_t max_connections = 100000;
  /// Time from TCP accept to a completed WebSocket handshake.
  duration handshake_timeout{10000};
  /// Interval of server pings to every connection.
  duration ping_interval{20000};
  /// Unanswered pings after which a connection is closed.
  std::uint64_t max_missed_pongs = 2;
  /// Private messages kept per offline user on this node.
  std::uint64_t inbox_limit = 1000;
  /// Bytes all memory inboxes of this node may hold together.
  std::uint64_t inbox_memory = 256 * 1024 * 1024;
  /// Rooms one connection may be a member of at once.
  std::uint64_t max_rooms_per_connection = 1000;
};

/// The RabbitMQ bridge (cluster/amqp_*). Off while `url` is empty: the node
/// then keeps offline private messages in memory, as without a broker.
struct amqp_settings {
  /// `amqp://user:pass@host:port/vhost`; empty = no broker.
  std::string url;
  /// Durable topic exchange that other services publish to.
  std::string exchange = "roomcast";
  /// Durable queue shared by every node (competing consumers), bound to
  /// `room.#`, `user.#` and `broadcast`.
  std::string queue = "roomcast.inbound";
  /// Also publish every room message as `event.room.<R>`.
  bool events = false;
  /// Unacknowledged inbound messages one node holds at most.
  std::uint64_t prefetch = 100;
  /// First and largest wait between reconnection attempts (doubling).
  duration reconnect_min{200};
  duration reconnect_max{5000};
};

/// Where `amqp-url` points, parsed.
struct amqp_endpoint {
  std::string user = "guest";
  std::string password = "guest";
  std::string host;
  std::uint16_t port = 5672;
  std::string vhost = "/";
};

/// Parses `amqp://[user[:pass]@]host[:port][/vhost]` (the vhost
/// percent-decoded; none = `/`). Returns false with `error` set otherwise.
bool parse_amqp_url(const std::string& url, amqp_endpoint& out, std::string& error);

/// `amqp://user:secret@host` -> `amqp://user:***@host`, for logs and errors.
std::string mask_url_password(std::string url);

/// The whole configuration of a node. Defaults live here, next to their
/// documentation; config/loader.cpp layers file < environment < command line.
struct settings {
  /// Address the HTTP/WebSocket listener binds to: numeric IPv4 or IPv6
  /// (`validate` refuses host names, which the listener does not resolve).
  std::string bind = "0.0.0.0";
  /// HTTP/WebSocket port; 0 picks a free port and logs it.
  std::uint16_t http_port = 8080;
  /// This node's name in `welcome` frames, logs and metrics; empty = host name.
  std::string node_name;
  /// While an I/O thread is behind (`write_delay_min_lag_us`), a socket
  /// written less than this long ago keeps further frames queued for at
  /// most this long, so they leave in one write (fewer system calls under
  /// load, for up to this much latency); 0 = every frame is written at once.
  duration write_delay{5};
  /// Mean wait, in microseconds, of an I/O thread's write kicks from which
  /// the write delay applies to its sockets (until they wait less than
  /// half); 0 = always.
  std::uint32_t write_delay_min_lag_us = 300;
  /// Asio I/O threads; 0 = the cores this process may use (usable_cores()).
  std::uint32_t threads = 0;
  /// CAF scheduler threads; 0 = the cores this process may use (usable_cores()).
  std::uint32_t actor_threads = 0;
  /// The most of either kind of thread a node may be given.
  static constexpr std::uint32_t max_threads = 256;
  /// HS256 secret for client JWTs; empty = development mode (`?user=`, `anon-<n>`).
  std::string jwt_secret;
  /// Key required by `POST /api/publish` (`Authorization: apikey K`); empty = open.
  std::string api_key;
  /// Allowed `Origin` values for WebSocket upgrades; empty = any origin.
  std::vector<std::string> allowed_origins;
  /// Whether clients may send `broadcast` requests (`forbidden` otherwise).
  bool allow_broadcast = true;
  /// How long a room with no members lives before its actor stops.
  duration room_idle_timeout{30000};
  /// How long a graceful stop may take to flush and close connections.
  duration drain_timeout{10000};
  /// CAF remoting port of the cluster; 0 = a single node, no clustering.
  std::uint16_t cluster_port = 0;
  /// Address the cluster port binds to; empty = the `bind` address.
  std::string cluster_bind;
  /// Host other nodes use to reach this one; empty = `cluster-bind` (or the
  /// host name when that is 0.0.0.0).
  std::string cluster_advertise;
  /// Cluster members to contact first, as host:port of their cluster port.
  std::vector<std::string> seeds;
  /// A frozen or unreachable node is declared down after this long.
  duration failure_timeout{3000};
  /// spdlog level: trace, debug, info, warn, error, critical, off.
  std::string log_level = "info";
  /// Directory whose files are served over HTTP GET (`/` is its `index.html`:
  /// the demo chat page); empty = serve no files. The default is the source
  /// tree's `web/` (the build's ROOMCAST_WEB_ROOT).
  std::string web_root = default_web_root();
  limits_settings limits;
  amqp_settings amqp;

  /// Checks values that parse but make no sense together; returns a message
  /// naming the option, or an empty string when everything is fine.
  std::string validate() const;

  /// The host other nodes use to reach this one's cluster port.
  std::string effective_cluster_advertise() const;
  /// What the cluster port binds to: `cluster_bind`, or else `bind`.
  const std::string& effective_cluster_bind() const {
    return cluster_bind.empty() ? bind : cluster_bind;
  }

  /// node_name, or the host name when it is empty.
  std::string effective_node_name() const;

  /// `threads` and `actor_threads`, 0 resolved to the cores this process may
  /// use (common/cpu_share.hpp).
  unsigned effective_threads() const;
  unsigned effective_actor_threads() const;

  /// The compiled-in default of `web_root` (ROOMCAST_WEB_ROOT, or empty).
  static std::string default_web_root();
};

} // namespace rc
