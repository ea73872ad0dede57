#include "actors/locator.hpp"

#include "actors/hardening.hpp"

namespace rc {

caf::behavior local_locator(caf::event_based_actor* self, caf::actor rooms, caf::actor users,
                            caf::actor everyone) {
  harden(self, "locator");
  return {
    [rooms](locate_atom, room_atom, const std::string&) { return rooms; },
    [users](locate_atom, user_atom, const std::string&) { return users; },
    [everyone](locate_atom, all_atom) { return std::vector<caf::actor>{everyone}; },
  };
}

} // namespace rc
