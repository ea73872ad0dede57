#pragma once

#include <caf/stateful_actor.hpp>

#include <string>
#include <unordered_map>

#include "actors/messages.hpp"
#include "config/settings.hpp"

namespace rc {

struct room_state {
  std::string room;
  /// This incarnation of the room; changes when the room is re-created.
  std::string epoch;
  /// Sequence number of the last message; the next one gets seq + 1.
  std::uint64_t seq = 0;
  std::unordered_map<caf::actor_addr, member_ref> members;
  caf::actor directory;
  duration idle_timeout{};
  /// Bumped on every membership change so a stale idle timer is ignored.
  std::uint64_t idle_generation = 0;
  room_state();
  ~room_state();
  static inline const char* name = "room";
};

/// One room: its members, its `seq` and `epoch`, and the default logic that
/// fans every publish out to all members (the sender only with `echo`).
/// Spawned by the room directory, which it tells when it has been empty for
/// `idle_timeout`.
///
/// Messages:
/// - `(join_atom, member_ref)` -> `(seq, epoch, room)`; joining twice is harmless.
/// - `(leave_atom, caf::actor conn)` -> `ok_atom`, or `not_member`.
/// - `(publish_atom, envelope)` -> the message's `seq`; `not_member` when the
///   envelope names a sending connection that is not a member.
/// - `(stop_atom)` -> `true` and quits if still empty, else `false`.
///
/// Guarantees: every member gets every message published while it is a
/// member exactly once, in `seq` order; the frame is encoded once and shared.
caf::behavior room(caf::stateful_actor<room_state>* self, std::string name,
                   caf::actor directory, duration idle_timeout);

/// A fresh epoch name: random, so a re-created room never repeats one.
std::string make_epoch();

} // namespace rc
