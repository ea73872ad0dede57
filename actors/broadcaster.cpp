#include "actors/broadcaster.hpp"

#include <caf/event_based_actor.hpp>

#include "actors/hardening.hpp"
#include "actors/protocol.hpp"
#include "common/metrics.hpp"

namespace rc {

caf::behavior broadcaster(caf::stateful_actor<broadcaster_state>* self) {
  harden(self, "broadcaster");
  return {
    [self](caf::join_atom, member_ref& m) {
      self->state.connections.emplace(m.conn.address(), std::move(m.link));
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
