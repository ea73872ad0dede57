#pragma once

#include <caf/stateful_actor.hpp>

#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "actors/move_state.hpp"
#include "config/settings.hpp"

namespace rc {

struct user_state {
  std::string user;
  /// The `local_users` registries of the nodes with connections of this user.
  std::vector<caf::actor> nodes;
  /// Private frames (JSON text) for a user with no connection, oldest first.
  std::deque<std::string> inbox;
  std::uint64_t inbox_limit = 0;
  caf::actor directory;
  duration idle_timeout{};
  std::uint64_t idle_generation = 0;
  move_state move;
  static inline const char* name = "user";
};

/// One user, on the user's owner node: the nodes that have connections of
/// the user, and an inbox for private messages while there are none.
/// Spawned by the user directory.
///
/// Messages:
/// - `(attach_atom, local_users)` -> this actor; the inbox is sent to that
///   node first, in order, and emptied. `(detach_atom, local_users)`.
/// - `(publish_atom, envelope)` -> number of nodes the `private` frame went
///   to (once per node); `0` means it was kept in the inbox; `unavailable`
///   when the inbox is full (nothing accepted is dropped).
/// - `(stop_atom)`, `(handoff_atom, directory)`, `(adopt_atom, name, user_snapshot)`:
///   idle stop and moves, as for rooms.
///
/// Guarantee: private messages reach every connection in the order they
/// were accepted, inbox first. The inbox is memory only: it survives a
/// planned move, not the crash of the owner node.
caf::behavior user(caf::stateful_actor<user_state>* self, std::string name,
                   caf::actor directory, duration idle_timeout, std::uint64_t inbox_limit);

} // namespace rc
