#pragma once

#include <caf/stateful_actor.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/messages.hpp"

namespace rc {

/// How a directory creates the actor for a name (a room, a user, a relay).
struct directory_config {
  /// Spawns the actor for `name`; the actor sends `(idle_atom, name)` to
  /// `directory` when it has nothing left to do and answers `stop_atom`
  /// with `true` (and quits) or `false` (it got busy again). `stand_in`:
  /// the name was another node's until a view change moments ago (its
  /// actor may be on its way here: nodes hear of a change at different
  /// moments, and a request can come before the handoff).
  std::function<caf::actor(caf::local_actor* directory, const std::string& name, bool stand_in)>
    spawn;
  /// Whether a publish for an absent name creates its actor (users: yes, to
  /// keep an inbox; rooms: no, an absent room has no members to reach).
  /// Rooms: except for names a failed node owned, for `takeover_window`
  /// after its failure. Their old members are on their way back (their
  /// relays re-attach one by one), and the new room keeps what it gets for
  /// them (actors/room.hpp, the catch-up log).
  bool spawn_on_publish = false;
  const char* kind = "directory";
  std::chrono::milliseconds takeover_window{0};
  /// In a cluster: requests wait for the membership's first view, which it
  /// sends once the node has joined (or formed a cluster alone). A node
  /// that has just started would otherwise own every name for a moment and
  /// create afresh a room the cluster already has (a fork: new epoch, its
  /// members split).
  bool wait_for_view = false;
};

struct directory_state {
  struct entry {
    caf::actor actor;
    bool stopping = false; ///< asked to stop (idle) or to move (handoff)
    /// Requests that arrived meanwhile, oldest first.
    std::vector<std::function<void()>> held;
  };
  std::unordered_map<std::string, entry> entries;
  /// The cluster's directories of this kind by node name, and ours; empty on
  /// a single node (then this directory owns every name).
  std::map<std::string, caf::actor> peers;
  std::string self_name;
  /// Whether a view came (see `wait_for_view`), and the requests that wait
  /// for it, oldest first.
  bool has_view = false;
  std::vector<std::function<void()>> before_view;
  /// Actors handed to another node that still forward for a moment.
  std::vector<caf::actor> departed;
  /// The actors moving now and the directory each moves to, by name: an
  /// adopt from that directory's node for the same name crossed the move (see
  /// `crossed_move_error`). Apart from `entries`, which hold every actor.
  struct move {
    caf::actor actor;
    caf::actor to;
  };
  std::unordered_map<std::string, move> moving;
  /// After nodes left the view: the members before, the ones that left, and
  /// until when publishes for their names create the actor here.
  struct takeover {
    std::vector<std::string> before;
    std::vector<std::string> gone;
    std::chrono::steady_clock::time_point until;
  };
  takeover taken_over;
  /// The members before the last change of the view, and when it came
  /// (see `directory_config::spawn`'s `stand_in`).
  std::vector<std::string> before_change;
  std::chrono::steady_clock::time_point changed_at;
  ~directory_state(); // stops every actor it spawned, departed ones too
  static inline const char* name = "directory";
};

/// Owns the actors of one kind on this node by name, spawning them on demand
/// and routing requests for a name to its actor. In a cluster it owns only
/// the names placement gives this node: it forwards requests for other names
/// to their owner's directory, and hands its actors to their new owners when
/// the membership changes.
///
/// Requests (each delegated to the name's actor without the name):
/// `(join_atom, name, member_ref, id)`, `(attach_atom, name, relay_members)`,
/// `(attach_atom, name, caf::actor)`, `(publish_atom, name, envelope)`
/// (answers `uint64_t{0}` itself when the actor is absent and
/// `spawn_on_publish` is off), `(adopt_atom, name, snapshot)`.
/// Others: `(idle_atom, name)` from an actor; `(view_atom, peers, self name)`
/// from the membership; `(get_atom)` -> number of actors here;
/// `(get_atom, moved_atom)` -> number of moved actors still running here
/// (forwarding, or finishing writes they started).
///
/// Guarantee: a request is never delegated to an actor that has stopped or
/// moved; requests that arrive while it stops or moves wait, then go to it
/// (if it stayed), to a fresh actor, or to the new owner. With
/// `wait_for_view`, requests that arrive before the first view wait for it.
/// Two moves of one name that cross (each node hands it to the other, as
/// when membership flips back during a move) do not wait for each other:
/// one directory refuses the other's adopt (`crossed_move_error`).
caf::behavior directory(caf::stateful_actor<directory_state>* self, directory_config cfg);

} // namespace rc
