#pragma once

#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>

#include <chrono>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/messages.hpp"
#include "actors/move_state.hpp"
#include "actors/room_logic.hpp"
#include "actors/shared_behavior.hpp"
#include "config/settings.hpp"

namespace rc {

/// How long a new room keeps its messages for relays that re-attach late
/// after a failover. Survivors notice a failure within a heartbeat or two of
/// each other and retry attaching within 1 s.
inline constexpr std::chrono::seconds room_catch_up_window{10};

struct room_state {
  struct relay_entry {
    caf::actor relay;
    std::map<std::uint64_t, std::uint64_t> members; ///< connection id -> member id
    /// Gets the catch-up log before any live message (see `catch_up`).
    bool replaying = false;
  };
  struct member_entry {
    member who;
    caf::actor_addr relay;
    std::uint64_t conn = 0;
  };
  std::string room;
  /// This incarnation of the room; changes when the room is re-created.
  std::string epoch;
  /// Sequence number of the last message; the next one gets seq + 1.
  std::uint64_t seq = 0;
  std::unordered_map<caf::actor_addr, relay_entry> relays;
  std::map<std::uint64_t, member_entry> members; ///< by member id, in joining order
  std::uint64_t next_member_id = 0;
  /// Members the logic has not met yet (re-registered after a failover or a
  /// restart); `room_context::members` leaves them out until their `on_join`.
  std::set<std::uint64_t> unintroduced;
  /// The member whose on_join runs in `introduce` (0 = none): send_all skips it.
  std::uint64_t introducing = 0;
  /// The room's logic; `plain` when no kind matched (fast path: data is
  /// never parsed).
  std::unique_ptr<room_logic> logic;
  bool plain = true;
  std::shared_ptr<const room_kinds> kinds;
  std::shared_ptr<caf::actor> locator; ///< for room_context::send_user
  duration timer_interval{0};
  std::uint64_t timer_generation = 0;
  bool restarting = false;
  /// Until when this room stands in for one on its way (room_setup::
  /// stand_in: a move takes at most `move_timeout`), or the first adopt.
  std::chrono::steady_clock::time_point stand_in_until;
  caf::actor directory;
  duration idle_timeout{};
  /// Bumped on every membership change so a stale idle timer is ignored.
  std::uint64_t idle_generation = 0;
  /// After a failover this incarnation serves the old one's members, whose
  /// relays re-attach one by one as their nodes notice. While it is young
  /// (any new room, from its start), its messages are kept, and a relay
  /// that brings members later gets them all from seq 1, as if it had
  /// attached first.
  struct catch_up_log {
    bool active = false;
    std::chrono::steady_clock::time_point until;
    std::vector<std::string> frames; ///< the message of seq i + 1 at i
    std::size_t bytes = 0;
  };
  catch_up_log catch_up;
  /// Forwarding lasts until every relay switched to the successor.
  move_state move;
  std::size_t relays_to_release = 0;
  /// Gets `(publish_atom, room, from, frame text)` for every message; may be null.
  caf::actor events;
  room_state();
  ~room_state();
  static inline const char* name = "room";
};

/// A room actor: its instances share one behavior (actors/shared_behavior.hpp).
using room_actor = sharing_actor<room_state>;

/// One room, on its owner node: its `seq` and `epoch`, the relays of the
/// nodes that have members (with those members), and the default logic that
/// fans every publish out once per relay. Spawned by the room directory.
///
/// Messages:
/// - `(attach_atom, relay_members)` -> `(seq, epoch, room)`: a relay (re)joins
///   with its members.
/// - `(join_atom, relay, member_info)` -> frames for the joiner (the logic
///   may refuse with an error); `(leave_atom, relay, conn id)`; `(detach_atom, relay)`.
/// - `(publish_atom, envelope)` -> the message's `seq`.
/// - `(publish_atom, envelope, token)` from a relay: answered with
///   `(published_atom, token, seq)` or `(published_atom, token, caf::error)`.
/// - `(stop_atom)` -> `true` and quits if no relay is attached, else `false`.
/// - `(handoff_atom, directory)` -> `ok_atom` once the room lives on in the
///   target directory's node with the same epoch and seq (see relay.hpp).
/// - `(adopt_atom, room_snapshot)` -> this room: takes over a moved room,
///   with its epoch, seq and logic state, if it has no members yet or is a
///   stand-in (`room_setup::stand_in`) with nothing published yet or (plain)
///   all of it still logged, which is published again after the moved
///   room's messages (members who joined here first get a `joined` of it);
///   else merges its members (a healed split).
///
/// The room runs the logic registered for its name (room_logic.hpp); an
/// exception from the logic restarts the room (fresh logic, new epoch).
///
/// Guarantees: each relay receives every message in `seq` order exactly
/// once; the frame text is encoded once per message. `setup.events`, when
/// set, gets every message too (in `seq` order), as
/// `(publish_atom, room, from, text)`.
/// What a room needs from its node besides its name and directory.
struct room_setup {
  duration idle_timeout{30000};
  std::shared_ptr<const room_kinds> kinds;
  /// Set once the node's locator exists (rooms are spawned after that).
  std::shared_ptr<caf::actor> locator;
  /// Gets every room message (the AMQP events publisher); null = none.
  caf::actor events;
  /// Started for requests that came before the room's handoff may have:
  /// an adopt takes over (see `adopt_atom` above) instead of merging.
  bool stand_in = false;
};

caf::behavior room(room_actor* self, std::string name, caf::actor directory,
                   room_setup setup);

/// A fresh epoch name: random, so a re-created room never repeats one.
std::string make_epoch();
/// The same as a number (never 0), for state that keeps 8 bytes instead
/// of a string; `epoch_text` gives its name.
std::uint64_t make_epoch_number();
std::string epoch_text(std::uint64_t epoch);

} // namespace rc
