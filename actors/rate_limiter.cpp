#include "actors/rate_limiter.hpp"

#include <algorithm>

namespace rc {

rate_limiter::rate_limiter(double rate, std::uint64_t burst, clock::time_point now)
  : rate_(rate), burst_(static_cast<double>(burst)), tokens_(burst_), last_(now) {
}

bool rate_limiter::try_acquire(clock::time_point now) {
  if (now > last_) {
    std::chrono::duration<double> dt = now - last_;
    tokens_ = std::min(burst_, tokens_ + dt.count() * rate_);
    last_ = now;
  }
  if (tokens_ < 1.0)
    return false;
  tokens_ -= 1.0;
  return true;
}

rate_limiter::clock::duration rate_limiter::hold_after_refusal(clock::time_point now) {
  constexpr auto window = std::chrono::seconds{1};
  if (now - refusals_since_ >= window) {
    refusals_since_ = now;
    refusals_ = 0;
  }
  if (static_cast<double>(++refusals_) <= burst_)
    return clock::duration::zero();
  return refusals_since_ + window - now;
}

} // namespace rc
