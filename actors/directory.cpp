#include "actors/directory.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/send.hpp>

#include "actors/hardening.hpp"

namespace rc {

directory_state::~directory_state() {
  for (auto& [_, e] : entries)
    caf::anon_send_exit(e.actor, caf::exit_reason::user_shutdown);
}

caf::behavior directory(caf::stateful_actor<directory_state>* self, directory_config cfg) {
  harden(self, cfg.kind);
  using entry = directory_state::entry;
  auto get_or_spawn = [self, cfg](const std::string& name) -> entry& {
    auto& e = self->state.entries[name];
    if (!e.actor) {
      e.actor = cfg.spawn(self, name);
      self->monitor(e.actor);
    }
    return e;
  };
  // Hands what was held during a stop to whatever now serves `name`.
  auto release = [get_or_spawn](const std::string& name,
                                std::vector<std::function<void(const caf::actor&)>> held) {
    if (held.empty())
      return;
    auto& e = get_or_spawn(name);
    for (auto& fn : held)
      fn(e.actor);
  };
  // Runs `fn` with the actor for `name` now, or once a pending stop resolves.
  auto route = [get_or_spawn](const std::string& name,
                              std::function<void(const caf::actor&)> fn) {
    auto& e = get_or_spawn(name);
    if (e.stopping)
      e.held.push_back(std::move(fn));
    else
      fn(e.actor);
  };
  self->set_down_handler([self, release, kind = cfg.kind](caf::down_msg& dm) {
    for (auto it = self->state.entries.begin(); it != self->state.entries.end(); ++it) {
      if (it->second.actor.address() != dm.source)
        continue;
      if (dm.reason && dm.reason != caf::exit_reason::user_shutdown)
        spdlog::warn("{}: actor for '{}' failed: {}", kind, it->first, caf::to_string(dm.reason));
      auto held = std::move(it->second.held);
      auto name = it->first;
      self->state.entries.erase(it);
      release(name, std::move(held));
      return;
    }
  });
  return {
    [self, route](caf::join_atom, const std::string& name, member_ref& m) {
      auto rp = self->make_response_promise();
      route(name, [rp, m](const caf::actor& a) mutable {
        rp.delegate(a, caf::join_atom::value, std::move(m));
      });
      return rp;
    },
    [self, route, cfg](caf::publish_atom, const std::string& name, envelope& env) {
      auto rp = self->make_response_promise();
      if (!cfg.spawn_on_publish && self->state.entries.count(name) == 0) {
        rp.deliver(std::uint64_t{0});
        return rp;
      }
      route(name, [rp, env](const caf::actor& a) mutable {
        rp.delegate(a, caf::publish_atom::value, std::move(env));
      });
      return rp;
    },
    [self, release](caf::idle_atom, const std::string& name) {
      auto it = self->state.entries.find(name);
      if (it == self->state.entries.end() || it->second.stopping
          || it->second.actor.address() != self->current_sender())
        return;
      it->second.stopping = true;
      auto actor = it->second.actor;
      self->request(actor, caf::infinite, stop_atom::value)
        .then(
          [self, release, name, actor](bool stopped) {
            auto it = self->state.entries.find(name);
            if (it == self->state.entries.end() || it->second.actor != actor)
              return;
            auto held = std::move(it->second.held);
            it->second.stopping = false;
            if (stopped) {
              // Erase now (not on the DOWN) so held requests get a fresh actor.
              self->demonitor(actor);
              self->state.entries.erase(it);
            }
            release(name, std::move(held));
          },
          [](caf::error&) {
            // The actor died first; the down handler re-routes what is held.
          });
    },
    [self](caf::get_atom) { return static_cast<std::uint64_t>(self->state.entries.size()); },
  };
}

} // namespace rc
