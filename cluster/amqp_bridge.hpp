#pragma once

// The RabbitMQ bridge of one node, assembled: the publisher, the durable
// inbox and the consumer (each a detached actor with its own connection),
// and their health for /readyz. Exists only when `--amqp-url` is set.

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <memory>
#include <string>

#include "cluster/amqp_connection.hpp"
#include "config/settings.hpp"
#include "node/core_actors.hpp"

namespace rc {

class amqp_bridge {
public:
  /// Spawns the publisher and the durable inbox; the core actors use them.
  /// Never blocks on the broker: each actor connects (and reconnects) by itself.
  amqp_bridge(caf::actor_system& sys, const settings& cfg);

  /// The durable inbox for user actors; room events when `amqp-events` is on.
  core_services services() const;

  /// Starts consuming the shared inbound queue into `router`.
  void start_consuming(const caf::actor& router);

  /// Empty while every bridge actor is connected; otherwise why not.
  std::string not_ready_reason() const { return health_->not_ready_reason(); }

  /// Stops taking inbound messages (unacked ones go back to the broker).
  void stop_consuming();

  /// Stops every bridge actor.
  void stop();

private:
  caf::actor_system& sys_;
  amqp_endpoint endpoint_;
  amqp_settings amqp_;
  std::shared_ptr<amqp_health> health_;
  caf::actor publisher_;
  caf::actor inbox_;
  caf::actor consumer_;
};

} // namespace rc
