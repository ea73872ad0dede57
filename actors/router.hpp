#pragma once

#include <caf/event_based_actor.hpp>

#include "actors/messages.hpp"

namespace rc {

/// The one entry for "deliver to room R / user U / everyone", wherever they
/// live in the cluster. WebSocket `send`/`broadcast`, the HTTP publish API
/// (and the AMQP bridge) go through it, never to rooms or users directly.
///
/// Messages (each answers a `uint64_t`: the room's `seq` (0 when the room
/// has no members anywhere), the number of nodes a private message went to
/// (0 = kept for an offline user), or the number of nodes a broadcast went to):
/// - `(route_atom, room_atom, name, envelope)`
/// - `(route_atom, user_atom, name, envelope)`
/// - `(route_atom, all_atom, envelope)`
///
/// Guarantee: at most once; in order per sender and target while the
/// target does not move between nodes. A request passed to another node is
/// answered `unavailable` as soon as that node is declared down.
caf::behavior router(caf::event_based_actor* self, caf::actor locator);

} // namespace rc
