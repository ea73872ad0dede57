#include "node/core_actors.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include "actors/broadcaster.hpp"
#include "actors/directory.hpp"
#include "actors/hardening.hpp"
#include "actors/local_users.hpp"
#include "actors/locator.hpp"
#include "actors/node_watch.hpp"
#include "actors/relay.hpp"
#include "actors/room.hpp"
#include "actors/router.hpp"
#include "actors/user.hpp"

namespace rc {

core_actors spawn_core_actors(caf::actor_system& sys, const settings& cfg,
                              locator_factory make_locator,
                              std::shared_ptr<const room_kinds> kinds, core_services services) {
  auto store = services.inbox_store;
  auto idle = cfg.room_idle_timeout;
  core_actors core;
  // In a cluster, rooms and users are placed only once the node has joined.
  bool clustered = static_cast<bool>(make_locator);
  // Rooms are spawned later, on demand, when the locator exists.
  room_setup setup{idle, std::move(kinds), std::make_shared<caf::actor>(), services.room_events};
  core.rooms = sys.spawn(directory, directory_config{
    [setup](caf::local_actor* dir, const std::string& name, bool stand_in) {
      auto mine = setup;
      mine.stand_in = stand_in;
      return dir->spawn(room, name, caf::actor_cast<caf::actor>(dir), std::move(mine));
    },
    false, "rooms", room_catch_up_window, clustered});
  core.node_watch = sys.spawn(node_watch);
  auto users = std::make_shared<const user_setup>(user_setup{
    idle, cfg.limits.inbox_limit, store, core.node_watch, drain_window::for_limits(cfg.limits),
    std::make_shared<inbox_budget>(cfg.limits.inbox_memory)});
  core.users = sys.spawn(directory, directory_config{
    // A user needs no stand-in flag: whatever a move brings later (inbox,
    // nodes) its adopt merges in front of what the new actor holds.
    [users](caf::local_actor* dir, const std::string& name, bool) {
      return dir->spawn(user, name, caf::actor_cast<caf::actor>(dir), users);
    },
    true, "users", std::chrono::milliseconds{0}, clustered});
  core.everyone = sys.spawn(broadcaster);
  core.locator = make_locator ? make_locator(core)
                              : sys.spawn(local_locator, core.rooms, core.users, core.everyone);
  auto locator = core.locator;
  *setup.locator = locator;
  core.relays = sys.spawn(directory, directory_config{
    [idle, locator](caf::local_actor* dir, const std::string& name, bool) {
      return dir->spawn(relay, name, caf::actor_cast<caf::actor>(dir), locator, idle);
    },
    false, "relays"});
  core.local_users = sys.spawn(rc::local_users, core.locator);
  core.router = sys.spawn(rc::router, core.locator);
  return core;
}

connection_context_ptr core_actors::context_for(std::string node, const settings& cfg) const {
  return std::make_shared<const connection_context>(
    connection_context{std::move(node), cfg.limits, cfg.allow_broadcast, relays, local_users,
                       everyone, router});
}

void core_actors::close_connections() const {
  caf::anon_send(everyone, stop_atom::value);
}

void core_actors::stop() const {
  for (auto& a : {router, local_users, relays, locator, everyone, users, rooms, node_watch})
    if (a)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

} // namespace rc
