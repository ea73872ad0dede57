#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <functional>

#include "actors/connection.hpp"
#include "actors/room_logic.hpp"
#include "config/settings.hpp"

namespace rc {

/// The long-lived actors of one node. Spawned together, stopped together.
struct core_actors {
  caf::actor rooms;       ///< directory of the rooms this node owns
  caf::actor users;       ///< directory of the users this node owns
  caf::actor relays;      ///< directory of this node's relays (one per room with local members)
  caf::actor local_users; ///< this node's registry of user connections
  caf::actor node_watch;  ///< watches the registries this node's users deliver to
  caf::actor everyone;    ///< this node's broadcaster
  caf::actor locator;     ///< where rooms and users live (local, or the cluster membership)
  caf::actor router;

  /// What each connection actor of this node needs.
  connection_context_ptr context_for(std::string node, const settings& cfg) const;

  /// Closes every connection with 1001, after what is queued for it (the
  /// broadcaster knows them all).
  void close_connections() const;

  /// Stops all of them (rooms, users and relays die with their directories).
  void stop() const;
};

/// Builds the locator once the directories and the broadcaster exist. The
/// default answers with this node's own actors (a single node).
using locator_factory = std::function<caf::actor(const core_actors&)>;

/// Optional services the core actors use when a broker is configured.
struct core_services {
  /// Durable store of offline private messages (actors/inbox_store.hpp);
  /// null = each user actor keeps an in-memory inbox.
  caf::actor inbox_store;
  /// Receives `(publish_atom, room, from, frame text)` for every room message; null = none.
  caf::actor room_events;
};

/// Spawns a node's actors; rooms run the logic `kinds` registers for them.
core_actors spawn_core_actors(caf::actor_system& sys, const settings& cfg,
                              locator_factory make_locator = {},
                              std::shared_ptr<const room_kinds> kinds = {},
                              core_services services = {});

} // namespace rc
