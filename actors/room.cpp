#include "actors/room.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>

#include <chrono>
#include <random>

#include "actors/hardening.hpp"
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

void arm_idle_timer(caf::stateful_actor<room_state>* self) {
  auto& st = self->state;
  ++st.idle_generation;
  if (st.members.empty())
    self->delayed_send(self, st.idle_timeout, caf::idle_atom::value, st.idle_generation);
}

} // namespace

caf::behavior room(caf::stateful_actor<room_state>* self, std::string name,
                   caf::actor directory, duration idle_timeout) {
  harden(self, "room");
  auto& st = self->state;
  st.room = std::move(name);
  st.epoch = make_epoch();
  st.directory = std::move(directory);
  st.idle_timeout = idle_timeout;
  arm_idle_timer(self);
  self->set_down_handler([self](caf::down_msg& dm) {
    if (self->state.members.erase(dm.source) > 0)
      arm_idle_timer(self);
  });
  return {
    [self](caf::join_atom, member_ref& m) -> caf::result<std::uint64_t, std::string, caf::actor> {
      auto& st = self->state;
      auto key = m.conn.address();
      if (st.members.count(key) == 0) {
        self->monitor(m.conn);
        st.members.emplace(key, std::move(m));
        arm_idle_timer(self);
      }
      return {st.seq, st.epoch, caf::actor_cast<caf::actor>(self)};
    },
    [self](caf::leave_atom, const caf::actor& conn) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      if (st.members.erase(conn.address()) == 0)
        return make_error(error_code::not_member);
      self->demonitor(conn);
      arm_idle_timer(self);
      return caf::ok_atom::value;
    },
    [self](caf::publish_atom, envelope& env) -> caf::result<std::uint64_t> {
      auto& st = self->state;
      if (env.sender && st.members.count(env.sender) == 0)
        return make_error(error_code::not_member);
      auto t0 = std::chrono::steady_clock::now();
      auto frame = make_frame(encode_message(st.room, env.from, ++st.seq, env.data));
      std::uint64_t delivered = 0;
      for (auto& [addr, m] : st.members) {
        if (addr == env.sender && !env.echo)
          continue;
        m.link->deliver(frame);
        ++delivered;
      }
      auto& mx = metrics::global();
      mx.messages_delivered += delivered;
      mx.fanout_latency.observe(seconds_since(t0));
      return st.seq;
    },
    [self](stop_atom) {
      bool empty = self->state.members.empty();
      if (empty)
        self->quit();
      return empty;
    },
    [self](caf::idle_atom, std::uint64_t generation) {
      auto& st = self->state;
      if (generation == st.idle_generation && st.members.empty())
        self->send(st.directory, caf::idle_atom::value, st.room);
    },
  };
}

} // namespace rc
