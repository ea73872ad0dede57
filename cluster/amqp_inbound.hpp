#pragma once

// What one message from the shared inbound queue means, and where it goes:
// the logic of the AMQP consumer, kept apart from the blocking connection
// so that it runs (and is tested) as an ordinary actor.

#include <caf/event_based_actor.hpp>

#include "actors/messages.hpp"

namespace rc {

using inbound_atom = caf::atom_constant<caf::atom("inbound")>;
using verdict_atom = caf::atom_constant<caf::atom("verdict")>;

/// Name of the dead-letter queue.
inline const std::string dead_letter_queue = "roomcast.dead";

/// Spawned (linked) by the AMQP consumer, one per node.
///
/// Takes `(inbound_atom, tag, routing key, body, from, from type, message
/// id)` (the type of the `from` header: empty when there is none, `string`,
/// or another AMQP type such as `number`, then `from` is empty; the id empty
/// without a `message_id` property) and answers the sender, when the
/// message has been handed on, with `(verdict_atom, tag, bool ack)`:
/// - `room.<R>`, `user.<U>`, `broadcast` with a JSON body: routed through
///   the router as a room message, a private message or a broadcast from
///   `from` (default `amqp`; a private message keeps the `message_id` as its
///   `id`); `ack = true` once the router answered (the
///   message reached the nodes with members, or is stored for an offline
///   user). A failure (`unavailable`, timeout) answers `ack = false` after a
///   pause, so the broker redelivers it.
/// - anything else (a body that is not JSON, an unknown routing key, a bad
///   name, a `from` header that is not a valid name, empty or not a string,
///   a `message_id` over 128 bytes or not UTF-8): published to the `roomcast.dead` queue with headers
///   `x-roomcast-reason` and `x-roomcast-routing-key`, then `ack = true`;
///   `ack = false` (after a pause) if the dead-letter publish failed.
caf::behavior amqp_inbound(caf::event_based_actor* self, caf::actor router, caf::actor publisher);

} // namespace rc
