#include "actors/relay.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/sec.hpp>
#include <caf/send.hpp>

#include <algorithm>

#include "actors/hardening.hpp"
#include "actors/locator.hpp"
#include "actors/protocol.hpp"
#include "actors/request_timeout.hpp"
#include "common/metrics.hpp"

namespace rc {

namespace {

using self_ptr = relay_actor*;
using phase = relay_state::phase;
using kind = metrics::cluster_kind;

constexpr auto hold_limit = std::chrono::seconds{5};
constexpr auto request_timeout = std::chrono::seconds{5};
/// How long a publish handed to the room waits for its answer (the sweep
/// runs every half of it, so `unavailable` comes after 10 to 15 s).
constexpr auto publish_timeout = std::chrono::seconds{10};

void arm_idle_timer(self_ptr self) {
  auto& st = self->state;
  ++st.idle_generation;
  if (st.members.empty())
    self->delayed_send(self, st.idle_timeout, caf::idle_atom::value, st.idle_generation);
}

relay_members snapshot_members(self_ptr self) {
  relay_members out{self, {}};
  for (auto& [addr, m] : self->state.members)
    out.members.push_back(member_info{addr.id(), m.user});
  return out;
}

/// Tells every member the room's new incarnation.
void announce_epoch(self_ptr self) {
  auto& st = self->state;
  auto frame = make_frame(encode_joined(st.room, st.last_seq, st.epoch, ""));
  for (auto& [_, m] : st.members)
    m.link->deliver(frame);
}

void run_held(self_ptr self) {
  auto held = std::move(self->state.held);
  self->state.held.clear();
  for (auto& h : held)
    h.resume();
}

/// Tells the room, once attached, of the members that left meanwhile (the
/// room ignores one it does not hold).
void announce_leaves(self_ptr self) {
  auto& st = self->state;
  for (auto conn : st.unannounced_leaves) {
    count_if_remote(self, st.room_actor, kind::control);
    self->send(st.room_actor, caf::leave_atom::value, caf::actor_cast<caf::actor>(self), conn);
  }
  st.unannounced_leaves.clear();
}

void hold(self_ptr self, std::function<void()> resume, std::function<void()> expire,
          caf::actor_addr publisher = {}) {
  auto& st = self->state;
  st.held.push_back({std::chrono::steady_clock::now(), std::move(resume), std::move(expire),
                     std::move(publisher)});
  if (st.held.size() == 1)
    self->delayed_send(self, std::chrono::seconds{1}, caf::tick_atom::value);
}

void attach(self_ptr self);

void schedule_attach(self_ptr self) {
  auto& st = self->state;
  st.state = phase::detached;
  // Backoff 50 ms, 100 ms, ... up to 1 s: the membership may need a moment
  // to learn that the old owner is gone.
  auto delay = std::chrono::milliseconds{std::min(1000, 50 << std::min(st.attach_failures, 5))};
  ++st.attach_failures;
  self->delayed_send(self, delay, retry_atom::value);
}

void on_attached(self_ptr self, std::uint64_t seq, const std::string& epoch, caf::actor room) {
  auto& st = self->state;
  if (st.room_actor && st.room_actor != room)
    self->demonitor(st.room_actor);
  st.room_actor = std::move(room);
  self->monitor(st.room_actor);
  st.attach_failures = 0;
  bool fresh_epoch = !st.epoch.empty() && st.epoch != epoch;
  // Back to the incarnation we knew (the room may replay from seq 1 what
  // it kept for late relays): what our members have seen stays seen.
  bool same_epoch = !st.epoch.empty() && st.epoch == epoch;
  st.last_seq = same_epoch ? std::max(st.last_seq, seq) : seq;
  st.epoch = epoch;
  st.state = phase::attached;
  if (fresh_epoch)
    announce_epoch(self);
  announce_leaves(self);
  run_held(self);
}

void attach(self_ptr self) {
  auto& st = self->state;
  st.state = phase::attaching;
  self->request(st.locator, request_timeout, locate_atom::value, room_atom::value, st.room)
    .then(
      [self](caf::actor dir) {
        auto& st = self->state;
        count_if_remote(self, dir, kind::control);
        self->request(dir, request_timeout, attach_atom::value, st.room, snapshot_members(self))
          .then([self](std::uint64_t seq, std::string& epoch,
                       caf::actor& room) { on_attached(self, seq, epoch, std::move(room)); },
                [self](caf::error&) { schedule_attach(self); });
      },
      [self](caf::error&) { schedule_attach(self); });
}

// -- requests from connections ---------------------------------------------------

void do_join(self_ptr self, member_ref m, std::string id, caf::response_promise rp) {
  auto& st = self->state;
  if (st.state != phase::attached) {
    hold(self, [self, m, id, rp]() mutable { do_join(self, std::move(m), std::move(id), rp); },
         [rp]() mutable { rp.deliver(make_error(error_code::unavailable)); });
    return;
  }
  auto key = m.conn.address();
  if (st.members.count(key) > 0) {
    m.link->reply(make_frame(encode_joined(st.room, st.last_seq, st.epoch, id)));
    rp.deliver(caf::actor_cast<caf::actor>(self));
    return;
  }
  count_if_remote(self, st.room_actor, kind::control);
  ++st.joins_in_flight;
  ++st.idle_generation; // an idle timer armed before this join is void
  auto join = self->request(st.room_actor, request_timeout, caf::join_atom::value,
                            caf::actor_cast<caf::actor>(self), member_info{key.id(), m.user});
  join.then(
      [self, m, id, rp, req = join.id()](std::vector<std::string>& to_joiner) mutable {
        forget_request_timeout(self, req);
        auto& st = self->state;
        --st.joins_in_flight;
        // Added only now: the room's messages after its answer come after
        // `joined` and the logic's frames for the joiner.
        self->monitor(m.conn);
        m.link->reply(make_frame(encode_joined(st.room, st.last_seq, st.epoch, id)));
        for (auto& text : to_joiner)
          m.link->deliver(make_frame(std::move(text)));
        st.by_id.emplace(m.conn.id(), m.conn.address());
        st.members.emplace(m.conn.address(), std::move(m));
        ++st.idle_generation;
        rp.deliver(caf::actor_cast<caf::actor>(self));
      },
      [self, rp, room = st.room_actor, conn = key.id()](caf::error& err) mutable {
        if (--self->state.joins_in_flight == 0 && self->state.members.empty())
          arm_idle_timer(self);
        // A join that timed out may still be carried out by the room (one
        // moving holds it): undo it there, after it (the room ignores a
        // member it does not hold).
        if (err == caf::sec::request_timeout) {
          count_if_remote(self, room, kind::control);
          self->send(room, caf::leave_atom::value, caf::actor_cast<caf::actor>(self), conn);
        }
        rp.deliver(std::move(err));
      });
}

void remove_member(self_ptr self, const caf::actor_addr& conn) {
  auto& st = self->state;
  if (st.members.erase(conn) == 0)
    return;
  st.by_id.erase(conn.id());
  if (st.room_actor && st.state == phase::attached) {
    count_if_remote(self, st.room_actor, kind::control);
    self->send(st.room_actor, caf::leave_atom::value, caf::actor_cast<caf::actor>(self),
               conn.id());
  } else {
    st.unannounced_leaves.push_back(conn.id());
  }
  arm_idle_timer(self);
}

/// Writes a logic's frame to every member but connection `except` (actor
/// ids start at 1: 0 excepts nobody).
void deliver_all(self_ptr self, const std::string& text, std::uint64_t except = 0) {
  auto frame = make_frame(text);
  for (auto& [addr, m] : self->state.members)
    if (addr.id() != except)
      m.link->deliver(frame);
}

/// Whether a publish of member `conn` waits for the room (or to be handed on).
bool publishes_wait(self_ptr self, const caf::actor_addr& conn) {
  auto& st = self->state;
  return std::any_of(st.pending.begin(), st.pending.end(),
                     [&](auto& p) { return p.sender == conn; })
         || std::any_of(st.held.begin(), st.held.end(),
                        [&](auto& h) { return h.publisher == conn; });
}

/// `left` for a member, after which no frame of the room reaches it.
void do_leave(self_ptr self, const caf::actor& conn, const std::string& id) {
  auto& st = self->state;
  auto it = st.members.find(conn.address());
  if (it == st.members.end())
    return;
  self->demonitor(conn);
  it->second.link->reply(make_frame(encode_left(st.room, id)));
  remove_member(self, conn.address());
}

/// Carries out the deferred leaves whose members have no publish waiting now.
void finish_leaves(self_ptr self) {
  auto& leaving = self->state.leaving;
  if (leaving.empty())
    return;
  auto ready = std::stable_partition(leaving.begin(), leaving.end(), [&](auto& l) {
    return publishes_wait(self, l.conn.address());
  });
  std::vector<relay_state::deferred_leave> now(std::make_move_iterator(ready),
                                               std::make_move_iterator(leaving.end()));
  leaving.erase(ready, leaving.end());
  for (auto& l : now) {
    do_leave(self, l.conn, l.id);
    l.rp.deliver(caf::ok_atom::value);
  }
}

void answer_publish_failure(const std::string& id, const client_link_ptr& link,
                            const caf::error& err) {
  auto [code, message] = describe_failure(err, "publish");
  metrics::global().count_error(code);
  link->reply(make_frame(encode_error(id, code, message)));
}

/// Answers the pending publish `token` (if it still waits) with the room's
/// answer: `ack` with the seq (only when the member gave an id) or `error`.
void answer_publish(self_ptr self, std::uint64_t token, caf::expected<std::uint64_t> seq) {
  auto& pending = self->state.pending;
  // The room answers in order, so this is nearly always the front.
  auto it = std::find_if(pending.begin(), pending.end(),
                         [token](auto& p) { return p.token == token; });
  if (it == pending.end())
    return; // answered already (timeout or the room's death)
  if (!seq)
    answer_publish_failure(it->id, it->link, seq.error());
  else if (!it->id.empty())
    it->link->reply(make_frame(encode_ack(it->id, *seq)));
  pending.erase(it);
  finish_leaves(self);
}

/// Answers the `n` oldest pending publishes `unavailable`: all of them when
/// the room died, the ones waiting too long at a sweep.
void fail_oldest_pending(self_ptr self, std::size_t n) {
  auto& pending = self->state.pending;
  auto end = pending.begin() + static_cast<std::ptrdiff_t>(n);
  std::for_each(pending.begin(), end, [](auto& p) {
    answer_publish_failure(p.id, p.link, make_error(error_code::unavailable));
  });
  pending.erase(pending.begin(), end);
  finish_leaves(self);
}

/// One timer per relay instead of one per publish (CAF's request timeout):
/// at a few publishes a second per room, the clock thread's wake-ups were a
/// measurable part of a publish's cost.
void arm_sweep(self_ptr self) {
  auto& st = self->state;
  if (st.sweep_armed)
    return;
  st.sweep_armed = true;
  self->delayed_send(self, publish_timeout / 2, sweep_atom::value);
}

/// Hands a member's publish to the room; the relay answers it on the
/// member's link, so the connection needs no second activation.
void do_publish(self_ptr self, publish_request pub) {
  auto& st = self->state;
  if (st.members.count(pub.env.sender) == 0)
    return answer_publish_failure(pub.id, pub.link, make_error(error_code::not_member));
  if (st.state != phase::attached) {
    auto id = pub.id;
    auto link = pub.link;
    auto sender = pub.env.sender;
    hold(self, [self, pub = std::move(pub)]() mutable { do_publish(self, std::move(pub)); },
         [id, link] { answer_publish_failure(id, link, make_error(error_code::unavailable)); },
         std::move(sender));
    return;
  }
  auto token = ++st.next_token;
  st.pending.push_back({token, std::move(pub.id), std::move(pub.link),
                        std::chrono::steady_clock::now(), pub.env.sender});
  arm_sweep(self);
  count_if_remote(self, st.room_actor, kind::request);
  self->send(st.room_actor, caf::publish_atom::value, std::move(pub.env), token);
}

/// The handlers every relay actor shares (see actors/shared_behavior.hpp).
caf::behavior relay_handlers() {
  return {
    [](caf::join_atom, member_ref& m, std::string& id) {
      auto self = relay_actor::current();
      auto rp = self->make_response_promise();
      do_join(self, std::move(m), std::move(id), rp);
      return rp;
    },
    [](caf::leave_atom, const caf::actor& conn, std::string& id) -> caf::result<caf::ok_atom> {
      auto self = relay_actor::current();
      if (publishes_wait(self, conn.address())) {
        auto rp = self->make_response_promise();
        self->state.leaving.push_back({conn, std::move(id), rp});
        return rp;
      }
      do_leave(self, conn, id);
      return caf::ok_atom::value;
    },
    [](caf::publish_atom, publish_request& pub) {
      auto self = relay_actor::current();
      do_publish(self, std::move(pub));
    },
    [](published_atom, std::uint64_t token, std::uint64_t seq) {
      auto self = relay_actor::current();
      answer_publish(self, token, seq);
    },
    [](published_atom, std::uint64_t token, caf::error& err) {
      auto self = relay_actor::current();
      answer_publish(self, token, std::move(err));
    },
    [](fanout_atom, std::uint64_t seq, const std::string& text, const caf::actor_addr& sender,
       bool echo) {
      auto self = relay_actor::current();
      auto& st = self->state;
      if (seq <= st.last_seq)
        return; // seen already (a catch-up replay after a re-attach)
      auto t0 = std::chrono::steady_clock::now();
      st.last_seq = seq;
      auto frame = make_frame(text);
      // The sender is looked up once: comparing actor addresses member by
      // member (an out-of-line call that reads each member's actor) was 4%
      // of a fan-out's CPU samples.
      const member_ref* skip = nullptr;
      if (!echo && sender) // none for a publish from outside (AMQP, HTTP)
        if (auto it = st.members.find(sender); it != st.members.end())
          skip = &it->second;
      std::uint64_t delivered = 0;
      for (auto& [_, m] : st.members) {
        if (&m == skip)
          continue;
        m.link->deliver(frame);
        ++delivered;
      }
      auto& mx = metrics::global();
      mx.messages_delivered += delivered;
      mx.fanout_latency.observe(seconds_since(t0));
    },
    [](deliver_atom, const std::string& text) {
      auto self = relay_actor::current();
      deliver_all(self, text);
    },
    [](deliver_atom, const std::string& text, std::uint64_t except_conn) {
      auto self = relay_actor::current();
      deliver_all(self, text, except_conn); // the member being introduced
    },
    [](deliver_atom, std::uint64_t conn, std::string& text) {
      auto self = relay_actor::current();
      auto& st = self->state;
      auto it = st.by_id.find(conn);
      if (it != st.by_id.end())
        st.members.at(it->second).link->deliver(make_frame(std::move(text)));
    },
    [](restart_atom, const std::string& epoch, std::uint64_t seq) {
      auto self = relay_actor::current();
      auto& st = self->state;
      st.epoch = epoch;
      st.last_seq = seq;
      announce_epoch(self);
    },
    [](moved_atom, caf::actor& successor) {
      auto self = relay_actor::current();
      // The room moves to another node: hold requests until the new room
      // has everything the old one forwarded, so nothing is reordered.
      auto& st = self->state;
      if (st.room_actor)
        self->demonitor(st.room_actor);
      st.room_actor = std::move(successor);
      self->monitor(st.room_actor);
      st.state = phase::releasing;
      // To the room that moved, which sent this: a relay attaching again
      // (an attach that timed out, then carried out) holds no handle of it,
      // and that room waits for every relay's release.
      if (auto old = caf::actor_cast<caf::actor>(self->current_sender()))
        self->send(old, release_atom::value, caf::actor_cast<caf::actor>(self));
    },
    [](release_atom, const std::string& epoch, std::uint64_t seq) {
      auto self = relay_actor::current();
      auto& st = self->state;
      if (st.state != phase::releasing)
        return;
      st.state = phase::attached;
      if (epoch != st.epoch) {
        st.epoch = epoch;
        st.last_seq = seq;
        announce_epoch(self);
      }
      announce_leaves(self);
      run_held(self);
    },
    [](retry_atom) {
      auto self = relay_actor::current();
      if (self->state.state == phase::detached)
        attach(self);
    },
    [](caf::tick_atom) {
      auto self = relay_actor::current();
      // Answer requests that waited too long for a room with `unavailable`.
      auto& st = self->state;
      auto now = std::chrono::steady_clock::now();
      auto expired = std::stable_partition(st.held.begin(), st.held.end(), [&](auto& h) {
        return now - h.since < hold_limit;
      });
      std::for_each(expired, st.held.end(), [](auto& h) { h.expire(); });
      st.held.erase(expired, st.held.end());
      finish_leaves(self);
      if (!st.held.empty())
        self->delayed_send(self, std::chrono::seconds{1}, caf::tick_atom::value);
    },
    [](sweep_atom) {
      auto self = relay_actor::current();
      auto& st = self->state;
      st.sweep_armed = false;
      auto now = std::chrono::steady_clock::now();
      auto fresh = std::find_if(st.pending.begin(), st.pending.end(),
                                [now](auto& p) { return now - p.since < publish_timeout; });
      fail_oldest_pending(self, static_cast<std::size_t>(fresh - st.pending.begin()));
      if (!st.pending.empty())
        arm_sweep(self);
    },
    [](stop_atom) {
      auto self = relay_actor::current();
      auto& st = self->state;
      // Publishes of members that left still get their answers.
      bool idle = st.members.empty() && st.held.empty() && st.pending.empty()
                  && st.joins_in_flight == 0;
      if (idle)
        self->quit();
      else if (st.members.empty())
        arm_idle_timer(self); // ask again later
      return idle;
    },
    [](caf::idle_atom, std::uint64_t generation) {
      auto self = relay_actor::current();
      auto& st = self->state;
      if (generation == st.idle_generation && st.members.empty())
        self->send(st.directory, caf::idle_atom::value, st.room);
    },
  };
}

} // namespace

relay_state::~relay_state() {
  if (room_actor)
    caf::anon_send(room_actor, detach_atom::value, caf::actor_cast<caf::actor>(self_addr));
  // A relay stops only with no members and nothing waiting, so this is a
  // relay that failed. Its members would wait for answers and messages it
  // will never write: answer the publishes, and close the connections
  // (1011) so that their clients rejoin.
  for (auto& p : pending)
    answer_publish_failure(p.id, p.link, make_error(error_code::unavailable));
  for (auto& [addr, m] : members)
    m.link->close(close_reason::server_error);
}

caf::behavior relay(relay_actor* self, std::string room, caf::actor directory,
                    caf::actor locator, duration idle_timeout) {
  harden(self, "relay");
  auto& st = self->state;
  st.room = std::move(room);
  st.directory = std::move(directory);
  st.locator = std::move(locator);
  st.idle_timeout = idle_timeout;
  st.self_addr = self->address();
  arm_idle_timer(self);
  attach(self);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (st.room_actor && dm.source == st.room_actor.address()) {
      // The room's node failed (or the room crashed): find its new owner.
      // What the old room had not answered, it never will.
      st.room_actor = nullptr;
      fail_oldest_pending(self, st.pending.size());
      schedule_attach(self);
      return;
    }
    remove_member(self, dm.source);
  });
  return relay_actor::shared<relay_handlers>();
}

} // namespace rc
