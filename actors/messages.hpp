#pragma once

// Every message type and atom the actors exchange, in one place. Types that
// may cross nodes are inspectable; `frame_ptr` and `client_link_ptr` are
// node-local by design (a per-node relay re-wraps text into frames).

#include <caf/actor.hpp>
#include <caf/actor_addr.hpp>
#include <caf/allowed_unsafe_message_type.hpp>
#include <caf/atom.hpp>
#include <caf/error.hpp>
#include <caf/meta/type_name.hpp>

#include <cstdint>
#include <string>

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
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, envelope& x) {
  return f(caf::meta::type_name("rc::envelope"), x.from, x.data, x.echo, x.sender);
}

// -- errors between actors ------------------------------------------------------

/// Category of `caf::error`s that carry one of our client-visible codes.
inline constexpr caf::atom_value error_category = caf::atom("roomcast");

inline caf::error make_error(error_code code) {
  return caf::error{static_cast<std::uint8_t>(code), error_category};
}

/// Maps any error from a request back to a client-visible code: ours pass
/// through; a dead or timed-out receiver is `unavailable`.
inline error_code to_error_code(const caf::error& err) {
  if (err.category() == error_category)
    return static_cast<error_code>(err.code());
  return error_code::unavailable;
}

} // namespace rc

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(rc::member_ref)
