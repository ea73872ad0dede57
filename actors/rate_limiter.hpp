#pragma once

#include <chrono>
#include <cstdint>

namespace rc {

/// Token bucket: `rate` tokens per second, at most `burst` saved up. Owned by
/// one connection actor; not thread-safe. Time is passed in so tests can
/// drive it without sleeping.
class rate_limiter {
public:
  using clock = std::chrono::steady_clock;

  rate_limiter(double rate, std::uint64_t burst, clock::time_point now = clock::now());

  /// Takes one token; false when the bucket is empty (the request is refused).
  bool try_acquire(clock::time_point now = clock::now());

private:
  double rate_;
  double burst_;
  double tokens_;
  clock::time_point last_;
};

} // namespace rc
