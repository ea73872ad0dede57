#include "actors/user.hpp"

#include <caf/event_based_actor.hpp>

#include <algorithm>

#include "actors/hardening.hpp"
#include "actors/protocol.hpp"
#include "common/metrics.hpp"

namespace rc {

namespace {

void arm_idle_timer(caf::stateful_actor<user_state>* self) {
  auto& st = self->state;
  ++st.idle_generation;
  if (st.connections.empty() && st.inbox.empty())
    self->delayed_send(self, st.idle_timeout, caf::idle_atom::value, st.idle_generation);
}

void remove_connection(caf::stateful_actor<user_state>* self, const caf::actor_addr& conn) {
  auto& conns = self->state.connections;
  auto it = std::find_if(conns.begin(), conns.end(),
                         [&](const member_ref& m) { return m.conn.address() == conn; });
  if (it == conns.end())
    return;
  conns.erase(it);
  if (conns.empty()) {
    metrics::global().users--;
    arm_idle_timer(self);
  }
}

} // namespace

caf::behavior user(caf::stateful_actor<user_state>* self, std::string name,
                   caf::actor directory, duration idle_timeout, std::uint64_t inbox_limit) {
  harden(self, "user");
  auto& st = self->state;
  st.user = std::move(name);
  st.directory = std::move(directory);
  st.idle_timeout = idle_timeout;
  st.inbox_limit = inbox_limit;
  arm_idle_timer(self);
  self->set_down_handler([self](caf::down_msg& dm) { remove_connection(self, dm.source); });
  self->attach_functor([self] {
    if (!self->state.connections.empty())
      metrics::global().users--;
  });
  return {
    [self](caf::join_atom, member_ref& m) {
      auto& st = self->state;
      auto& mx = metrics::global();
      for (auto& frame : st.inbox)
        m.link->deliver(frame);
      mx.messages_delivered += st.inbox.size();
      st.inbox.clear();
      self->monitor(m.conn);
      if (st.connections.empty())
        mx.users++;
      st.connections.push_back(std::move(m));
      ++st.idle_generation;
      return caf::ok_atom::value;
    },
    [self](caf::publish_atom, envelope& env) -> caf::result<std::uint64_t> {
      auto& st = self->state;
      auto frame = make_frame(encode_private(env.from, env.data));
      if (st.connections.empty()) {
        if (st.inbox.size() >= st.inbox_limit)
          return make_error(error_code::unavailable);
        st.inbox.push_back(std::move(frame));
        ++st.idle_generation;
        return std::uint64_t{0};
      }
      for (auto& m : st.connections)
        m.link->deliver(frame);
      metrics::global().messages_delivered += st.connections.size();
      return static_cast<std::uint64_t>(st.connections.size());
    },
    [self](stop_atom) {
      auto& st = self->state;
      bool idle = st.connections.empty() && st.inbox.empty();
      if (idle)
        self->quit();
      return idle;
    },
    [self](caf::idle_atom, std::uint64_t generation) {
      auto& st = self->state;
      if (generation == st.idle_generation && st.connections.empty() && st.inbox.empty())
        self->send(st.directory, caf::idle_atom::value, st.user);
    },
  };
}

} // namespace rc
