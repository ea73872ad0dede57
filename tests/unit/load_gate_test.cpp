#define CAF_SUITE load_gate

#include "net/load_gate.hpp"

#include <caf/test/unit_test.hpp>

using rc::net::load_gate;

namespace {

// `frames` frames written evenly over `ms` milliseconds from `from`, asking
// the gate after each millisecond as a worker does; returns the last answer.
bool write_for(load_gate& gate, std::uint32_t from, std::uint32_t ms, std::uint32_t frames) {
  bool loaded = false;
  for (std::uint32_t t = 1; t <= ms; ++t) {
    gate.count(frames / ms);
    loaded = gate.loaded(from + t);
  }
  return loaded;
}

} // namespace

CAF_TEST(a worker below the rate is not loaded) {
  load_gate gate{20000, 5};
  // 1000 frames a second for a second: a chat node.
  CAF_CHECK(!write_for(gate, 0, 1000, 1000));
}

CAF_TEST(a worker at the rate is loaded after one window) {
  load_gate gate{20000, 5};
  // 40000 frames a second: not yet decided within the first window...
  CAF_CHECK(!write_for(gate, 0, load_gate::min_window_ms - 1, 4000));
  // ...loaded from the first full window on.
  CAF_CHECK(write_for(gate, load_gate::min_window_ms - 1, 200, 8000));
}

CAF_TEST(one burst after a quiet time is not load) {
  load_gate gate{20000, 5};
  CAF_CHECK(write_for(gate, 0, 300, 12000));
  // Quiet for ten seconds, then 1000 frames at once (one fan-out): the
  // window that ends now spans the quiet time too.
  gate.count(1000);
  CAF_CHECK(!gate.loaded(10300));
}

CAF_TEST(load ends with the first window below the rate) {
  load_gate gate{20000, 5};
  CAF_CHECK(write_for(gate, 0, 300, 12000));
  CAF_CHECK(!write_for(gate, 300, 300, 300));
}

CAF_TEST(a window is at least as long as the delay) {
  load_gate gate{1000, 1000};
  // 2000 frames a second, but after 500 ms the window of a 1 s delay is not
  // over yet, so the gate has not decided.
  CAF_CHECK(!write_for(gate, 0, 500, 1000));
  CAF_CHECK(write_for(gate, 500, 600, 1200));
}

CAF_TEST(a min rate of zero is always loaded) {
  load_gate gate{0, 5};
  CAF_CHECK(gate.loaded(0));
  CAF_CHECK(gate.loaded(123456));
}

CAF_TEST(the millisecond clock may wrap) {
  load_gate gate{20000, 5};
  std::uint32_t near_end = 0xFFFFFFFFu - 150;
  CAF_CHECK(write_for(gate, near_end, 300, 12000));
}
