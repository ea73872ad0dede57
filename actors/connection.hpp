#pragma once

#include <caf/stateful_actor.hpp>

#include <chrono>
#include <map>
#include <string>

#include "actors/messages.hpp"
#include "actors/rate_limiter.hpp"
#include "actors/shared_behavior.hpp"
#include "common/identity.hpp"
#include "config/settings.hpp"

namespace rc {

/// What a connection actor needs from its node.
struct connection_context {
  std::string node;
  limits_settings limits;
  bool allow_broadcast = true;
  caf::actor relays;      ///< this node's relay directory (one relay per room)
  caf::actor users;       ///< this node's local_users registry
  caf::actor everyone;    ///< broadcaster
  caf::actor router;

  /// Every connection's request bucket, from `limits`.
  rate_limit rate() const {
    return {limits.rate_limit, static_cast<double>(limits.rate_burst)};
  }
};

/// Shared by all connections of a node (one copy, not one per connection).
using connection_context_ptr = std::shared_ptr<const connection_context>;

struct connection_state {
  client_link_ptr link;
  identity who;
  connection_context_ptr ctx;
  /// Rooms joined, with this node's relay for each.
  std::map<std::string, caf::actor> rooms;
  rate_limiter limiter;
  std::chrono::steady_clock::time_point opened;
  caf::actor_addr self_addr; ///< this connection, for the goodbye below
  /// Tells the node's user registry and broadcaster that the connection is
  /// gone, on every exit (a message instead of a monitor each). Here and not
  /// in an exit hook: CAF 0.17 runs `attach_functor`s after it destroyed
  /// the state.
  ~connection_state();
  static inline const char* name = "connection";
};

/// A connection actor: its instances share one behavior
/// (actors/shared_behavior.hpp).
using connection_actor = sharing_actor<connection_state>;

/// Serves one WebSocket: parses and validates requests, answers with
/// ack/error frames, enforces the per-connection limits, and is the member
/// that rooms, the user actor and the broadcaster know. Spawned by the node
/// when the upgrade succeeds; receives `(ws_frame_atom, text)` and
/// `(ws_closed_atom)` from the session and quits on the latter.
///
/// Order: requests are answered in the order they arrive, except that acks
/// of publish/send/broadcast may overtake each other across different
/// targets. A join or leave completes before the next request is read.
caf::behavior connection(connection_actor* self, client_link_ptr link, identity who,
                         connection_context_ptr ctx);

} // namespace rc
