#pragma once

// The durable store of offline private messages on RabbitMQ: the
// implementation of actors/inbox_store.hpp that user actors get when
// `--amqp-url` is set.

#include <caf/blocking_actor.hpp>

#include <memory>
#include <string>

#include "cluster/amqp_connection.hpp"
#include "config/settings.hpp"

namespace rc {

struct durable_inbox_config {
  amqp_endpoint endpoint;
  amqp_settings amqp;
  std::shared_ptr<amqp_health> health;
};

/// The RabbitMQ queue that holds the stored private frames of `user`.
std::string inbox_queue(const amqp_settings& cfg, const std::string& user);

/// A detached (blocking) actor with its own connection, spawned once per
/// node with `spawn<caf::detached>`; it takes the messages of
/// actors/inbox_store.hpp.
///
/// Storage: one durable queue per user (`inbox_queue`), declared when a
/// frame is first stored; each frame a persistent message published to it
/// through the default exchange. `store` answers only after the broker's
/// publisher confirm; consecutive stores are confirmed as one batch (group
/// commit). `fetch` takes frames with basic.get without acknowledging them:
/// they stay unacknowledged on this connection until acked (removed) or
/// requeued, and the broker returns them to their place in the queue if
/// the connection or this node dies. Per-user queues are not deleted when
/// empty (deleting could drop frames another node holds unacknowledged).
///
/// Broker down: requests fail at once with `unavailable` while the actor
/// reconnects with backoff; tags of the lost connection are ignored.
void durable_inbox(caf::blocking_actor* self, durable_inbox_config cfg);

} // namespace rc
