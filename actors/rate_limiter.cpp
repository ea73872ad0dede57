#include "actors/rate_limiter.hpp"

#include <algorithm>

namespace rc {

rate_limiter::rate_limiter(const rate_limit& limit, clock::time_point now)
  : tokens_(limit.burst), last_(now) {
}

bool rate_limiter::try_acquire(const rate_limit& limit, clock::time_point now) {
  if (now > last_) {
    std::chrono::duration<double> dt = now - last_;
    tokens_ = std::min(limit.burst, tokens_ + dt.count() * limit.rate);
    last_ = now;
  }
  if (tokens_ < 1.0)
    return false;
  tokens_ -= 1.0;
  return true;
}

rate_limiter::clock::duration rate_limiter::hold_after_refusal(const rate_limit& limit,
                                                               clock::time_point now) {
  constexpr auto window = std::chrono::seconds{1};
  if (now - refusals_since_ >= window) {
    refusals_since_ = now;
    refusals_ = 0;
  }
  if (static_cast<double>(++refusals_) <= limit.burst)
    return clock::duration::zero();
  return refusals_since_ + window - now;
}

} // namespace rc
