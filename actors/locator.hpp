#pragma once

#include <caf/event_based_actor.hpp>

#include "actors/messages.hpp"
#include "common/metrics.hpp"

namespace rc {

/// The locator answers where a room or user lives and who reaches everyone.
/// Actors ask it instead of knowing about nodes:
/// - `(locate_atom, room_atom, name)` -> the owner node's room directory
/// - `(locate_atom, user_atom, name)` -> the owner node's user directory
/// - `(locate_atom, all_atom)` -> `std::vector<caf::actor>`: every node's broadcaster
///
/// On a single node this local locator answers with the node's own actors;
/// in a cluster the membership actor (cluster/membership.hpp) answers.
caf::behavior local_locator(caf::event_based_actor* self, caf::actor rooms, caf::actor users,
                            caf::actor everyone);

/// Counts a message about to go from `self` to `dest` as inter-node traffic
/// of `kind` when `dest` lives on another node.
template <class Self, class Kind>
void count_if_remote(Self* self, const caf::actor& dest, Kind kind) {
  if (dest && dest.node() != self->node())
    metrics::global().count_cluster(kind);
}

} // namespace rc
