#include "actors/room.hpp"

#include <caf/event_based_actor.hpp>

#include <random>

#include "actors/hardening.hpp"
#include "actors/locator.hpp"
#include "actors/protocol.hpp"
#include "common/metrics.hpp"

namespace rc {

std::uint64_t make_epoch_number() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  constexpr std::uint64_t names = 3656158440062976; // 36^10: ten base-36 digits
  return 1 + rng() % (names - 1);
}

std::string epoch_text(std::uint64_t epoch) {
  static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
  std::string out(10, '0');
  for (auto it = out.rbegin(); it != out.rend(); ++it, epoch /= 36)
    *it = digits[epoch % 36];
  return out;
}

std::string make_epoch() {
  return epoch_text(make_epoch_number());
}

room_state::room_state() {
  metrics::global().rooms++;
}

room_state::~room_state() {
  metrics::global().rooms--;
}

namespace {

using self_ptr = room_actor*;
using phase = move_state::phase;
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


void maybe_finish_move(self_ptr self) {
  auto& st = self->state;
  if (st.move.state == phase::forwarding && st.relays_to_release == 0)
    self->quit();
}

/// How many messages a new room keeps for relays that re-attach late after
/// a failover (for `room_catch_up_window`).
constexpr std::size_t catch_up_messages = 1000;
constexpr std::size_t catch_up_bytes = 4 << 20;

/// Logs a message of a young room; past its limits the log ends (later
/// relays then see the seq they missed in their `joined`).
void keep_for_catch_up(self_ptr self, const std::string& text) {
  auto& log = self->state.catch_up;
  if (!log.active)
    return;
  if (std::chrono::steady_clock::now() > log.until || log.frames.size() >= catch_up_messages
      || log.bytes + text.size() > catch_up_bytes) {
    log = {};
    return;
  }
  log.bytes += text.size();
  log.frames.push_back(text);
}

/// Sends the `message` frame `text` of `seq` to every relay: encoded once,
/// one message (shared, copy-on-write) per node.
void send_to_relays(self_ptr self, std::uint64_t seq, std::string text,
                    const caf::actor_addr& sender, bool echo) {
  auto msg = caf::make_message(fanout_atom::value, seq, std::move(text), sender, echo);
  for (auto& [_, e] : self->state.relays) {
    if (e.replaying)
      continue; // gets this one from the log, after the older ones
    count_if_remote(self, e.relay, kind::room);
    self->send(e.relay, msg);
  }
}

/// room_context for the room's logic, valid during one callback.
class context : public room_context {
public:
  explicit context(self_ptr self) : self_(self) {}

  const std::string& room() const override { return self_->state.room; }

  std::uint64_t seq() const override { return self_->state.seq; }

  std::vector<member> members() const override {
    std::vector<member> out;
    for (auto& [id, m] : self_->state.members)
      if (self_->state.unintroduced.count(id) == 0)
        out.push_back(m.who);
    return out;
  }

  void publish(const std::string& from, const nlohmann::json& data) override {
    fan_out(self_, from, data.dump(), {}, false);
  }

  void send_all(const nlohmann::json& frame) override {
    auto& st = self_->state;
    auto text = frame.dump();
    auto msg = caf::make_message(deliver_atom::value, text);
    // A member being introduced (after a restart or a merge) is attached
    // already; on a normal join the joiner is not: either way it is not
    // among "everyone" until its on_join is over.
    const room_state::member_entry* skip = nullptr;
    if (st.introducing != 0)
      if (auto it = st.members.find(st.introducing); it != st.members.end())
        skip = &it->second;
    for (auto& [addr, e] : st.relays) {
      count_if_remote(self_, e.relay, kind::room);
      if (skip && addr == skip->relay)
        self_->send(e.relay, deliver_atom::value, text, skip->conn);
      else
        self_->send(e.relay, msg);
    }
  }

  void send_to(const member& m, const nlohmann::json& frame) override {
    auto& st = self_->state;
    auto it = st.members.find(m.id);
    if (it == st.members.end())
      return;
    auto r = st.relays.find(it->second.relay);
    if (r == st.relays.end())
      return;
    count_if_remote(self_, r->second.relay, kind::room);
    self_->send(r->second.relay, deliver_atom::value, it->second.conn, frame.dump());
  }

  void send_user(const std::string& user, const nlohmann::json& data) override {
    auto& st = self_->state;
    if (!st.locator || !*st.locator)
      return;
    envelope env{st.room, data.dump(), false, {}};
    auto self = self_;
    auto failed = [self, user](caf::error& err) {
      spdlog::warn("room {}: private to {} failed: {}", self->state.room, user,
                   log_text(err));
    };
    self->request(*st.locator, std::chrono::seconds{5}, locate_atom::value, user_atom::value, user)
      .then(
        [self, user, env, failed](caf::actor dir) {
          count_if_remote(self, dir, kind::request);
          self->request(dir, std::chrono::seconds{5}, caf::publish_atom::value, user, env)
            .then([](std::uint64_t) {}, failed);
        },
        failed);
  }

  void every(std::chrono::milliseconds interval) override {
    auto& st = self_->state;
    st.timer_interval = interval;
    ++st.timer_generation;
    if (interval.count() > 0)
      self_->delayed_send(self_, interval, caf::tick_atom::value, st.timer_generation);
  }

  /// Encodes one `message` frame with the next seq and sends it once per relay.
  static std::uint64_t fan_out(self_ptr self, const std::string& from, const std::string& data,
                               const caf::actor_addr& sender, bool echo) {
    auto& st = self->state;
    auto seq = ++st.seq;
    auto text = encode_message(st.room, from, seq, data);
    if (st.events)
      self->send(st.events, caf::publish_atom::value, st.room, from, text);
    keep_for_catch_up(self, text);
    send_to_relays(self, seq, std::move(text), sender, echo);
    return seq;
  }

private:
  self_ptr self_;
};

void restart(self_ptr self, const std::string& why);

/// Runs one logic callback; an exception restarts the room. Returns false
/// when the callback failed.
template <class F>
bool guarded(self_ptr self, F&& f) {
  try {
    f();
    return true;
  } catch (const std::exception& e) {
    restart(self, e.what());
  } catch (...) {
    restart(self, "unknown exception");
  }
  return false;
}

/// Frames the logic wants the joiner to get, as text.
std::vector<std::string> to_text(const std::vector<nlohmann::json>& frames) {
  std::vector<std::string> out;
  out.reserve(frames.size());
  for (auto& f : frames)
    out.push_back(f.dump());
  return out;
}

member& add_member(self_ptr self, const caf::actor& relay, std::uint64_t conn, std::string user) {
  auto& st = self->state;
  auto id = ++st.next_member_id;
  entry_for(self, relay).members[conn] = id;
  auto& m = st.members[id];
  m.who = member{id, std::move(user)};
  m.relay = relay.address();
  m.conn = conn;
  return m.who;
}

void remove_member(self_ptr self, std::uint64_t id) {
  auto& st = self->state;
  auto it = st.members.find(id);
  if (it == st.members.end())
    return;
  auto who = it->second.who;
  st.members.erase(it);
  if (st.unintroduced.erase(id) > 0)
    return; // the logic never met it
  if (!st.plain) {
    context ctx{self};
    guarded(self, [&] { st.logic->on_leave(ctx, who); });
  }
}

/// Forgets a relay and its members (it detached or its node died). Returns
/// false when it was not attached.
bool drop_relay(self_ptr self, const caf::actor_addr& relay) {
  auto& st = self->state;
  auto it = st.relays.find(relay);
  if (it == st.relays.end())
    return false;
  auto ids = it->second.members;
  st.relays.erase(it);
  for (auto& [_, id] : ids)
    remove_member(self, id);
  return true;
}

/// Tells the logic about members it has not seen (after a restart or when
/// a relay re-attaches to a new room); refusals are ignored, they are
/// members already.
void introduce(self_ptr self, const std::vector<std::uint64_t>& ids) {
  auto& st = self->state;
  if (st.plain)
    return;
  context ctx{self};
  for (auto id : ids) {
    auto it = st.members.find(id);
    if (it == st.members.end() || st.unintroduced.count(id) == 0)
      continue;
    auto who = it->second.who;
    join_decision d;
    // As on a normal join, the joiner is not among members() yet.
    st.introducing = id;
    bool ok = guarded(self, [&] { d = st.logic->on_join(ctx, who); });
    st.introducing = 0;
    if (!ok)
      return;
    st.unintroduced.erase(id);
    for (auto& f : d.to_joiner)
      ctx.send_to(who, f);
  }
}

void start_logic(self_ptr self) {
  auto& st = self->state;
  st.timer_interval = duration{0};
  ++st.timer_generation;
  if (st.plain)
    return;
  context ctx{self};
  guarded(self, [&] { st.logic->on_start(ctx); });
}

void restart(self_ptr self, const std::string& why) {
  auto& st = self->state;
  if (st.restarting) {
    // The fresh logic failed too: fall back to the plain room.
    spdlog::error("room {}: logic failed again ({}); running it as a plain room", st.room, why);
    st.logic = std::make_unique<room_logic>();
    st.plain = true;
    return;
  }
  spdlog::warn("room {}: logic failed ({}); restarting the room", st.room, why);
  st.restarting = true;
  st.logic = st.kinds ? st.kinds->make(st.room) : std::make_unique<room_logic>();
  st.epoch = make_epoch();
  st.seq = 0;
  st.catch_up = {};
  for (auto& [_, e] : st.relays) {
    count_if_remote(self, e.relay, kind::control);
    self->send(e.relay, restart_atom::value, st.epoch, st.seq);
  }
  start_logic(self);
  std::vector<std::uint64_t> ids;
  for (auto& [id, _] : st.members) {
    ids.push_back(id);
    st.unintroduced.insert(id);
  }
  introduce(self, ids);
  st.restarting = false;
}

/// The member behind a publish's sending connection, if any.
const room_state::member_entry* find_sender(self_ptr self, const caf::actor_addr& sender) {
  auto& st = self->state;
  if (!sender)
    return nullptr;
  for (auto& [_, e] : st.relays) {
    if (e.relay.node() != sender.node())
      continue;
    auto it = e.members.find(sender.id());
    if (it != e.members.end())
      return &st.members.at(it->second);
  }
  return nullptr;
}

/// Runs a publish through the room's logic: the message's seq (0 when the
/// logic answered the sender only or dropped it) or the logic's refusal.
caf::expected<std::uint64_t> take_publish(self_ptr self, envelope& env) {
  auto& st = self->state;
  if (st.plain)
    return context::fan_out(self, env.from, env.data, env.sender, env.echo);
  auto sender = find_sender(self, env.sender);
  member from = sender ? sender->who : member{0, env.from};
  context ctx{self};
  publish_decision d;
  if (!guarded(self, [&] { d = st.logic->on_publish(ctx, from, nlohmann::json::parse(env.data)); }))
    return make_error(error_code::internal, "the room's logic failed; the room restarted");
  switch (d.what) {
    case publish_decision::kind::forward:
      return context::fan_out(self, env.from, d.data.dump(), env.sender, env.echo);
    case publish_decision::kind::reply:
      if (sender)
        ctx.send_to(from, d.frame);
      return std::uint64_t{0};
    case publish_decision::kind::refuse:
      return make_error(d.why.code, d.why.message);
    case publish_decision::kind::drop:
      break;
  }
  return std::uint64_t{0};
}

room_snapshot snapshot(self_ptr self) {
  auto& st = self->state;
  room_snapshot snap{st.room, st.epoch, st.seq, {}, {}};
  for (auto& [_, e] : st.relays) {
    relay_members rm{e.relay, {}};
    for (auto& [conn, id] : e.members)
      rm.members.push_back(member_info{conn, st.members.at(id).who.user});
    snap.relays.push_back(std::move(rm));
  }
  if (!st.plain)
    guarded(self, [&] { snap.logic_state = st.logic->snapshot(); });
  return snap;
}

/// The handlers every room actor shares (see actors/shared_behavior.hpp).
caf::behavior room_handlers() {
  return {
    [](attach_atom, relay_members& rm) -> caf::result<std::uint64_t, std::string, caf::actor> {
      auto self = room_actor::current();
      if (auto d = self->state.move.divert(self); d != diverted::no)
        return diverted_result<std::uint64_t, std::string, caf::actor>(d);
      auto& e = entry_for(self, rm.relay);
      std::vector<std::uint64_t> fresh;
      auto& st = self->state;
      for (auto& m : rm.members)
        if (e.members.count(m.conn) == 0)
          fresh.push_back(add_member(self, rm.relay, m.conn, std::move(m.user)).id);
      // Members of a failed incarnation, brought by a relay after messages
      // of this one went out (to relays back earlier, or to nobody: a
      // service's publish may create the room before any relay is back):
      // the relay gets the log replayed from seq 1.
      auto reply_seq = st.seq;
      if (!fresh.empty() && st.catch_up.active && st.catch_up.frames.size() == st.seq
          && st.seq > 0 && std::chrono::steady_clock::now() <= st.catch_up.until) {
        e.replaying = true;
        reply_seq = 0;
        self->send(self, replay_atom::value, rm.relay); // after this reply
      }
      if (!st.plain && !fresh.empty()) {
        // Introduce them after this reply, so the relay writes the fresh
        // `joined` before anything the logic sends them.
        st.unintroduced.insert(fresh.begin(), fresh.end());
        self->send(self, introduce_atom::value, std::move(fresh));
      }
      return {reply_seq, st.epoch, caf::actor_cast<caf::actor>(self)};
    },
    [](young_end_atom) {
      auto self = room_actor::current();
      auto& log = self->state.catch_up;
      if (log.active && std::chrono::steady_clock::now() >= log.until)
        log = {};
    },
    [](replay_atom, const caf::actor& relay) {
      auto self = room_actor::current();
      auto& st = self->state;
      auto it = st.relays.find(relay.address());
      if (it == st.relays.end() || !it->second.replaying)
        return;
      it->second.replaying = false;
      if (st.catch_up.frames.size() != st.seq) {
        // The log reached its limits since the attach: the relay writes a
        // `joined` with the current seq, so its members know what they missed.
        count_if_remote(self, relay, kind::control);
        self->send(relay, restart_atom::value, st.epoch, st.seq);
        return;
      }
      std::uint64_t seq = 0;
      for (auto& text : st.catch_up.frames) {
        count_if_remote(self, relay, kind::room);
        self->send(relay, fanout_atom::value, ++seq, text, caf::actor_addr{}, false);
      }
    },
    [](caf::join_atom, const caf::actor& relay,
       member_info& m) -> caf::result<std::vector<std::string>> {
      auto self = room_actor::current();
      if (auto d = self->state.move.divert(self); d != diverted::no)
        return diverted_result<std::vector<std::string>>(d);
      auto& st = self->state;
      auto& e = entry_for(self, relay);
      if (e.members.count(m.conn) > 0)
        return std::vector<std::string>{};
      if (st.plain) {
        add_member(self, relay, m.conn, std::move(m.user));
        return std::vector<std::string>{};
      }
      context ctx{self};
      member candidate{st.next_member_id + 1, m.user};
      join_decision d;
      if (!guarded(self, [&] { d = st.logic->on_join(ctx, candidate); }))
        return make_error(error_code::internal, "the room's logic failed; the room restarted");
      if (d.refused)
        return make_error(d.refused->code, d.refused->message);
      add_member(self, relay, m.conn, std::move(m.user));
      return to_text(d.to_joiner);
    },
    [](caf::leave_atom, const caf::actor& relay, std::uint64_t conn) -> caf::result<void> {
      auto self = room_actor::current();
      if (auto d = self->state.move.divert(self); d != diverted::no)
        return diverted_result<void>(d);
      auto& st = self->state;
      auto it = st.relays.find(relay.address());
      if (it == st.relays.end())
        return {};
      auto m = it->second.members.find(conn);
      if (m == it->second.members.end())
        return {};
      auto id = m->second;
      it->second.members.erase(m);
      remove_member(self, id);
      return {};
    },
    [](detach_atom, const caf::actor& relay) -> caf::result<void> {
      auto self = room_actor::current();
      if (auto d = self->state.move.divert(self); d != diverted::no)
        return diverted_result<void>(d);
      if (!drop_relay(self, relay.address()))
        return {};
      self->demonitor(relay);
      arm_idle_timer(self);
      return {};
    },
    [](caf::publish_atom, envelope& env) -> caf::result<std::uint64_t> {
      auto self = room_actor::current();
      if (auto d = self->state.move.divert(self); d != diverted::no)
        return diverted_result<std::uint64_t>(d);
      auto seq = take_publish(self, env);
      if (!seq)
        return std::move(seq.error());
      return *seq;
    },
    [](caf::publish_atom, envelope& env, std::uint64_t token) -> caf::result<void> {
      auto self = room_actor::current();
      // From a relay: answered with a message, not a response, so that the
      // relay keeps no CAF response handler for an answer a failed node
      // never sends.
      if (auto d = self->state.move.divert(self); d != diverted::no)
        return diverted_result<void>(d);
      auto seq = take_publish(self, env);
      auto relay = caf::actor_cast<caf::actor>(self->current_sender());
      if (!relay)
        return {};
      if (seq)
        self->send(relay, published_atom::value, token, *seq);
      else
        self->send(relay, published_atom::value, token, std::move(seq.error()));
      return {};
    },
    [](introduce_atom, const std::vector<std::uint64_t>& ids) {
      auto self = room_actor::current();
      introduce(self, ids);
    },
    [](caf::tick_atom, std::uint64_t generation) {
      auto self = room_actor::current();
      auto& st = self->state;
      if (generation != st.timer_generation || st.timer_interval.count() <= 0 || st.plain)
        return;
      context ctx{self};
      if (guarded(self, [&] { st.logic->on_timer(ctx); }) && generation == st.timer_generation)
        self->delayed_send(self, st.timer_interval, caf::tick_atom::value, generation);
    },
    [](stop_atom) {
      auto self = room_actor::current();
      auto& st = self->state;
      bool idle = st.relays.empty() && st.move.state == phase::serving;
      if (idle)
        self->quit();
      return idle;
    },
    [](caf::idle_atom, std::uint64_t generation) {
      auto self = room_actor::current();
      auto& st = self->state;
      if (generation == st.idle_generation && st.relays.empty() && st.move.state == phase::serving)
        self->send(st.directory, caf::idle_atom::value, st.room);
    },
    [](handoff_atom, const caf::actor& target) {
      auto self = room_actor::current();
      auto& st = self->state;
      auto rp = self->make_response_promise();
      if (st.move.state != phase::serving) {
        rp.deliver(caf::ok_atom::value);
        return rp;
      }
      st.move.state = phase::moving;
      count_if_remote(self, target, kind::control);
      self->request(target, move_timeout, adopt_atom::value, st.room, snapshot(self))
        .then(
          [self, rp](caf::actor successor) mutable {
            auto& st = self->state;
            st.move.successor = successor;
            st.move.state = phase::forwarding;
            ++st.timer_generation; // the logic runs on in the successor
            st.relays_to_release = st.relays.size();
            for (auto& [_, e] : st.relays)
              self->send(e.relay, moved_atom::value, successor);
            rp.deliver(caf::ok_atom::value);
            maybe_finish_move(self);
          },
          [self, rp](caf::error& err) mutable {
            // The target is gone: keep serving here; the directory retries
            // on its next view.
            auto& st = self->state;
            spdlog::warn("room {}: handoff failed: {}", st.room, log_text(err));
            st.move.state = phase::serving;
            rp.deliver(std::move(err));
          });
      return rp;
    },
    [](release_atom, const caf::actor& relay) {
      auto self = room_actor::current();
      auto& st = self->state;
      if (st.move.state == phase::forwarding) {
        // Everything this relay sent us is forwarded; let the successor
        // tell it to go ahead (after what we forwarded, in order).
        self->send(st.move.successor, release_atom::value, relay, true);
        if (st.relays.erase(relay.address()) > 0 && st.relays_to_release > 0) {
          self->demonitor(relay);
          --st.relays_to_release;
        }
        maybe_finish_move(self);
      }
    },
    [](release_atom, const caf::actor& relay, bool) -> caf::result<void> {
      auto self = room_actor::current();
      if (auto d = self->state.move.divert(self); d != diverted::no)
        return diverted_result<void>(d);
      auto& st = self->state;
      count_if_remote(self, relay, kind::control);
      self->send(relay, release_atom::value, st.epoch, st.seq);
      std::vector<std::uint64_t> merged;
      for (auto id : st.unintroduced)
        if (auto it = st.members.find(id); it != st.members.end() && it->second.relay == relay.address())
          merged.push_back(id);
      introduce(self, merged);
      return {};
    },
    [](adopt_atom, const std::string&, room_snapshot& snap) -> caf::result<caf::actor> {
      auto self = room_actor::current();
      if (auto d = self->state.move.divert(self); d != diverted::no)
        return diverted_result<caf::actor>(d);
      auto& st = self->state;
      // Fresh (spawned for this adopt), or a stand-in: started here by
      // requests that came just before the room (a node that saw the view
      // change first sent them here), with nothing published yet, or (a
      // plain room) only messages it still keeps in its log: a service's
      // publish may create it (see `takeover_window`). Then it takes over
      // the incarnation, seq and logic state, so that the room's members see
      // no new epoch, and publishes again what it kept, numbered after the
      // room's. Its own few members get a `joined` of the room they are in
      // now (having had what it kept), and are introduced to its logic
      // again. Any other room merges (a healed split, below).
      bool logged = st.plain && st.seq > 0 && st.catch_up.active
                    && st.catch_up.frames.size() == st.seq;
      bool stand_in = std::chrono::steady_clock::now() < st.stand_in_until;
      bool fresh = (st.seq == 0 && st.relays.empty()) || (stand_in && (st.seq == 0 || logged));
      st.stand_in_until = {};
      std::vector<std::uint64_t> newcomers;
      std::vector<std::string> kept;
      if (fresh) {
        kept = std::move(st.catch_up.frames);
        st.epoch = std::move(snap.epoch);
        st.seq = snap.seq;
        st.catch_up = {};
        for (auto& [_, e] : st.relays) {
          count_if_remote(self, e.relay, kind::control);
          self->send(e.relay, restart_atom::value, st.epoch, st.seq + kept.size());
        }
        if (!st.plain)
          for (auto& [id, _] : st.members)
            newcomers.push_back(id);
      }
      std::vector<std::uint64_t> merged;
      for (auto& rm : snap.relays) {
        auto& e = entry_for(self, rm.relay);
        for (auto& m : rm.members)
          if (e.members.count(m.conn) == 0)
            merged.push_back(add_member(self, rm.relay, m.conn, std::move(m.user)).id);
      }
      for (auto& text : kept) { // its own relays have them: they skip them
        auto seq = ++st.seq;
        send_to_relays(self, seq, renumber_message(text, seq), {}, false);
      }
      if (fresh && !st.plain) {
        context ctx{self};
        guarded(self, [&] { st.logic->restore(ctx, snap.logic_state); });
        if (!newcomers.empty()) { // after their relays' `joined`
          st.unintroduced.insert(newcomers.begin(), newcomers.end());
          self->send(self, introduce_atom::value, std::move(newcomers));
        }
      } else if (!st.plain) {
        // Merged into a room whose logic never met them (a healed split):
        // introduced when their relay switches over to this room (release),
        // after the fresh `joined` it then writes.
        st.unintroduced.insert(merged.begin(), merged.end());
      }
      return caf::actor_cast<caf::actor>(self);
    },
  };
}

} // namespace

caf::behavior room(room_actor* self, std::string name, caf::actor directory,
                   room_setup setup) {
  harden(self, "room");
  auto& st = self->state;
  st.room = std::move(name);
  st.epoch = make_epoch();
  st.directory = std::move(directory);
  st.idle_timeout = setup.idle_timeout;
  st.kinds = std::move(setup.kinds);
  st.locator = std::move(setup.locator);
  st.events = std::move(setup.events);
  if (setup.stand_in)
    st.stand_in_until = std::chrono::steady_clock::now() + move_timeout;
  st.plain = !st.kinds || !st.kinds->matches(st.room);
  st.logic = st.plain ? std::make_unique<room_logic>() : st.kinds->make(st.room);
  // Any new room may be a failover: its first messages are kept for the
  // old incarnation's members, whose relays re-attach one by one.
  st.catch_up.active = true;
  st.catch_up.until = std::chrono::steady_clock::now() + room_catch_up_window;
  // Ends the log on time in a room that went quiet (it held up to 4 MiB).
  self->delayed_send(self, room_catch_up_window, young_end_atom::value);
  arm_idle_timer(self);
  start_logic(self);
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& st = self->state;
    if (!drop_relay(self, dm.source))
      return;
    if (st.move.state == phase::forwarding && st.relays_to_release > 0) {
      --st.relays_to_release;
      maybe_finish_move(self);
    } else {
      arm_idle_timer(self);
    }
  });
  return room_actor::shared<room_handlers>();
}

} // namespace rc
