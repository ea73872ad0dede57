#pragma once

#include <caf/stateful_actor.hpp>

#include <deque>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "config/settings.hpp"

namespace rc {

struct user_state {
  std::string user;
  std::vector<member_ref> connections;
  /// Private frames for a user with no open connection, oldest first.
  std::deque<frame_ptr> inbox;
  std::uint64_t inbox_limit = 0;
  caf::actor directory;
  duration idle_timeout{};
  std::uint64_t idle_generation = 0;
  static inline const char* name = "user";
};

/// One user: every open connection of that user on this node, and an inbox
/// for private messages while the user has none. Spawned by the user
/// directory; tells it when it has no connections and an empty inbox.
///
/// Messages:
/// - `(join_atom, member_ref)` -> `ok_atom`; the inbox is written to the new
///   connection first, in order, and emptied.
/// - `(publish_atom, envelope)` -> number of connections the `private` frame
///   went to; `0` means it was kept in the inbox; `unavailable` when the
///   inbox is full (nothing accepted is dropped).
/// - `(stop_atom)` -> `true` and quits if idle, else `false`.
///
/// Guarantee: private messages reach every connection in the order they
/// were accepted, inbox first; the inbox is memory only (lost on restart).
caf::behavior user(caf::stateful_actor<user_state>* self, std::string name,
                   caf::actor directory, duration idle_timeout, std::uint64_t inbox_limit);

} // namespace rc
