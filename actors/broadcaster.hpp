#pragma once

#include <caf/stateful_actor.hpp>

#include <unordered_map>

#include "actors/messages.hpp"

namespace rc {

struct broadcaster_state {
  std::unordered_map<caf::actor_addr, client_link_ptr> connections;
  static inline const char* name = "broadcaster";
};

/// Knows every connection of this node, for `broadcast`.
///
/// Messages:
/// - `(join_atom, member_ref)`: registers a connection.
/// - `(leave_atom, actor_addr)`: the connection ended (sent when the
///   connection actor ends: cheaper than a monitor per connection).
/// - `(publish_atom, envelope)`: writes the frame to every connection (no reply;
///   the router sends one such message to each node's broadcaster).
///
/// Guarantee: one `broadcast` frame, encoded once, to every connection
/// registered when the message is handled, sender included.
caf::behavior broadcaster(caf::stateful_actor<broadcaster_state>* self);

} // namespace rc
