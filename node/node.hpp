#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <atomic>
#include <memory>

#include "config/settings.hpp"
#include "node/core_actors.hpp"

namespace rc {

namespace net {
class server;
}
class amqp_bridge;

/// One roomcast node: the actor system with its long-lived actors (room and
/// user directories, broadcaster, router) and the
/// HTTP/WebSocket server wired to them. The library's entry point: the
/// daemon and every example embed a `node`.
class node {
public:
  explicit node(settings cfg);
  ~node();

  /// Spawns the actors and starts listening; returns the bound HTTP port.
  /// Throws std::runtime_error when the port cannot be bound.
  std::uint16_t start();

  /// Graceful stop: refuse new connections, close every WebSocket with 1001
  /// after flushing its queue, wait up to `drain-timeout`, stop the actors.
  /// Idempotent.
  void shutdown();
  /// Cuts the waits of a `shutdown` in progress short (an operator's second
  /// SIGTERM): the remaining connections are closed now, and rooms and users
  /// not handed over yet are not waited for. Safe from any thread.
  void hurry() { hurry_ = true; }
  /// After `shutdown` (which it runs if need be): drops the node's handles
  /// and waits until every actor has ended; the AMQP actors finish their
  /// last publishes. What the destructor then does is CAF's own teardown.
  /// `kinds()` and `router()` are gone. Idempotent.
  void await_actors();

  /// The room kinds of this node; register them before `start`.
  room_kinds& kinds() { return *kinds_; }

  caf::actor_system& system() { return *system_; }
  const settings& config() const { return cfg_; }
  /// The router: the one entry for delivering to rooms, users and everyone.
  const caf::actor& router() const { return core_.router; }

  /// Non-zero once a fatal error made the node stop itself (it raises
  /// SIGTERM, which the daemon waits for): the process's exit code.
  int exit_code() const { return exit_code_->load(); }

private:
  settings cfg_;
  std::string node_name_;
  std::unique_ptr<caf::actor_system_config> caf_cfg_;
  std::unique_ptr<caf::actor_system> system_;
  std::unique_ptr<net::server> server_;
  std::unique_ptr<amqp_bridge> amqp_; ///< only with --amqp-url
  core_actors core_;
  std::shared_ptr<room_kinds> kinds_ = std::make_shared<room_kinds>();
  std::atomic<bool> started_{false};
  std::atomic<bool> hurry_{false};
  std::shared_ptr<std::atomic<bool>> joined_;
  std::shared_ptr<std::atomic<int>> exit_code_ = std::make_shared<std::atomic<int>>(0);

  void leave_cluster();
  bool stopped_ = false;
  bool actors_ended_ = false;
};

} // namespace rc
