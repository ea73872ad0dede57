#include "actors/room.hpp"

#include <caf/event_based_actor.hpp>

#include <random>

#include "actors/hardening.hpp"
#include "actors/locator.hpp"
#include "actors/protocol.hpp"
#include "common/metrics.hpp"

namespace rc {

std::string make_epoch() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string out(10, '0');
  for (auto& c : out)
    c = digits[rng() % 36];
  return out;
}

room_state::room_state() {
  metrics::global().rooms++;
}

room_state::~room_state() {
  metrics::global().rooms--;
}

namespace {

using self_ptr = caf::stateful_actor<room_state>*;
using phase = room_state::phase;
using kind = metrics::cluster_kind;

void arm_idle_timer(self_ptr self) {
  auto& st = self->state;
  ++st.idle_generation;
  if (st.relays.empty())
    self->delayed_send(self, st.idle_timeout, caf::idle_atom::value, st.idle_generation);
}

room_state::relay_entry& entry_for(self_ptr self, const caf::actor& relay) {
  auto& st = self->state;
  auto [it, added] = st.relays.try_emplace(relay.address());
  if (added) {
    it->second.relay = relay;
    self->monitor(relay);
    ++st.idle_generation;
  }
  return it->second;
}

/// While moving, requests wait; once moved, they go to the successor. Returns
/// true when the current message was taken care of that way.
bool divert(self_ptr self) {
  auto& st = self->state;
  if (st.state == phase::serving)
    return false;
  auto msg = self->current_mailbox_element()->move_content_to_message();
  auto rp = self->make_response_promise();
  if (st.state == phase::moving)
    st.held.push_back([self, msg, rp]() mutable { rp.delegate(self->state.successor, msg); });
  else
    rp.delegate(st.successor, msg);
  return true;
}

void maybe_finish_move(self_ptr self) {
  auto& st = self->state;
  if (st.state == phase::forwarding && st.relays_to_release == 0)
    self->quit();
}

room_snapshot snapshot(self_ptr self) {
  auto& st = self->state;
  room_snapshot snap{st.room, st.epoch, st.seq, {}};
  for (auto& [_, e] : st.relays) {
    relay_members rm{e.relay, {}};
    for (auto& [conn, user] : e.members)
      rm.members.push_back(member_info{conn, user});
    snap.relays.push_back(std::move(rm));
  }
  return snap;
}

} // namespace

caf::behavior room(caf::stateful_actor<room_state>* self, std::string name,
                   caf::actor directory, duration idle_timeout, caf::actor events) {
  harden(self, "room");
  auto& st = self->state;
  st.events = std::move(events);
  st.room = std::move(name);
  st.epoch = make_epoch();
  st.directory = std::move(directory);
  st.idle_timeout = idle_timeout;
  arm_idle_timer(self);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (st.relays.erase(dm.source) == 0)
      return;
    if (st.state == phase::forwarding && st.relays_to_release > 0) {
      --st.relays_to_release;
      maybe_finish_move(self);
    } else {
      arm_idle_timer(self);
    }
  });
  return {
    [self](attach_atom, relay_members& rm) -> caf::result<std::uint64_t, std::string, caf::actor> {
      if (divert(self))
        return caf::delegated<std::uint64_t, std::string, caf::actor>{};
      auto& e = entry_for(self, rm.relay);
      e.members.clear();
      for (auto& m : rm.members)
        e.members.emplace(m.conn, std::move(m.user));
      auto& st = self->state;
      return {st.seq, st.epoch, caf::actor_cast<caf::actor>(self)};
    },
    [self](caf::join_atom, const caf::actor& relay, member_info& m) -> caf::result<caf::ok_atom> {
      if (divert(self))
        return caf::delegated<caf::ok_atom>{};
      entry_for(self, relay).members.emplace(m.conn, std::move(m.user));
      return caf::ok_atom::value;
    },
    [self](caf::leave_atom, const caf::actor& relay, std::uint64_t conn) {
      if (divert(self))
        return;
      auto it = self->state.relays.find(relay.address());
      if (it != self->state.relays.end())
        it->second.members.erase(conn);
    },
    [self](detach_atom, const caf::actor& relay) {
      if (divert(self))
        return;
      if (self->state.relays.erase(relay.address()) > 0) {
        self->demonitor(relay);
        arm_idle_timer(self);
      }
    },
    [self](caf::publish_atom, envelope& env) -> caf::result<std::uint64_t> {
      if (divert(self))
        return caf::delegated<std::uint64_t>{};
      auto& st = self->state;
      // Encoded once; one message (shared, copy-on-write) per node.
      auto seq = ++st.seq;
      auto text = encode_message(st.room, env.from, seq, env.data);
      if (st.events)
        self->send(st.events, caf::publish_atom::value, st.room, env.from, text);
      auto msg = caf::make_message(fanout_atom::value, seq, std::move(text), env.sender,
                                   env.echo);
      for (auto& [_, e] : st.relays) {
        count_if_remote(self, e.relay, kind::room);
        self->send(e.relay, msg);
      }
      return st.seq;
    },
    [self](stop_atom) {
      auto& st = self->state;
      bool idle = st.relays.empty() && st.state == phase::serving;
      if (idle)
        self->quit();
      return idle;
    },
    [self](caf::idle_atom, std::uint64_t generation) {
      auto& st = self->state;
      if (generation == st.idle_generation && st.relays.empty() && st.state == phase::serving)
        self->send(st.directory, caf::idle_atom::value, st.room);
    },
    [self](handoff_atom, const caf::actor& target) {
      auto& st = self->state;
      auto rp = self->make_response_promise();
      if (st.state != phase::serving) {
        rp.deliver(caf::ok_atom::value);
        return rp;
      }
      st.state = phase::moving;
      count_if_remote(self, target, kind::control);
      self->request(target, std::chrono::seconds{10}, adopt_atom::value, st.room, snapshot(self))
        .then(
          [self, rp](caf::actor successor) mutable {
            auto& st = self->state;
            st.successor = successor;
            st.state = phase::forwarding;
            st.relays_to_release = st.relays.size();
            for (auto& [_, e] : st.relays)
              self->send(e.relay, moved_atom::value, successor);
            auto held = std::move(st.held);
            for (auto& fn : held)
              fn();
            rp.deliver(caf::ok_atom::value);
            maybe_finish_move(self);
          },
          [self, rp](caf::error& err) mutable {
            // The target is gone: keep serving here; the directory retries
            // on its next view.
            auto& st = self->state;
            spdlog::warn("room {}: handoff failed: {}", st.room, caf::to_string(err));
            st.state = phase::serving;
            auto held = std::move(st.held);
            for (auto& fn : held)
              fn();
            rp.deliver(std::move(err));
          });
      return rp;
    },
    [self](release_atom, const caf::actor& relay) {
      auto& st = self->state;
      if (st.state == phase::forwarding) {
        // Everything this relay sent us is forwarded; let the successor
        // tell it to go ahead (after what we forwarded, in order).
        self->send(st.successor, release_atom::value, relay, true);
        if (st.relays.erase(relay.address()) > 0 && st.relays_to_release > 0) {
          self->demonitor(relay);
          --st.relays_to_release;
        }
        maybe_finish_move(self);
      }
    },
    [self](release_atom, const caf::actor& relay, bool) {
      if (divert(self))
        return;
      auto& st = self->state;
      count_if_remote(self, relay, kind::control);
      self->send(relay, release_atom::value, st.epoch, st.seq);
    },
    [self](adopt_atom, const std::string&, room_snapshot& snap) -> caf::result<caf::actor> {
      if (divert(self))
        return caf::delegated<caf::actor>{};
      auto& st = self->state;
      if (st.seq == 0 && st.relays.empty()) {
        // A fresh room taking over: same incarnation, seq continues.
        st.epoch = std::move(snap.epoch);
        st.seq = snap.seq;
      }
      for (auto& rm : snap.relays) {
        auto& e = entry_for(self, rm.relay);
        for (auto& m : rm.members)
          e.members.emplace(m.conn, std::move(m.user));
      }
      return caf::actor_cast<caf::actor>(self);
    },
  };
}

} // namespace rc
