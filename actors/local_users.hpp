#pragma once

#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>

#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "actors/messages.hpp"

namespace rc {

struct local_users_state {
  struct entry {
    std::vector<member_ref> connections;
    caf::actor owner; ///< the user actor this node is attached to
    bool attaching = false;
    /// A write of the user here was not written since the user last had
    /// none pending: it comes again, and the frames still pending must
    /// not reach a joining connection before it.
    bool returned = false;
  };
  std::unordered_map<std::string, entry> users;
  /// Owners whose DOWN arrived since the last re-attach scan.
  std::unordered_set<caf::actor_addr> gone_owners;
  /// Confirmed deliveries waiting for their first successful write. A
  /// connection of the user that joins meanwhile gets them too, oldest
  /// first, so that one its other connection fails does not come to it
  /// later from the inbox, after newer ones.
  struct pending_write {
    caf::response_promise rp;
    std::size_t outstanding = 0;
    std::string user;
    frame_ptr frame;
  };
  std::map<std::uint64_t, pending_write> writes; ///< by key: oldest first
  std::uint64_t next_write = 0;
  caf::actor locator;
  static inline const char* name = "local_users";
};

/// This node's registry of user connections: for each user with a
/// connection here, those connections, and the user actor (on the user's
/// owner node) it is attached to. A private message reaches this node once
/// and is written to every local connection of the user.
///
/// Messages:
/// - `(join_atom, member_ref)` from a connection.
/// - `(leave_atom, user, actor_addr)`: the connection ended (sent when the
///   connection actor ends: cheaper than a monitor per connection, and
///   found without scanning every user).
/// - `(deliver_atom, user, frame text)` -> number of local connections written to.
/// - `(deliver_atom, user, frame text, confirm_atom)` -> `1` once the frame
///   has been written to one of the user's sockets here, `0` when it was
///   written to none (no connection, or each one closed first). A
///   connection of the user that joins before the answer gets the frame too.
///
/// Guarantee: while a user has connections here, this node is attached to
/// the user's current owner (re-attached when the owner changes or fails).
caf::behavior local_users(caf::stateful_actor<local_users_state>* self, caf::actor locator);

} // namespace rc
