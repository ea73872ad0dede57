#pragma once

// The inbound side of the RabbitMQ bridge: every node consumes the one
// shared durable queue (competing consumers), so each message published to
// the exchange as room.<R>, user.<U> or broadcast is handled by one node.

#include <caf/blocking_actor.hpp>

#include <memory>

#include "cluster/amqp_connection.hpp"
#include "config/settings.hpp"

namespace rc {

struct amqp_consumer_config {
  amqp_endpoint endpoint;
  amqp_settings amqp;
  std::shared_ptr<amqp_health> health;
  caf::actor router;
  caf::actor publisher; ///< for dead letters (cluster/amqp_publisher.hpp)
};

/// A detached (blocking) actor with its own connection, spawned once per
/// node with `spawn<caf::detached>`. It declares the topology (durable
/// topic exchange, the shared durable queue bound to `room.#`, `user.#`,
/// `broadcast`, and `roomcast.dead`), consumes with at most `amqp-prefetch`
/// unacknowledged messages, hands each to its linked `amqp_inbound` actor
/// and acknowledges it to the broker only after that actor's verdict (the
/// message was handed on, or dead-lettered); a negative verdict requeues it.
///
/// Guarantee: at least once. A message is lost only if the broker loses it;
/// if this node or its connection dies before the ack, the broker
/// redelivers the message (to any node), so room messages and broadcasts
/// may then arrive twice; private messages carry an `id` for that case.
void amqp_consumer(caf::blocking_actor* self, amqp_consumer_config cfg);

} // namespace rc
