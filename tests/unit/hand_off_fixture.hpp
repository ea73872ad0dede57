#pragma once

// An actor system on the node's scheduler (node/hand_off_policy.hpp) with
// two real worker threads, for what the deterministic coordinator cannot
// show: which jobs run when, and on which thread.

#include "node/hand_off_policy.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>

#include <cstddef>

namespace rc::test {

struct hand_off_system {
  static caf::actor_system_config& configure(caf::actor_system_config& cfg) {
    cfg.set("scheduler.max-threads", std::size_t{2});
    rc::use_hand_off_scheduler(cfg);
    return cfg;
  }
  caf::actor_system_config cfg;
  caf::actor_system sys{configure(cfg)};
};

} // namespace rc::test
