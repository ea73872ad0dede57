#pragma once

#include <caf/stateful_actor.hpp>

#include <unordered_map>
#include <unordered_set>

#include "actors/messages.hpp"

namespace rc {

struct node_watch_state {
  /// For each watched registry, the user actors that hold it.
  std::unordered_map<caf::actor_addr, std::unordered_set<caf::actor_addr>> watchers;
  static inline const char* name = "node_watch";
};

/// Watches the user registries (`local_users`) that this node's user actors
/// deliver to, with one monitor per registry however many users hold it.
/// A monitor per user would be simpler, but CAF 0.17 keeps an actor's
/// monitors in a list that `demonitor` walks: with one entry per user, a
/// node whose N users all disconnect spends O(N^2) (4 s of CPU for 15000).
///
/// Messages:
/// - `(watch_atom, registry, user)`: `user` holds `registry` from now on.
/// - `(unwatch_atom, registry, user)`: it no longer does (or it ended).
/// - `(get_atom)` -> number of (registry, user) pairs watched.
///
/// Guarantee: when a watched registry ends (its node failed or stopped),
/// every user that holds it gets the registry's `down_msg`, exactly as if
/// it had monitored the registry itself; a watch of a registry that has
/// already ended is answered with that `down_msg` at once.
caf::behavior node_watch(caf::stateful_actor<node_watch_state>* self);

} // namespace rc
