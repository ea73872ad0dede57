#pragma once

#include <functional>

#include "node/node.hpp"

namespace rc {

/// The whole life of a node process: settings from the command line,
/// environment and file (`--help`, exit 2 on bad options), logging, start,
/// wait for SIGINT/SIGTERM, graceful stop. `setup` runs before the node
/// starts: register room kinds there. Used by roomcastd and every example.
int run_daemon(int argc, char** argv, const char* program,
               std::function<void(node&)> setup = {});

} // namespace rc
