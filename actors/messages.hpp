#pragma once

// Every message type and atom the actors exchange, in one place. Types that
// may cross nodes are inspectable; `frame_ptr` and `client_link_ptr` are
// node-local by design (a per-node relay re-wraps text into frames).

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/client_link.hpp"
#include "common/error_code.hpp"

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(rc::frame_ptr)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(rc::client_link_ptr)

namespace rc {

// -- atoms ----------------------------------------------------------------------
// CAF predefines join_atom, leave_atom, publish_atom, ok_atom, get_atom,
// idle_atom, close_atom, tick_atom; these are ours.

using ws_frame_atom = caf::atom_constant<caf::atom("ws_frame")>;
using ws_closed_atom = caf::atom_constant<caf::atom("ws_closed")>;
using deliver_atom = caf::atom_constant<caf::atom("deliver")>;
using stop_atom = caf::atom_constant<caf::atom("stop")>;
using route_atom = caf::atom_constant<caf::atom("route")>;
using room_atom = caf::atom_constant<caf::atom("room")>;
using user_atom = caf::atom_constant<caf::atom("user")>;
using all_atom = caf::atom_constant<caf::atom("all")>;
using expire_atom = caf::atom_constant<caf::atom("expire")>;
using frame_done_atom = caf::atom_constant<caf::atom("framedone")>;
using young_end_atom = caf::atom_constant<caf::atom("youngend")>;
using attach_atom = caf::atom_constant<caf::atom("attach")>;
using detach_atom = caf::atom_constant<caf::atom("detach")>;
using fanout_atom = caf::atom_constant<caf::atom("fanout")>;
using locate_atom = caf::atom_constant<caf::atom("locate")>;
using view_atom = caf::atom_constant<caf::atom("view")>;
using handoff_atom = caf::atom_constant<caf::atom("handoff")>;
using adopt_atom = caf::atom_constant<caf::atom("adopt")>;
using moved_atom = caf::atom_constant<caf::atom("moved")>;
using release_atom = caf::atom_constant<caf::atom("release")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using sweep_atom = caf::atom_constant<caf::atom("sweep")>;
using published_atom = caf::atom_constant<caf::atom("published")>;
using restart_atom = caf::atom_constant<caf::atom("restart")>;
using introduce_atom = caf::atom_constant<caf::atom("introduce")>;
using replay_atom = caf::atom_constant<caf::atom("replay")>;
using confirm_atom = caf::atom_constant<caf::atom("confirm")>;
using written_atom = caf::atom_constant<caf::atom("written")>;
using store_atom = caf::atom_constant<caf::atom("store")>;
using fetch_atom = caf::atom_constant<caf::atom("fetch")>;
using ack_atom = caf::atom_constant<caf::atom("ack")>;
using requeue_atom = caf::atom_constant<caf::atom("requeue")>;
using watch_atom = caf::atom_constant<caf::atom("watch")>;
using unwatch_atom = caf::atom_constant<caf::atom("unwatch")>;
using reattach_atom = caf::atom_constant<caf::atom("reattach")>;

// -- message types --------------------------------------------------------------

/// A connection as seen by the rooms, users and the broadcaster it belongs to.
/// `link` writes straight to the connection's socket queue, so fan-out needs
/// no mailbox hop per member.
struct member_ref {
  caf::actor conn;
  std::string user;
  client_link_ptr link;
};

/// One message on its way to a room, a user or everyone. `data` is JSON text,
/// already validated, and is embedded into outgoing frames unchanged.
struct envelope {
  std::string from;
  std::string data;
  /// Rooms only: deliver to the sending connection too.
  bool echo = false;
  /// The sending connection, if the message came from a WebSocket.
  caf::actor_addr sender;
  /// Private messages: the id the publisher gave (AMQP `message_id`), so
  /// that a redelivered copy keeps it; empty = the user actor assigns one.
  /// (`= {}` lets brace-initialisations omit it without
  /// -Wmissing-field-initializers.)
  std::string id = {};
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, envelope& x) {
  return f(caf::meta::type_name("rc::envelope"), x.from, x.data, x.echo, x.sender, x.id);
}

/// A member's publish, from its connection to the room's relay on the same
/// node (never crosses nodes). The relay answers on `link` itself: `ack` with
/// the seq when `id` is set, `error` on failure.
struct publish_request {
  envelope env;
  std::string id;
  client_link_ptr link;
};

/// One member of a room as the room's owner sees it: the connection's actor
/// id on the relay's node, and its user.
struct member_info {
  std::uint64_t conn = 0;
  std::string user;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, member_info& x) {
  return f(caf::meta::type_name("rc::member_info"), x.conn, x.user);
}

/// A node's relay for a room with its local members.
struct relay_members {
  caf::actor relay;
  std::vector<member_info> members;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, relay_members& x) {
  return f(caf::meta::type_name("rc::relay_members"), x.relay, x.members);
}

/// Everything a room is, for moving it to another node with its state.
struct room_snapshot {
  std::string name;
  std::string epoch;
  std::uint64_t seq = 0;
  std::vector<relay_members> relays;
  std::string logic_state; ///< room_logic::snapshot()
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, room_snapshot& x) {
  return f(caf::meta::type_name("rc::room_snapshot"), x.name, x.epoch, x.seq, x.relays,
           x.logic_state);
}

/// Everything a user actor is, for moving it: undelivered private frames and
/// the per-node registries that hold connections of the user.
struct user_snapshot {
  std::string name;
  std::vector<std::string> inbox;
  std::vector<caf::actor> nodes;
  /// Frames the old owner kept after its snapshot (a closing tab refused
  /// them): older than the snapshot's, newer than earlier late ones.
  bool late = false;
  /// The old owner is still writing stored frames (durable store): the new
  /// one fetches only once it hears `(fetch_atom)` from it, so that no newer
  /// stored frame overtakes them.
  bool stored_in_flight = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, user_snapshot& x) {
  return f(caf::meta::type_name("rc::user_snapshot"), x.name, x.inbox, x.nodes, x.late,
           x.stored_in_flight);
}

/// Private frames taken from a user's durable store, oldest first; each
/// stays in the store until acknowledged by its tag (see actors/inbox_store.hpp).
struct stored_frames {
  std::vector<std::uint64_t> tags;
  std::vector<std::string> texts;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stored_frames& x) {
  return f(caf::meta::type_name("rc::stored_frames"), x.tags, x.texts);
}

// -- errors between actors ------------------------------------------------------

/// Category of `caf::error`s that carry one of our client-visible codes.
inline constexpr caf::atom_value error_category = caf::atom("roomcast");

inline caf::error make_error(error_code code) {
  return caf::error{static_cast<std::uint8_t>(code), error_category};
}

/// The same with a message for the client (e.g. a room logic's refusal).
inline caf::error make_error(error_code code, std::string message) {
  return caf::error{static_cast<std::uint8_t>(code), error_category,
                    caf::make_message(std::move(message))};
}

/// The message carried by an error made with a message, or "".
inline std::string error_text(const caf::error& err) {
  auto& ctx = err.context();
  if (err.category() == error_category && ctx.match_elements<std::string>())
    return ctx.get_as<std::string>(0);
  return {};
}

/// A directory's answer to an adopt that crossed a move of its own: its
/// actor of that name is moving to the sender's node just as the sender's
/// actor moves here, and each directory holds the other's adopt until its
/// own move ends. Of the two, the directory with the lower address refuses
/// at once; the other actor stays, takes the refused one's state with the
/// adopt it held, and its directory moves it where the view says shortly
/// after (actors/directory.cpp, `look_again`).
inline constexpr const char* crossed_move_text = "the move crossed one the other way";

inline caf::error crossed_move_error() {
  return make_error(error_code::unavailable, crossed_move_text);
}

inline bool is_crossed_move(const caf::error& err) {
  return err.category() == error_category && error_text(err) == crossed_move_text;
}

/// For logs: ours by name and message ("unavailable: no broker"), others as
/// CAF prints them (ours would print as "error(7, 'roomcast')").
inline std::string log_text(const caf::error& err) {
  if (err.category() != error_category)
    return caf::to_string(err);
  std::string text{to_string(static_cast<error_code>(err.code()))};
  if (auto message = error_text(err); !message.empty())
    text += ": " + message;
  return text;
}

/// Maps any error from a request back to a client-visible code: ours pass
/// through; a dead or timed-out receiver is `unavailable`.
inline error_code to_error_code(const caf::error& err) {
  if (err.category() == error_category)
    return static_cast<error_code>(err.code());
  return error_code::unavailable;
}

/// The client-visible code and message for a failed request: the error's own
/// message if it carries one, else a generic one naming `what` failed.
inline std::pair<error_code, std::string> describe_failure(const caf::error& err,
                                                           std::string_view what) {
  auto code = to_error_code(err);
  auto message = error_text(err);
  if (message.empty()) {
    switch (code) {
      case error_code::not_member: message = "not a member of this room"; break;
      case error_code::unavailable: message = std::string{what} + " is unavailable, try again"; break;
      default: message = std::string{what} + " failed";
    }
  }
  return {code, std::move(message)};
}

} // namespace rc

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(rc::member_ref)
CAF_ALLOW_UNSAFE_MESSAGE_TYPE(rc::publish_request)

namespace rc {

/// Registers every type that crosses nodes, under the names the wire uses.
/// Every node must call this on its actor_system_config.
template <class Config>
void add_wire_types(Config& cfg) {
  cfg.template add_message_type<envelope>("rc::envelope");
  cfg.template add_message_type<member_info>("rc::member_info");
  cfg.template add_message_type<relay_members>("rc::relay_members");
  cfg.template add_message_type<room_snapshot>("rc::room_snapshot");
  cfg.template add_message_type<user_snapshot>("rc::user_snapshot");
  cfg.template add_message_type<stored_frames>("rc::stored_frames");
}

} // namespace rc
