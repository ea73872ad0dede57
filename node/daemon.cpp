#include "node/daemon.hpp"

#include <csignal>
#include <cstdio>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <filesystem>
#include <thread>

#include "cluster/wire_version.hpp"
#include "common/host_port.hpp"
#include "config/loader.hpp"
#include "node/exit_deadline.hpp"
#include "node/open_files.hpp"

namespace rc {

namespace {

/// Ends in milliseconds when nothing is stuck.
constexpr std::chrono::milliseconds caf_teardown_limit{3000};

const char* signal_name(int sig) {
  switch (sig) {
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "SIGTERM";
  }
}

/// Every connection is a descriptor: raise the limit as far as it goes and
/// say when it still holds fewer connections than the node would accept.
void raise_and_report_open_files(std::uint64_t max_connections) {
  auto files = raise_open_files_limit();
  if (files.now != files.before)
    spdlog::info("open files: raised the limit from {} to {} (the hard limit)",
                 files.before, files.now);
  if (files.now >= max_connections + descriptors_besides_connections)
    return;
  auto holds = files.now > descriptors_besides_connections
                   ? files.now - descriptors_besides_connections
                   : 0;
  spdlog::warn(
      "open files are limited to {} (ulimit -n, hard limit {}): this node holds about "
      "{} connections, fewer than --max-connections {}; further ones wait until a "
      "descriptor is free (raise nofile, see docs/deploy.md)",
      files.now, files.hard, holds, max_connections);
}

} // namespace

int run_daemon(int argc, char** argv, const char* program, std::function<void(node&)> setup) {
  auto loaded = load_settings(argc, argv);
  switch (loaded.what) {
    case load_result::action::help:
      std::fputs(loaded.message.c_str(), stdout);
      return 0;
    case load_result::action::version:
      std::printf("%s 0.1.0 (wire version %u)\n", program, wire_version());
      return 0;
    case load_result::action::fail:
      std::fprintf(stderr, "%s: error: %s\n", program, loaded.message.c_str());
      return 2;
    case load_result::action::run:
      break;
  }
  auto& cfg = loaded.cfg;
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  // Block the stop signals before any thread exists, so only sigwait sees them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  // A hangup (the terminal that started the node went away) stops it the
  // same orderly way: by default it would kill the node, dropping its
  // connections and the private messages it keeps in memory.
  sigaddset(&stop_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::info("{} 0.1.0 (wire version {}) starting: {}", program, wire_version(), describe(cfg));
  raise_and_report_open_files(cfg.limits.max_connections);
  // Thread counts of 0 resolved once (they read the process's cgroup), so
  // the log below names what the node runs.
  cfg.threads = cfg.effective_threads();
  cfg.actor_threads = cfg.effective_actor_threads();
  auto owned = std::make_unique<node>(cfg);
  auto& n = *owned;
  if (setup)
    setup(n);
  try {
    auto port = n.start();
    spdlog::info("node {} listening on {}", cfg.effective_node_name(),
                 join_host_port(cfg.bind, port));
    spdlog::info("I/O threads: {}, actor threads: {}", cfg.threads, cfg.actor_threads);
    std::error_code ec;
    if (!cfg.web_root.empty() && !std::filesystem::is_directory(cfg.web_root, ec))
      spdlog::warn("web-root '{}' is not a directory: static files answer 404", cfg.web_root);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    n.shutdown();
    return 1;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  if (n.exit_code() != 0)
    spdlog::info("stopping after the error above, draining connections");
  else
    spdlog::info("received {}, draining connections", signal_name(sig));
  // A second signal (an impatient operator, or an orchestrator's retry) cuts
  // the drain short instead of going unheard; the stop stays orderly.
  std::atomic<bool> stopped{false};
  std::thread impatient([&] {
    int again = 0;
    sigwait(&stop_signals, &again);
    if (stopped)
      return;
    spdlog::warn("received {} again: not waiting for the drain", signal_name(again));
    n.hurry();
  });
  n.shutdown();
  stopped = true;
  pthread_kill(impatient.native_handle(), SIGTERM); // ends its wait
  impatient.join();
  n.await_actors();
  spdlog::info("stopped");
  // What is left is CAF's own teardown, bounded: its middleman actor can
  // outlive its stop (a connect still pending, seen after a peer restarted),
  // and `~actor_system` would wait for it forever. Nothing of ours runs by now.
  auto code = n.exit_code();
  exit_deadline deadline{caf_teardown_limit, [code] {
    spdlog::warn("CAF's teardown did not end within {} s: exiting without it",
                 caf_teardown_limit.count() / 1000);
    spdlog::default_logger()->flush();
    std::_Exit(code);
  }};
  owned.reset();
  return code;
}

} // namespace rc
