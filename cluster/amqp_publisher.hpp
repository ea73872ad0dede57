#pragma once

// Publishing to RabbitMQ with publisher confirms: dead letters for the
// inbound consumer and (with `--amqp-events`) room events.

#include <caf/blocking_actor.hpp>

#include <memory>

#include "cluster/amqp_connection.hpp"
#include "config/settings.hpp"

namespace rc {

struct amqp_publisher_config {
  amqp_endpoint endpoint;
  amqp_settings amqp;
  std::shared_ptr<amqp_health> health;
};

/// A detached (blocking) actor with its own connection in confirm mode,
/// spawned once per node with `spawn<caf::detached>`.
///
/// Messages:
/// - `(publish_atom, exchange, routing key, body, std::map<string,string> headers)`
///   -> `ok_atom` once the broker confirmed the persistent message and routed
///   it to a queue; error `unavailable` otherwise (not connected, nacked,
///   unroutable, no confirm within 5 s).
/// - `(publish_atom, room, from, frame text)` from rooms: publishes the
///   frame to the exchange as `event.room.<room>` with header `from`. Best effort: dropped (and counted in the log) while the broker
///   is unavailable; in order per room otherwise.
///
/// Publishes that arrive together are confirmed with one wait (group commit).
void amqp_publisher(caf::blocking_actor* self, amqp_publisher_config cfg);

} // namespace rc
