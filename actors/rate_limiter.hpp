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

  /// After a refusal: how long the connection should stop reading. Zero for
  /// the first `burst` refusals of each second; then until that second ends,
  /// so a client that keeps sending far over its limit is read no faster
  /// (refusing costs a scan of each frame, and it could send gigabytes).
  clock::duration hold_after_refusal(clock::time_point now = clock::now());

private:
  double rate_;
  double burst_;
  double tokens_;
  clock::time_point last_;
  clock::time_point refusals_since_;
  std::uint64_t refusals_ = 0;
};

} // namespace rc
