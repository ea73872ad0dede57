#pragma once

#include <caf/stateful_actor.hpp>

#include <unordered_map>

#include "actors/messages.hpp"

namespace rc {

struct broadcaster_state {
  std::unordered_map<caf::actor_addr, client_link_ptr> connections;
  bool closing = false; ///< the node is stopping: connection actors are ended as they register
  /// Ends the connection actors still registered (the node stops).
  ~broadcaster_state();
  static inline const char* name = "broadcaster";
};

/// Knows every connection of this node, for `broadcast`, and closes them all
/// when the node stops. (Connection actors used to be linked to supervisor
/// actors for that; CAF 0.17 walks an actor's whole link list on every link
/// and unlink, and each link cost both actors an attachable.)
///
/// Messages:
/// - `(join_atom, member_ref)`: registers a connection.
/// - `(stop_atom)`: ends every connection actor with `user_shutdown`, and
///   any that registers afterwards (each closes its WebSocket with 1001,
///   after what is queued); no reply.
/// - exit: ends the connection actors still registered the same way.
/// - `(leave_atom, actor_addr)`: the connection ended (sent when the
///   connection actor ends: cheaper than a monitor per connection).
/// - `(publish_atom, envelope)`: writes the frame to every connection (no reply;
///   the router sends one such message to each node's broadcaster).
///
/// Guarantee: one `broadcast` frame, encoded once, to every connection
/// registered when the message is handled, sender included.
caf::behavior broadcaster(caf::stateful_actor<broadcaster_state>* self);

} // namespace rc
