#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace rc::net {

/// Whether an I/O worker is behind enough for the write delay to pay. It
/// watches how long the worker's write kicks wait before the worker runs
/// them (its lag) and decides, once per window, whether their mean reached
/// `min_lag` (a closed gate waits for `min_kicks` kicks, however many windows
/// they take); once loaded, it stays so until the mean falls below half.
/// A worker that keeps up answers within microseconds: delaying its writes
/// would only add latency. One that is behind already holds frames back for
/// its lag; gathering them for the delay then saves the CPU they queue for
/// (docs/configuration.md).
///
/// Not thread-safe: one per worker thread.
class load_gate {
public:
  /// Shortest window: one fan-out burst alone does not make a worker late.
  static constexpr std::uint32_t min_window_ms = 100;
  /// Fewest kicks that may open the gate: the few kicks of a mostly idle
  /// worker wait for the host's scheduler to wake its thread (a millisecond
  /// on a busy host), not for a backlog of the worker's.
  static constexpr std::uint64_t min_kicks = 16;

  /// `min_lag` zero: always loaded. `delay_ms`: the write delay (a window
  /// is at least that long).
  load_gate(std::chrono::microseconds min_lag, std::uint32_t delay_ms)
    : min_lag_ns_(std::chrono::nanoseconds{min_lag}.count()),
      window_ms_(std::max(min_window_ms, delay_ms)) {
  }

  /// One write kick ran `lag` after it was posted.
  void observe(std::chrono::nanoseconds lag) {
    lag_sum_ns_ += static_cast<std::uint64_t>(std::max<std::int64_t>(0, lag.count()));
    ++observations_;
  }

  /// `now_ms`: a wrapping millisecond clock. Decides once `now_ms` is a full
  /// window past the last decision (a closed gate: and it has counted
  /// `min_kicks` kicks since). A window without kicks keeps the last
  /// decision (a worker whose sockets all write or wait kicks nobody); one
  /// that ran ten windows long because nobody asked means the worker was
  /// mostly idle: not loaded, whatever its few kicks waited.
  bool loaded(std::uint32_t now_ms) {
    if (min_lag_ns_ == 0)
      return true;
    auto span = now_ms - window_start_;
    if (span >= window_ms_) {
      if (span >= 10 * window_ms_)
        loaded_ = false;
      else if (!loaded_ && observations_ < min_kicks)
        return false; // too few kicks to open the gate: the window goes on
      else if (observations_ > 0) {
        // Hysteresis: the delay itself makes a late worker catch up, which
        // must not close the gate at once (measured: three nodes flipped
        // between 1.0x and 1.45x the CPU of one without it).
        auto threshold = static_cast<std::uint64_t>(loaded_ ? min_lag_ns_ / 2 : min_lag_ns_);
        loaded_ = lag_sum_ns_ >= threshold * observations_;
      }
      lag_sum_ns_ = 0;
      observations_ = 0;
      window_start_ = now_ms;
    }
    return loaded_;
  }

private:
  std::int64_t min_lag_ns_;
  std::uint32_t window_ms_;
  std::uint64_t lag_sum_ns_ = 0;
  std::uint64_t observations_ = 0;
  std::uint32_t window_start_ = 0;
  bool loaded_ = false;
};

} // namespace rc::net
