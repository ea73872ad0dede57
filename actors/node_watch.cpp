#include "actors/node_watch.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "actors/hardening.hpp"

namespace rc {

caf::behavior node_watch(caf::stateful_actor<node_watch_state>* self) {
  harden(self, "node_watch");
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& watchers = self->state.watchers;
    auto it = watchers.find(dm.source);
    if (it == watchers.end())
      return;
    for (auto& user : it->second)
      if (auto u = caf::actor_cast<caf::actor>(user))
        caf::anon_send(u, dm);
    watchers.erase(it);
  });
  return {
    [self](watch_atom, const caf::actor& registry, const caf::actor_addr& user) {
      auto& watchers = self->state.watchers;
      auto [it, fresh] = watchers.try_emplace(registry.address());
      if (fresh)
        self->monitor(registry); // CAF answers at once if it has already ended
      it->second.insert(user);
    },
    [self](unwatch_atom, const caf::actor& registry, const caf::actor_addr& user) {
      auto& watchers = self->state.watchers;
      auto it = watchers.find(registry.address());
      if (it == watchers.end() || it->second.erase(user) == 0 || !it->second.empty())
        return;
      // Our monitor is one of few on the registry, so this walk is short.
      self->demonitor(registry);
      watchers.erase(it);
    },
    [self](caf::get_atom) {
      std::uint64_t holders = 0;
      for (auto& [_, users] : self->state.watchers)
        holders += users.size();
      return holders;
    },
  };
}

} // namespace rc
