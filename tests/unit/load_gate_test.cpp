#define CAF_SUITE load_gate

#include "net/load_gate.hpp"

#include <caf/test/unit_test.hpp>

using rc::net::load_gate;
using namespace std::chrono_literals;

namespace {

// A worker running `kicks` write kicks a millisecond for `ms` milliseconds
// from `from`, each `lag` after it was posted, asking the gate after each
// millisecond as a worker does; returns the last answer.
bool run_for(load_gate& gate, std::uint32_t from, std::uint32_t ms, int kicks,
             std::chrono::nanoseconds lag) {
  bool loaded = false;
  for (std::uint32_t t = 1; t <= ms; ++t) {
    for (int i = 0; i < kicks; ++i)
      gate.observe(lag);
    loaded = gate.loaded(from + t);
  }
  return loaded;
}

} // namespace

CAF_TEST(a worker that keeps up is not loaded) {
  load_gate gate{300us, 5};
  // Many kicks, each run 20 us after it was posted: busy but keeping up.
  CAF_CHECK(!run_for(gate, 0, 1000, 50, 20us));
}

CAF_TEST(a worker that is behind is loaded after one window) {
  load_gate gate{300us, 5};
  // Kicks wait 1 ms: not yet decided within the first window...
  CAF_CHECK(!run_for(gate, 0, load_gate::min_window_ms - 1, 5, 1ms));
  // ...loaded from the first full window on.
  CAF_CHECK(run_for(gate, load_gate::min_window_ms - 1, 200, 5, 1ms));
}

CAF_TEST(the mean lag decides and not one late kick) {
  load_gate gate{300us, 5};
  // One kick in a hundred waits 10 ms (a preempted thread): mean 120 us.
  bool loaded = false;
  for (std::uint32_t t = 1; t <= 300; ++t) {
    for (int i = 0; i < 99; ++i)
      gate.observe(20us);
    gate.observe(10ms);
    loaded = gate.loaded(t);
  }
  CAF_CHECK(!loaded);
}

CAF_TEST(a few late kicks of a mostly idle worker do not open the gate) {
  load_gate gate{300us, 5};
  // A node that only answered a few joins, its thread woken 1 ms late by a
  // busy host: no backlog of its own.
  for (std::uint64_t i = 0; i < load_gate::min_kicks - 1; ++i)
    gate.observe(1ms);
  CAF_CHECK(!gate.loaded(load_gate::min_window_ms));
  // As many late kicks as it takes do.
  for (std::uint64_t i = 0; i < load_gate::min_kicks; ++i)
    gate.observe(1ms);
  CAF_CHECK(gate.loaded(2 * load_gate::min_window_ms));
}

CAF_TEST(load ends with the first window that keeps up) {
  load_gate gate{300us, 5};
  CAF_CHECK(run_for(gate, 0, 300, 5, 1ms));
  CAF_CHECK(!run_for(gate, 300, 300, 5, 50us));
}

CAF_TEST(once loaded the gate closes only below half the lag) {
  load_gate gate{300us, 5};
  // 200 us does not open it...
  CAF_CHECK(!run_for(gate, 0, 300, 5, 200us));
  CAF_CHECK(run_for(gate, 300, 300, 5, 1ms));
  // ...but keeps it open once open (the delay itself lowers the lag)...
  CAF_CHECK(run_for(gate, 600, 300, 5, 200us));
  // ...until the kicks wait less than 150 us.
  CAF_CHECK(!run_for(gate, 900, 300, 5, 100us));
}

CAF_TEST(a window without kicks keeps the decision unless the worker idled) {
  load_gate gate{300us, 5};
  CAF_CHECK(run_for(gate, 0, 300, 5, 1ms));
  // Every socket writing or waiting for the tick: no kicks for a window.
  CAF_CHECK(gate.loaded(450));
  // Idle for ten windows and more: no longer loaded, even if the one kick
  // of that time was late.
  gate.observe(5ms);
  CAF_CHECK(!gate.loaded(450 + 10 * load_gate::min_window_ms));
}

CAF_TEST(a window is at least as long as the delay) {
  load_gate gate{300us, 1000};
  // Behind, but after 500 ms the window of a 1 s delay is not over yet.
  CAF_CHECK(!run_for(gate, 0, 500, 5, 1ms));
  CAF_CHECK(run_for(gate, 500, 600, 5, 1ms));
}

CAF_TEST(a min lag of zero is always loaded) {
  load_gate gate{0us, 5};
  CAF_CHECK(gate.loaded(0));
  CAF_CHECK(gate.loaded(123456));
}

CAF_TEST(the millisecond clock may wrap) {
  load_gate gate{300us, 5};
  std::uint32_t near_end = 0xFFFFFFFFu - 150;
  CAF_CHECK(run_for(gate, near_end, 300, 5, 1ms));
}
