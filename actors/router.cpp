#include "actors/router.hpp"

#include "actors/hardening.hpp"

namespace rc {

caf::behavior router(caf::event_based_actor* self, caf::actor rooms, caf::actor users,
                     caf::actor everyone) {
  harden(self, "router");
  return {
    [self, rooms](route_atom, room_atom, const std::string& name, envelope& env) {
      return self->delegate(rooms, caf::publish_atom::value, name, std::move(env));
    },
    [self, users](route_atom, user_atom, const std::string& name, envelope& env) {
      return self->delegate(users, caf::publish_atom::value, name, std::move(env));
    },
    [self, everyone](route_atom, all_atom, envelope& env) {
      return self->delegate(everyone, caf::publish_atom::value, std::move(env));
    },
  };
}

} // namespace rc
