#pragma once

#include <caf/stateful_actor.hpp>

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/messages.hpp"

namespace rc {

/// How a directory creates the actor for a name (a room or a user).
struct directory_config {
  /// Spawns the actor for `name`; the actor sends `(idle_atom, name)` to
  /// `directory` when it has nothing left to do and answers `stop_atom`
  /// with `true` (and quits) or `false` (it got busy again).
  std::function<caf::actor(caf::local_actor* directory, const std::string& name)> spawn;
  /// Whether a publish for an absent name creates its actor (users: yes, to
  /// keep an inbox; rooms: no, an absent room has no members to reach).
  bool spawn_on_publish = false;
  const char* kind = "directory";
};

struct directory_state {
  struct entry {
    caf::actor actor;
    bool stopping = false;
    /// Requests that arrived while the actor was being asked to stop.
    std::vector<std::function<void(const caf::actor&)>> held;
  };
  std::unordered_map<std::string, entry> entries;
  ~directory_state(); // stops every actor it spawned
  static inline const char* name = "directory";
};

/// Owns the actors of one kind on this node by name, spawning them on demand
/// and routing requests for a name to its actor.
///
/// Messages:
/// - `(join_atom, name, member_ref)`: delegated as `(join_atom, member_ref)`.
/// - `(publish_atom, name, envelope)`: delegated as `(publish_atom, envelope)`;
///   answers `uint64_t{0}` itself when the actor is absent and not spawned.
/// - `(idle_atom, name)` from an actor: starts the stop handshake.
/// - `(get_atom)`: number of live actors.
///
/// Guarantee: a request is never delegated to an actor that has stopped; while
/// an idle actor is being stopped, requests for its name are held and then
/// go to it (if it stayed) or to a fresh actor.
caf::behavior directory(caf::stateful_actor<directory_state>* self, directory_config cfg);

} // namespace rc
