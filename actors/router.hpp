#pragma once

#include <caf/event_based_actor.hpp>

#include "actors/messages.hpp"

namespace rc {

/// The one entry for "deliver to room R / user U / everyone". WebSocket
/// `send`/`broadcast`, the HTTP publish API (and later AMQP) go through it,
/// never to rooms or users directly.
///
/// Messages (each answers a `uint64_t`: the room's `seq`, the number of
/// connections reached, or 0 when a user's message was kept for later):
/// - `(route_atom, room_atom, name, envelope)`
/// - `(route_atom, user_atom, name, envelope)`
/// - `(route_atom, all_atom, envelope)`
///
/// Guarantee: at most once, in order per sender and target on one node.
caf::behavior router(caf::event_based_actor* self, caf::actor rooms, caf::actor users,
                     caf::actor everyone);

} // namespace rc
