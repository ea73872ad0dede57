#include "actors/directory.hpp"

#include <algorithm>

#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/send.hpp>

#include "actors/hardening.hpp"
#include "actors/locator.hpp"
#include "actors/move_state.hpp"
#include "cluster/placement.hpp"

namespace rc {

directory_state::~directory_state() {
  for (auto& [_, e] : entries)
    caf::anon_send_exit(e.actor, caf::exit_reason::user_shutdown);
  for (auto& a : departed)
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

namespace {

using self_ptr = caf::stateful_actor<directory_state>*;
using kind = metrics::cluster_kind;

/// The directory that owns `name`, or null when it is this one.
caf::actor owner_directory(self_ptr self, const std::string& name) {
  auto& st = self->state;
  if (st.peers.empty())
    return nullptr;
  std::vector<std::string> members;
  members.reserve(st.peers.size());
  for (auto& [node, _] : st.peers)
    members.push_back(node);
  auto owner = owner_of(name, members);
  if (owner == st.self_name)
    return nullptr;
  return st.peers[owner];
}

/// Whether an actor spawned now for `name` stands in for one that may be
/// on its way here: `name` was another node's before the view changed,
/// less than `move_timeout` ago (a move takes at most that long).
bool stands_in(self_ptr self, const std::string& name) {
  auto& st = self->state;
  if (st.before_change.empty() || std::chrono::steady_clock::now() - st.changed_at > move_timeout)
    return false;
  return owner_of(name, st.before_change) != st.self_name;
}

/// How soon a directory looks at its view again when an actor it holds may
/// belong elsewhere after a move (views converge within moments).
constexpr auto look_again = std::chrono::milliseconds{500};

/// Whether `name` belonged to a node that left the view within the
/// takeover window.
bool taken_over(self_ptr self, const std::string& name) {
  auto& t = self->state.taken_over;
  if (t.gone.empty() || std::chrono::steady_clock::now() > t.until)
    return false;
  auto before = owner_of(name, t.before);
  return std::find(t.gone.begin(), t.gone.end(), before) != t.gone.end();
}

/// Whether the adopt of `name` being handled crossed this directory's own
/// move of `name`: it comes from the node ours moves to (only a move sends
/// an adopt to another node's directory), and this directory is the one
/// of the two that refuses, the lower address (see `crossed_move_error`).
/// The other holds our adopt until its own move is refused. Told by the
/// sender's node rather than by a field of the snapshot, so that nodes of
/// the previous build still read the snapshots of this one.
bool refuses_crossed(self_ptr self, const std::string& name, const char* kind_name) {
  auto& moving = self->state.moving;
  auto it = moving.find(name);
  auto sender = self->current_sender();
  if (it == moving.end() || !sender || sender->node() != it->second.to.node()
      || !(caf::actor_cast<caf::actor>(self) < it->second.to))
    return false;
  spdlog::info("{}: '{}' moves here as ours moves there: refused, ours takes it", kind_name, name);
  return true;
}

} // namespace

caf::behavior directory(caf::stateful_actor<directory_state>* self, directory_config cfg) {
  harden(self, cfg.kind);
  // Routes one request for `name`: `to_actor` is the message for the name's
  // actor, `to_dir` the same request for another directory. `spawn` says
  // whether an absent actor is created here; `here` skips placement: an
  // adopted actor stays where its old owner sent it (our view may lag behind
  // the sender's), and is handed on if our view disagrees.
  enum class mode { existing_only, spawn, here };
  using route_fn = std::function<void(const std::string&, caf::message, caf::message,
                                      caf::response_promise, mode)>;
  auto route = std::make_shared<route_fn>();
  *route = [self, cfg, route](const std::string& name, caf::message to_actor,
                              caf::message to_dir, caf::response_promise rp, mode how) {
    auto& st = self->state;
    if (cfg.wait_for_view && !st.has_view) {
      st.before_view.push_back([route, name, to_actor, to_dir, rp, how]() {
        (*route)(name, to_actor, to_dir, rp, how);
      });
      return;
    }
    auto it = st.entries.find(name);
    if (it != st.entries.end()) {
      if (it->second.stopping) {
        it->second.held.push_back([route, name, to_actor, to_dir, rp, how]() {
          (*route)(name, to_actor, to_dir, rp, how);
        });
        return;
      }
      auto target = it->second.actor;
      rp.delegate(target, std::move(to_actor));
      if (how == mode::here && owner_directory(self, name)) // merged into ours
        self->delayed_send(self, look_again, view_atom::value);
      return;
    }
    if (how != mode::here) {
      if (auto owner = owner_directory(self, name)) {
        count_if_remote(self, owner, kind::request);
        rp.delegate(owner, std::move(to_dir));
        return;
      }
    }
    if (how == mode::existing_only && !taken_over(self, name)) {
      rp.deliver(std::uint64_t{0});
      return;
    }
    auto& e = st.entries[name];
    e.actor = cfg.spawn(self, name, stands_in(self, name));
    self->monitor(e.actor);
    auto target = e.actor;
    rp.delegate(target, std::move(to_actor));
    if (how == mode::here && owner_directory(self, name)) {
      // Our view says someone else owns it: views converge within moments,
      // so look again shortly rather than bouncing the actor right back.
      self->delayed_send(self, look_again, view_atom::value);
    }
  };
  // Hands what was held during a stop or move to whatever serves `name` now.
  auto release = [](const std::string&, std::vector<std::function<void()>> held) {
    for (auto& fn : held)
      fn();
  };
  self->set_down_handler([self, release, kind_name = cfg.kind](caf::down_msg& dm) {
    for (auto it = self->state.entries.begin(); it != self->state.entries.end(); ++it) {
      if (it->second.actor.address() != dm.source)
        continue;
      if (dm.reason && dm.reason != caf::exit_reason::user_shutdown)
        spdlog::warn("{}: actor for '{}' failed: {}", kind_name, it->first,
                     caf::to_string(dm.reason));
      auto held = std::move(it->second.held);
      auto name = it->first;
      self->state.entries.erase(it);
      // An actor that dies while moving never answers the handoff: its move
      // ends here, or it would refuse every later move of the name that
      // crosses it (a split).
      if (auto m = self->state.moving.find(name);
          m != self->state.moving.end() && m->second.actor.address() == dm.source)
        self->state.moving.erase(m);
      release(name, std::move(held));
      return;
    }
  });
  // Asks the actor of `name` to stop (idle: `to == nullptr`) or to move to
  // the directory `to` (handoff); requests for it wait meanwhile.
  auto pause = [self, release](const std::string& name, caf::actor to) {
    auto it = self->state.entries.find(name);
    auto actor = it->second.actor;
    it->second.stopping = true;
    if (to)
      self->state.moving[name] = {actor, to};
    // `gone`: the entry goes (stopped or moved); otherwise the actor stays.
    auto finish = [self, release, name, actor](bool gone) {
      if (auto m = self->state.moving.find(name);
          m != self->state.moving.end() && m->second.actor == actor)
        self->state.moving.erase(m);
      auto it = self->state.entries.find(name);
      if (it == self->state.entries.end() || it->second.actor != actor)
        return;
      auto held = std::move(it->second.held);
      it->second.stopping = false;
      if (gone) {
        // Erase now (not on the DOWN) so held requests go to a fresh actor
        // or to the new owner, never to this one.
        self->demonitor(actor);
        self->state.entries.erase(it);
      }
      release(name, std::move(held));
    };
    // A failed move keeps the actor here (the next view retries; not at
    // once: a move that timed out may still be taken late, see
    // move_timeout); if the actor died instead, the down handler has
    // already cleaned up.
    auto failed = [self, finish](caf::error& err) {
      finish(false);
      // A refused crossing is final (unlike a timeout), so the actor, which
      // now holds both states or soon will, goes where the view says
      // shortly. Not at once: the other actor may still be waiting to send
      // its adopt here, and would refuse ours again meanwhile.
      if (is_crossed_move(err))
        self->delayed_send(self, look_again, view_atom::value);
    };
    if (!to)
      self->request(actor, caf::infinite, stop_atom::value)
        .then(
          [self, finish, name](bool stopped) {
            finish(stopped);
            // A view that came during the stop skipped this actor: it
            // stays, so it moves now if the name is another node's (before,
            // it stayed here until the next view, while the owner could
            // start a second one).
            if (!stopped && owner_directory(self, name))
              self->send(self, view_atom::value);
          },
          failed);
    else
      self->request(actor, caf::infinite, handoff_atom::value, std::move(to))
        .then(
          [self, finish, actor](caf::ok_atom) {
            // It forwards for a moment; stop it with us if we stop first.
            auto& gone = self->state.departed;
            gone.erase(std::remove_if(gone.begin(), gone.end(),
                                      [](const caf::actor& a) {
                                        return a->getf(caf::abstract_actor::is_terminated_flag);
                                      }),
                       gone.end());
            gone.push_back(actor);
            finish(true);
          },
          failed);
  };
  // An actor's state moving here (`msg`, the adopt) goes to whatever serves
  // `name` here, unless (`may_cross`) it crossed our own move of `name`.
  auto adopt = [self, route, kind_name = cfg.kind](const std::string& name, caf::message msg,
                                                   bool may_cross) {
    // Before the promise, which takes the sender from the message.
    bool refused = may_cross && refuses_crossed(self, name, kind_name);
    auto rp = self->make_response_promise();
    if (refused)
      rp.deliver(crossed_move_error());
    else
      (*route)(name, msg, msg, rp, mode::here);
    return rp;
  };
  auto spawn_on_publish = cfg.spawn_on_publish;
  return {
    [self, route](caf::join_atom, const std::string& name, member_ref& m, std::string& id) {
      auto rp = self->make_response_promise();
      auto to_actor = caf::make_message(caf::join_atom::value, m, id);
      auto to_dir = caf::make_message(caf::join_atom::value, name, std::move(m), std::move(id));
      (*route)(name, std::move(to_actor), std::move(to_dir), rp, mode::spawn);
      return rp;
    },
    [self, route](attach_atom, const std::string& name, relay_members& rm) {
      auto rp = self->make_response_promise();
      auto to_actor = caf::make_message(attach_atom::value, rm);
      auto to_dir = caf::make_message(attach_atom::value, name, std::move(rm));
      (*route)(name, std::move(to_actor), std::move(to_dir), rp, mode::spawn);
      return rp;
    },
    [self, route](attach_atom, const std::string& name, caf::actor& node) {
      auto rp = self->make_response_promise();
      auto to_actor = caf::make_message(attach_atom::value, node);
      auto to_dir = caf::make_message(attach_atom::value, name, std::move(node));
      (*route)(name, std::move(to_actor), std::move(to_dir), rp, mode::spawn);
      return rp;
    },
    [self, route, spawn_on_publish](caf::publish_atom, const std::string& name, envelope& env) {
      auto rp = self->make_response_promise();
      auto to_actor = caf::make_message(caf::publish_atom::value, env);
      auto to_dir = caf::make_message(caf::publish_atom::value, name, std::move(env));
      (*route)(name, std::move(to_actor), std::move(to_dir), rp,
                spawn_on_publish ? mode::spawn : mode::existing_only);
      return rp;
    },
    [adopt](adopt_atom, const std::string& name, room_snapshot& snap) {
      return adopt(name, caf::make_message(adopt_atom::value, name, std::move(snap)), true);
    },
    [adopt](adopt_atom, const std::string& name, user_snapshot& snap) {
      // Late frames never cross: their sender has moved and waits for no one.
      bool may_cross = !snap.late;
      return adopt(name, caf::make_message(adopt_atom::value, name, std::move(snap)), may_cross);
    },
    [self, pause](caf::idle_atom, const std::string& name) {
      auto it = self->state.entries.find(name);
      if (it == self->state.entries.end() || it->second.stopping
          || it->second.actor.address() != self->current_sender())
        return;
      pause(name, nullptr);
    },
    [self, pause, kind_name = cfg.kind,
     window = cfg.takeover_window](view_atom, std::map<std::string, caf::actor>& peers,
                                   std::string& me) {
      auto& st = self->state;
      std::vector<std::string> before, gone;
      for (auto& [node, _] : st.peers) {
        before.push_back(node);
        if (peers.count(node) == 0)
          gone.push_back(node);
      }
      // (A node's first view changes nothing here: a node that joins holds
      // requests until then, and the others' handoffs come soon after.)
      bool changed = before.size() != peers.size()
                     || !std::all_of(before.begin(), before.end(),
                                     [&](auto& node) { return peers.count(node) > 0; });
      if (changed && st.has_view) {
        st.before_change = before;
        st.changed_at = std::chrono::steady_clock::now();
      }
      if (!gone.empty() && window.count() > 0)
        st.taken_over = {std::move(before), std::move(gone),
                         std::chrono::steady_clock::now() + window};
      st.peers = std::move(peers);
      st.self_name = std::move(me);
      self->send(self, view_atom::value);
      if (!st.has_view) {
        st.has_view = true;
        auto waiting = std::move(st.before_view);
        st.before_view.clear();
        for (auto& fn : waiting)
          fn();
      }
    },
    [self, pause, kind_name = cfg.kind](view_atom) {
      auto& st = self->state;
      // Hand every actor whose name now belongs elsewhere to its new owner.
      std::vector<std::pair<std::string, caf::actor>> moves;
      for (auto& [name, e] : st.entries)
        if (!e.stopping)
          if (auto owner = owner_directory(self, name))
            moves.emplace_back(name, owner);
      for (auto& [name, owner] : moves)
        pause(name, owner);
      if (!moves.empty())
        spdlog::info("{}: handing {} to their new owners", kind_name, moves.size());
    },
    [self](caf::get_atom) { return static_cast<std::uint64_t>(self->state.entries.size()); },
    [self](caf::get_atom, moved_atom) {
      auto& gone = self->state.departed;
      return static_cast<std::uint64_t>(
        std::count_if(gone.begin(), gone.end(), [](const caf::actor& a) {
          return !a->getf(caf::abstract_actor::is_terminated_flag);
        }));
    },
  };
}

} // namespace rc
