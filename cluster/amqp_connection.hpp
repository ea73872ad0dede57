#pragma once

// One blocking AMQP 0-9-1 connection (rabbitmq-c 0.11), and the health
// every bridge actor reports for /readyz. Owned by exactly one detached
// actor (rabbitmq-c connections must not be shared between threads).

#include <amqp.h>
#include <caf/after.hpp>
#include <caf/blocking_actor.hpp>
#include <caf/others.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/settings.hpp"

namespace rc {

/// Whether each bridge actor is connected, and why not. Thread-safe.
class amqp_health {
public:
  void up(const std::string& who);
  void down(const std::string& who, const std::string& why);
  /// Empty when every actor that reported is connected (and at least one
  /// has); otherwise "broker unavailable: <why>".
  std::string not_ready_reason() const;

private:
  mutable std::mutex mutex_;
  std::map<std::string, std::string> down_; ///< who -> why
  bool any_up_ = false;
};

/// One message to publish: persistent, with string headers.
struct amqp_outgoing {
  std::string exchange;
  std::string routing_key;
  std::string body;
  std::map<std::string, std::string> headers;
};

/// One message received (consumed or fetched with basic.get).
struct amqp_incoming {
  std::uint64_t delivery_tag = 0;
  std::string routing_key;
  std::string body;
  std::map<std::string, std::string> headers; ///< string-valued headers only
  /// The other headers: name -> their type ("number", "table", ...).
  std::map<std::string, std::string> other_headers;
  std::string message_id;                     ///< empty when not set
};

/// A connection with channel 1 for publishing/consuming and channel 2 for
/// operations that may fail with a channel error (passive declare), so such a failure never drops channel 1's unacked messages.
/// Every method returns false (or nothing) on failure, closes the
/// connection when the failure is not a channel error, and sets `error()`.
class amqp_connection {
public:
  explicit amqp_connection(amqp_endpoint ep);
  ~amqp_connection();
  amqp_connection(const amqp_connection&) = delete;
  amqp_connection& operator=(const amqp_connection&) = delete;

  /// Connects, logs in (heartbeat `heartbeat_s`) and opens both channels.
  bool open(int heartbeat_s = 10);
  void close();
  bool is_open() const { return conn_ != nullptr; }
  const std::string& error() const { return error_; }

  /// Declares the durable topic exchange, the shared inbound queue bound
  /// to `room.#`, `user.#` and `broadcast` (single active consumer), and
  /// the dead-letter queue.
  bool declare_topology(const amqp_settings& cfg);
  /// Declares a durable queue (idempotent for the same `arguments`).
  bool declare_queue(const std::string& queue, amqp_table_t arguments = amqp_empty_table);
  /// Number of ready messages in `queue`, or nullopt when it does not exist
  /// (or on failure: then `is_open()` is false).
  std::optional<std::uint32_t> probe_queue(const std::string& queue);
  /// True if `exchange` exists; otherwise fails (closes the connection), so
  /// that reconnecting declares it and its bindings again.
  bool check_exchange(const std::string& exchange);

  /// Puts channel 1 in confirm mode.
  bool confirm_select();
  /// Publishes persistent messages (mandatory) and waits up to `timeout`
  /// for the broker's confirms. `ok[i]` says whether message i was
  /// confirmed and routed to a queue. Returns false if the connection failed.
  bool publish_confirmed(const std::vector<amqp_outgoing>& msgs, std::vector<bool>& ok,
                         std::chrono::milliseconds timeout);

  /// Fetches one message from `queue` without acknowledging it.
  /// nullopt when empty or on failure (check `is_open()`).
  std::optional<amqp_incoming> get(const std::string& queue);
  bool ack(std::uint64_t delivery_tag);
  bool reject(std::uint64_t delivery_tag, bool requeue);

  /// Starts consuming `queue` with at most `prefetch` unacked messages.
  bool consume(const std::string& queue, std::uint16_t prefetch);
  /// Waits up to `timeout` for one delivery. nullopt on timeout or failure
  /// (check `is_open()`).
  std::optional<amqp_incoming> next_delivery(std::chrono::milliseconds timeout);

  /// Reads what the broker sent meanwhile (heartbeats, a close) without
  /// blocking; false if the connection is gone.
  bool poll();

private:
  bool check_rpc(const char* what);
  bool fail(const std::string& why);
  bool reopen_probe_channel();
  bool handle_unexpected_frame(const amqp_frame_t& frame);

  amqp_endpoint ep_;
  amqp_connection_state_t conn_ = nullptr;
  std::string error_;
  std::uint64_t next_publish_seq_ = 1;
  bool confirming_ = false;
};

/// A connection that reconnects with exponential backoff, for one bridge
/// actor: `ensure()` opens it (and runs `setup`) when an attempt is due,
/// reporting to the shared health. Delivery tags of earlier connections are
/// recognisable by their generation (`tag()` / `current()`).
class amqp_link {
public:
  using setup_fn = std::function<bool(amqp_connection&)>;

  amqp_link(std::string who, amqp_endpoint ep, const amqp_settings& cfg,
            std::shared_ptr<amqp_health> health, setup_fn setup);

  /// True when open; otherwise tries to open if the backoff has passed.
  bool ensure();
  /// Reports a failure seen on the connection (it is closed by now).
  void lost();
  bool is_open() const { return conn_.is_open(); }
  amqp_connection& conn() { return conn_; }
  const std::string& who() const { return who_; }
  /// Time until the next attempt while closed (for receive timeouts).
  std::chrono::milliseconds until_next_attempt() const;

  /// A delivery tag of the current connection, made unique across connections.
  std::uint64_t tag(std::uint64_t delivery_tag) const {
    return (generation_ << 40) | delivery_tag;
  }
  /// The delivery tag if `tag` belongs to the current connection.
  std::optional<std::uint64_t> current(std::uint64_t tag) const;

private:
  std::string who_;
  amqp_connection conn_;
  duration min_, max_, backoff_;
  std::shared_ptr<amqp_health> health_;
  setup_fn setup_;
  std::uint64_t generation_ = 0;
  std::chrono::steady_clock::time_point next_attempt_{};
  std::string last_error_;
};

/// Publishes `msgs` with one wait for confirms (`ok[i]`: confirmed and
/// routed). A message to a queue through the default exchange that the
/// broker refused or returned (RabbitMQ returns it as unroutable when the
/// queue was deleted under us) is published once more after its queue is
/// declared again. Reports a lost connection to `link`.
void publish_redeclaring(amqp_link& link, const std::vector<amqp_outgoing>& msgs,
                         std::vector<bool>& ok, std::chrono::milliseconds timeout);

/// The mailbox loop of a publishing bridge actor: waits for a message (or
/// the next reconnection attempt, or an idle poll of the connection), takes
/// everything queued behind it, then calls `flush` so that publishes that
/// arrived together are confirmed together. `handlers(receive)` must call
/// `receive(...)` with the actor's own handlers; the loop adds the rest: an
/// exit message ends it (after a last `flush`), anything unexpected is
/// logged as from `who` and dropped without a reply.
template <class Handlers, class Flush>
void run_bridge_loop(caf::blocking_actor* self, amqp_link& link, const char* who,
                     Handlers handlers, Flush flush) {
  constexpr auto idle_poll = std::chrono::milliseconds{1000};
  bool running = true;
  auto on_exit = [&](caf::exit_msg&) { running = false; };
  auto on_other = [who](caf::message_view& x) -> caf::result<caf::message> {
    spdlog::warn("{}: dropped unexpected message {}", who, caf::to_string(x.content()));
    return caf::message{};
  };
  while (running) {
    link.ensure();
    auto wait = link.is_open() ? idle_poll : std::min(idle_poll, link.until_next_attempt());
    bool idle = false;
    handlers([&](auto&&... hs) {
      self->receive(std::forward<decltype(hs)>(hs)..., on_exit, caf::others >> on_other,
                    caf::after(wait) >> [&] { idle = true; });
    });
    while (running && self->has_next_message())
      handlers([&](auto&&... hs) {
        self->receive(std::forward<decltype(hs)>(hs)..., on_exit, caf::others >> on_other);
      });
    flush();
    if (idle && link.is_open() && !link.conn().poll())
      link.lost();
  }
  link.conn().close();
}

} // namespace rc
