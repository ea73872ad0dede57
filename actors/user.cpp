#include "actors/user.hpp"

#include <caf/event_based_actor.hpp>

#include <algorithm>

#include "actors/hardening.hpp"
#include "actors/locator.hpp"
#include "actors/protocol.hpp"
#include "common/metrics.hpp"

namespace rc {

namespace {

using self_ptr = caf::stateful_actor<user_state>*;
using phase = move_state::phase;
using kind = metrics::cluster_kind;

constexpr auto deliver_timeout = std::chrono::seconds{5};

void arm_idle_timer(self_ptr self) {
  auto& st = self->state;
  ++st.idle_generation;
  if (st.nodes.empty() && st.inbox.empty())
    self->delayed_send(self, st.idle_timeout, caf::idle_atom::value, st.idle_generation);
}

void remove_node(self_ptr self, const caf::actor_addr& node) {
  auto& nodes = self->state.nodes;
  auto it = std::find_if(nodes.begin(), nodes.end(),
                         [&](const caf::actor& n) { return n.address() == node; });
  if (it == nodes.end())
    return;
  nodes.erase(it);
  arm_idle_timer(self);
}

void keep(self_ptr self, std::string text) {
  self->state.inbox.push_back(std::move(text));
  ++self->state.idle_generation;
}

/// Sends one private frame to every node in `nodes`. If no node had a
/// connection of the user any more (it left meanwhile), the frame goes back
/// to the inbox rather than being lost.
void deliver_to(self_ptr self, const std::vector<caf::actor>& nodes, const std::string& text) {
  struct tally {
    std::size_t pending;
    std::uint64_t written = 0;
  };
  auto t = std::make_shared<tally>(tally{nodes.size()});
  auto settle = [self, t, text](std::uint64_t written) {
    t->written += written;
    if (--t->pending == 0 && t->written == 0)
      keep(self, text);
  };
  for (auto& node : nodes) {
    count_if_remote(self, node, kind::user);
    self->request(node, deliver_timeout, deliver_atom::value, self->state.user, text)
      .then([settle](std::uint64_t written) { settle(written); },
            [settle](caf::error&) { settle(0); });
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
  self->set_down_handler([self](caf::down_msg& dm) { remove_node(self, dm.source); });
  return {
    [self](attach_atom, const caf::actor& node) -> caf::result<caf::actor> {
      if (self->state.move.divert(self))
        return caf::delegated<caf::actor>{};
      auto& st = self->state;
      if (std::find(st.nodes.begin(), st.nodes.end(), node) == st.nodes.end()) {
        self->monitor(node);
        st.nodes.push_back(node);
      }
      auto inbox = std::move(st.inbox);
      st.inbox.clear();
      for (auto& text : inbox)
        deliver_to(self, {node}, text);
      ++st.idle_generation;
      return caf::actor_cast<caf::actor>(self);
    },
    [self](detach_atom, const caf::actor& node) {
      if (self->state.move.divert(self))
        return;
      self->demonitor(node);
      remove_node(self, node.address());
    },
    [self](caf::publish_atom, envelope& env) -> caf::result<std::uint64_t> {
      if (self->state.move.divert(self))
        return caf::delegated<std::uint64_t>{};
      auto& st = self->state;
      auto text = encode_private(env.from, env.data);
      if (st.nodes.empty()) {
        if (st.inbox.size() >= st.inbox_limit)
          return make_error(error_code::unavailable);
        keep(self, std::move(text));
        return std::uint64_t{0};
      }
      deliver_to(self, st.nodes, text);
      return static_cast<std::uint64_t>(st.nodes.size());
    },
    [self](stop_atom) {
      auto& st = self->state;
      bool idle = st.nodes.empty() && st.inbox.empty() && st.move.state == phase::serving;
      if (idle)
        self->quit();
      return idle;
    },
    [self](caf::idle_atom, std::uint64_t generation) {
      auto& st = self->state;
      if (generation == st.idle_generation && st.nodes.empty() && st.inbox.empty()
          && st.move.state == phase::serving)
        self->send(st.directory, caf::idle_atom::value, st.user);
    },
    [self](handoff_atom, const caf::actor& target) {
      auto& st = self->state;
      auto rp = self->make_response_promise();
      if (st.move.state != phase::serving) {
        rp.deliver(caf::ok_atom::value);
        return rp;
      }
      st.move.state = phase::moving;
      user_snapshot snap{st.user, {st.inbox.begin(), st.inbox.end()}, st.nodes};
      count_if_remote(self, target, kind::control);
      self->request(target, std::chrono::seconds{10}, adopt_atom::value, st.user, std::move(snap))
        .then(
          [self, rp](caf::actor successor) mutable {
            auto& st = self->state;
            st.move.successor = std::move(successor);
            st.move.state = phase::forwarding;
            st.move.release_held();
            rp.deliver(caf::ok_atom::value);
            // Nodes re-attach when they see this actor go; until then (and
            // for messages still in flight to us) we forward.
            self->delayed_send(self, std::chrono::seconds{2}, caf::close_atom::value);
          },
          [self, rp](caf::error& err) mutable {
            auto& st = self->state;
            st.move.state = phase::serving;
            st.move.release_held();
            rp.deliver(std::move(err));
          });
      return rp;
    },
    [self](caf::close_atom) {
      if (self->state.move.state == phase::forwarding)
        self->quit();
    },
    [self](adopt_atom, const std::string&, user_snapshot& snap) -> caf::result<caf::actor> {
      if (self->state.move.divert(self))
        return caf::delegated<caf::actor>{};
      auto& st = self->state;
      // Messages kept by the old owner come before any kept here.
      st.inbox.insert(st.inbox.begin(), snap.inbox.begin(), snap.inbox.end());
      for (auto& node : snap.nodes)
        if (std::find(st.nodes.begin(), st.nodes.end(), node) == st.nodes.end()) {
          self->monitor(node);
          st.nodes.push_back(node);
        }
      if (!st.nodes.empty() && !st.inbox.empty()) {
        auto inbox = std::move(st.inbox);
        st.inbox.clear();
        for (auto& text : inbox)
          deliver_to(self, st.nodes, text);
      }
      ++st.idle_generation;
      return caf::actor_cast<caf::actor>(self);
    },
  };
}

} // namespace rc
