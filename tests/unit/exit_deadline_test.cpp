#define CAF_SUITE exit_deadline

#include "node/exit_deadline.hpp"

#include <atomic>
#include <thread>

#include <caf/test/unit_test.hpp>

// The daemon's bound on CAF's teardown; the daemon's use of it is covered by
// the nodes that stop in tests/integration (test_compose.py's rolling restart
// met the hang it bounds).

using namespace std::chrono_literals;

CAF_TEST(what ends in time is left alone) {
  std::atomic<int> expired{0};
  {
    rc::exit_deadline deadline{500ms, [&] { ++expired; }};
    std::this_thread::sleep_for(10ms);
    deadline.done();
  }
  CAF_CHECK_EQUAL(expired.load(), 0);
}

CAF_TEST(what overruns its limit is reported once) {
  std::atomic<int> expired{0};
  auto t0 = std::chrono::steady_clock::now();
  {
    rc::exit_deadline deadline{50ms, [&] { ++expired; }};
    while (expired.load() == 0 && std::chrono::steady_clock::now() - t0 < 5s)
      std::this_thread::sleep_for(5ms);
  }
  CAF_CHECK_EQUAL(expired.load(), 1);
  CAF_CHECK_GREATER_OR_EQUAL(std::chrono::steady_clock::now() - t0, 50ms);
}

CAF_TEST(done twice and the destructor after it are harmless) {
  std::atomic<int> expired{0};
  rc::exit_deadline deadline{1s, [&] { ++expired; }};
  deadline.done();
  deadline.done();
  CAF_CHECK_EQUAL(expired.load(), 0);
}
