#pragma once

#include <chrono>
#include <cstdint>

namespace rc {

/// A bucket's refill: `rate` tokens per second, at most `burst` saved up.
struct rate_limit {
  double rate = 0;
  double burst = 0;
};

/// Token bucket. Owned by one connection actor; not thread-safe. It keeps
/// only the bucket: its `rate_limit`, the same for every connection of a
/// node, is passed in (one copy per node, not per connection). Time is
/// passed in so tests can drive it without sleeping.
class rate_limiter {
public:
  using clock = std::chrono::steady_clock;

  rate_limiter() = default; ///< empty: refuses until given a full bucket
  explicit rate_limiter(const rate_limit& limit, clock::time_point now = clock::now());

  /// Takes one token; false when the bucket is empty (the request is refused).
  bool try_acquire(const rate_limit& limit, clock::time_point now = clock::now());

  /// After a refusal: how long the connection should stop reading. Zero for
  /// the first `burst` refusals of each second; then until that second ends,
  /// so a client that keeps sending far over its limit is read no faster
  /// (refusing costs a scan of each frame, and it could send gigabytes).
  clock::duration hold_after_refusal(const rate_limit& limit,
                                     clock::time_point now = clock::now());

private:
  double tokens_ = 0;
  clock::time_point last_;
  clock::time_point refusals_since_;
  std::uint32_t refusals_ = 0;
};

} // namespace rc
