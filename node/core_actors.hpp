#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include "actors/connection.hpp"
#include "config/settings.hpp"

namespace rc {

/// The long-lived actors of one node. Spawned together, stopped together.
struct core_actors {
  caf::actor supervisor; ///< linked to every connection actor
  caf::actor rooms;      ///< room directory
  caf::actor users;      ///< user directory
  caf::actor everyone;   ///< broadcaster
  caf::actor router;

  /// What each connection actor of this node needs.
  connection_context context_for(std::string node, const settings& cfg) const;

  /// Closes every connection with 1001 (the supervisor's exit reaches them).
  void close_connections() const;

  /// Stops all of them (rooms and users die with their directories).
  void stop() const;
};

core_actors spawn_core_actors(caf::actor_system& sys, const settings& cfg);

} // namespace rc
