#define CAF_SUITE rate_limiter

#include "actors/rate_limiter.hpp"

#include <caf/test/unit_test.hpp>

using namespace rc;
using namespace std::chrono_literals;

CAF_TEST(a full bucket allows exactly the burst then refuses) {
  auto t0 = rate_limiter::clock::time_point{} + 1h;
  rate_limit limit{100, 200};
  rate_limiter rl{limit, t0};
  int allowed = 0;
  for (int i = 0; i < 1000; ++i)
    allowed += rl.try_acquire(limit, t0) ? 1 : 0;
  CAF_CHECK_EQUAL(allowed, 200);
}

CAF_TEST(a burst of refusals a second is free then reading is held to the second) {
  auto t0 = rate_limiter::clock::time_point{} + 1h;
  rate_limit limit{100, 3};
  rate_limiter rl{limit, t0};
  for (int i = 0; i < 3; ++i)
    CAF_CHECK(rl.hold_after_refusal(limit, t0 + 100ms) == rate_limiter::clock::duration::zero());
  CAF_CHECK(rl.hold_after_refusal(limit, t0 + 100ms) == 1000ms);
  CAF_CHECK(rl.hold_after_refusal(limit, t0 + 600ms) == 500ms);
  // A new second, a new burst.
  CAF_CHECK(rl.hold_after_refusal(limit, t0 + 1100ms) == rate_limiter::clock::duration::zero());
}

CAF_TEST(tokens refill at the configured rate up to the burst) {
  auto t0 = rate_limiter::clock::time_point{} + 1h;
  rate_limit limit{100, 200};
  rate_limiter rl{limit, t0};
  while (rl.try_acquire(limit, t0)) {
  }
  // 100 ms at 100/s gives 10 tokens.
  int allowed = 0;
  for (int i = 0; i < 50; ++i)
    allowed += rl.try_acquire(limit, t0 + 100ms) ? 1 : 0;
  CAF_CHECK_EQUAL(allowed, 10);
  // A long pause refills only up to the burst.
  allowed = 0;
  for (int i = 0; i < 1000; ++i)
    allowed += rl.try_acquire(limit, t0 + 1h) ? 1 : 0;
  CAF_CHECK_EQUAL(allowed, 200);
}
