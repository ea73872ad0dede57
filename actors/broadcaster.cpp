#include "actors/broadcaster.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "actors/hardening.hpp"
#include "actors/protocol.hpp"
#include "common/metrics.hpp"

namespace rc {

namespace {

/// Ends a connection actor as the node stops; the actor then closes its
/// WebSocket with 1001 after what is queued (see `connection`).
void end_connection(const caf::actor_addr& conn) {
  caf::anon_send_exit(conn, caf::exit_reason::user_shutdown);
}

} // namespace

broadcaster_state::~broadcaster_state() {
  for (auto& [conn, _] : connections)
    end_connection(conn);
}

caf::behavior broadcaster(caf::stateful_actor<broadcaster_state>* self) {
  harden(self, "broadcaster");
  return {
    [self](caf::join_atom, member_ref& m) {
      if (self->state.closing)
        end_connection(m.conn.address());
      self->state.connections.emplace(m.conn.address(), std::move(m.link));
    },
    [self](stop_atom) {
      self->state.closing = true;
      for (auto& [conn, _] : self->state.connections)
        end_connection(conn);
    },
    [self](caf::leave_atom, const caf::actor_addr& conn) { self->state.connections.erase(conn); },
    [self](caf::publish_atom, envelope& env) {
      auto frame = make_frame(encode_broadcast(env.from, env.data));
      for (auto& [_, link] : self->state.connections)
        link->deliver(frame);
      metrics::global().messages_delivered += self->state.connections.size();
    },
  };
}

} // namespace rc
