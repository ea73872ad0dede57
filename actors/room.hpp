#pragma once

#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>

#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/messages.hpp"
#include "config/settings.hpp"

namespace rc {

struct room_state {
  struct relay_entry {
    caf::actor relay;
    std::map<std::uint64_t, std::string> members; ///< connection id -> user
  };
  enum class phase {
    serving,    ///< the owner's room
    moving,     ///< handing its state to a new owner; requests wait
    forwarding, ///< moved: passes everything on until every relay switched
  };
  std::string room;
  /// This incarnation of the room; changes when the room is re-created.
  std::string epoch;
  /// Sequence number of the last message; the next one gets seq + 1.
  std::uint64_t seq = 0;
  std::unordered_map<caf::actor_addr, relay_entry> relays;
  caf::actor directory;
  duration idle_timeout{};
  /// Bumped on every membership change so a stale idle timer is ignored.
  std::uint64_t idle_generation = 0;
  phase state = phase::serving;
  caf::actor successor;
  std::vector<std::function<void()>> held;
  std::size_t relays_to_release = 0;
  /// Gets `(publish_atom, room, from, frame text)` for every message; may be null.
  caf::actor events;
  room_state();
  ~room_state();
  static inline const char* name = "room";
};

/// One room, on its owner node: its `seq` and `epoch`, the relays of the
/// nodes that have members (with those members), and the default logic that
/// fans every publish out once per relay. Spawned by the room directory.
///
/// Messages:
/// - `(attach_atom, relay_members)` -> `(seq, epoch, room)`: a relay (re)joins
///   with its members.
/// - `(join_atom, relay, member_info)` -> `ok_atom`; `(leave_atom, relay, conn id)`;
///   `(detach_atom, relay)`.
/// - `(publish_atom, envelope)` -> the message's `seq`.
/// - `(stop_atom)` -> `true` and quits if no relay is attached, else `false`.
/// - `(handoff_atom, directory)` -> `ok_atom` once the room lives on in the
///   target directory's node with the same epoch and seq (see relay.hpp).
/// - `(adopt_atom, room_snapshot)` -> this room: takes over a moved room.
///
/// Guarantees: each relay receives every message in `seq` order exactly
/// once; the frame text is encoded once per message. `events`, when set,
/// gets every message too (in `seq` order), as `(publish_atom, room, from, text)`.
caf::behavior room(caf::stateful_actor<room_state>* self, std::string name,
                   caf::actor directory, duration idle_timeout, caf::actor events);

/// A fresh epoch name: random, so a re-created room never repeats one.
std::string make_epoch();

} // namespace rc
