#pragma once

#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>

#include <chrono>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/messages.hpp"
#include "actors/shared_behavior.hpp"
#include "config/settings.hpp"

namespace rc {

struct relay_state {
  enum class phase {
    detached,  ///< no room handle; attaching is scheduled
    attaching, ///< asked the owner for the room
    attached,  ///< serving
    releasing, ///< the room moved; waiting for the new room's go-ahead
  };
  std::string room;
  caf::actor locator;
  caf::actor directory; ///< the local relay directory (idle stop)
  caf::actor room_actor;
  std::string epoch;
  std::uint64_t last_seq = 0;
  phase state = phase::detached;
  std::unordered_map<caf::actor_addr, member_ref> members;
  std::unordered_map<std::uint64_t, caf::actor_addr> by_id; ///< connection id -> member
  /// Requests waiting for the room (while not attached), oldest first.
  struct held_request {
    std::chrono::steady_clock::time_point since;
    std::function<void()> resume;
    std::function<void()> expire;
    caf::actor_addr publisher; ///< for a held publish: its member
  };
  std::vector<held_request> held;
  /// Members' publishes the room has not answered yet. The relay answers
  /// each on the member's link. A room's death or `publish_timeout` answers
  /// them `unavailable`; an answer that comes later finds nothing.
  struct pending_publish {
    std::uint64_t token;
    std::string id;
    client_link_ptr link;
    std::chrono::steady_clock::time_point since;
    caf::actor_addr sender;
  };
  /// Oldest first. A vector: an empty std::deque allocates ~600 bytes, and
  /// idle nodes hold one relay per room.
  std::vector<pending_publish> pending;
  /// Leaves of members whose publishes still wait for their answers: a
  /// leave must not overtake them (the echo and the ack come first). The
  /// connection awaits the leave, so nothing else of that member comes.
  struct deferred_leave {
    caf::actor conn;
    std::string id;
    caf::response_promise rp;
  };
  std::vector<deferred_leave> leaving;
  /// Connection ids of members that left while the relay was not attached
  /// (the room moving, or being looked for): the room hears of them once it
  /// is, or it would keep them as members.
  std::vector<std::uint64_t> unannounced_leaves;
  std::uint64_t next_token = 0;
  bool sweep_armed = false;
  duration idle_timeout{};
  std::uint64_t idle_generation = 0;
  /// Joins asked of the room and not answered yet: a relay waiting for one
  /// is not idle (its joiner would wait for an answer that never comes).
  std::uint32_t joins_in_flight = 0;
  int attach_failures = 0;
  /// This relay, for the goodbye its state's destructor sends the room.
  caf::actor_addr self_addr;
  /// Tells the room this relay is gone. Here and not in an exit hook: CAF
  /// 0.17 runs `attach_functor`s after it destroyed the state.
  ~relay_state();
  static inline const char* name = "relay";
};

/// A relay actor: its instances share one behavior (actors/shared_behavior.hpp).
using relay_actor = sharing_actor<relay_state>;

/// This node's part of one room: the room's local members and the sockets
/// they write to. Every member of a room on this node joins, leaves and
/// publishes through the node's relay for that room, and the room (which
/// lives on its owner node, maybe this one) sends each message once to each
/// relay, which writes the shared frame to every local member.
///
/// From connections (the relay writes `joined`/`left` frames itself so they
/// are ordered with the room's messages on the socket):
/// - `(join_atom, member_ref, std::string id)` -> `caf::actor` (this relay)
/// - `(leave_atom, caf::actor conn, std::string id)` -> `ok_atom`, once the
///   member's earlier publishes are answered (at most `publish_timeout`
///   plus a sweep: the connection awaits it)
/// - `(publish_atom, publish_request)`: no reply; the relay answers on the
///   request's link with `ack` (the message's `seq`) or `error` (`not_member`
///   if the sender has not joined, the room's refusal, `unavailable` when the
///   room dies first or has not answered after 10 to 15 s). The ack follows
///   the frames the publish caused for the sender.
/// From the room: `(published_atom, token, seq or caf::error)` (the answer
/// to a publish this relay handed on), `(fanout_atom, seq, frame text, sender, echo)`,
/// `(deliver_atom, text)` (a logic's frame for all members),
/// `(deliver_atom, conn id, text)` (for one), `(deliver_atom, text, conn id)`
/// (for all but one), `(restart_atom, epoch, seq)`
/// (the room restarted), `(moved_atom, new room)`, `(release_atom, epoch, seq)`.
///
/// Guarantees: frames of one room reach each local member in `seq` order,
/// once per epoch. When the room fails, the relay re-attaches to the new
/// owner with its members, and each member gets a fresh `joined` with the new
/// epoch. While it has no room, requests wait (up to 5 s, then
/// `unavailable`); a room's planned move loses and reorders nothing. The
/// relay stops (the directory's `stop_atom`) only with no members and no
/// publish waiting; if it fails instead, its state's destructor answers the
/// waiting publishes `unavailable` and closes its members' links (1011).
caf::behavior relay(relay_actor* self, std::string room, caf::actor directory,
                    caf::actor locator, duration idle_timeout);

} // namespace rc
