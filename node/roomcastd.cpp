// roomcastd: one roomcast node on its settings (see `roomcastd --help`).

#include <csignal>
#include <cstdio>
#include <pthread.h>
#include <spdlog/spdlog.h>

#include "config/loader.hpp"
#include "node/node.hpp"

int main(int argc, char** argv) {
  auto loaded = rc::load_settings(argc, argv);
  switch (loaded.what) {
    case rc::load_result::action::help:
      std::fputs(loaded.message.c_str(), stdout);
      return 0;
    case rc::load_result::action::version:
      std::puts("roomcastd 0.1.0");
      return 0;
    case rc::load_result::action::fail:
      std::fprintf(stderr, "roomcastd: error: %s\n", loaded.message.c_str());
      return 2;
    case rc::load_result::action::run:
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
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);
  spdlog::info("roomcastd 0.1.0 starting: {}", rc::describe(cfg));
  rc::node node{cfg};
  try {
    auto port = node.start();
    spdlog::info("node {} listening on {}:{}", cfg.effective_node_name(), cfg.bind, port);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    node.shutdown();
    return 1;
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("received {}, draining connections", sig == SIGINT ? "SIGINT" : "SIGTERM");
  node.shutdown();
  spdlog::info("stopped");
  return 0;
}
