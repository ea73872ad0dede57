#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace rc::net {

/// Whether an I/O worker is busy enough for the write delay to pay: it counts
/// the frames the worker writes and decides, once per window, whether they
/// came at `min_rate` frames a second or more. On a lightly loaded worker the
/// delay would only add latency; under load it saves the system calls the
/// frames would otherwise queue behind (docs/configuration.md).
///
/// Frames are counted, not writes, so the measure does not fall when the
/// delay starts gathering them. Not thread-safe: one per worker thread.
class load_gate {
public:
  /// Shortest window: one fan-out burst alone does not count as load.
  static constexpr std::uint32_t min_window_ms = 100;

  /// `min_rate` 0: always loaded. `delay_ms`: the write delay (a window is
  /// at least that long, so frames gathered by the delay are counted in it).
  load_gate(std::uint32_t min_rate, std::uint32_t delay_ms)
    : min_rate_(min_rate), window_ms_(std::max(min_window_ms, delay_ms)),
      loaded_(min_rate == 0) {
  }

  void count(std::size_t frames) { frames_ += frames; }

  /// `now_ms`: a wrapping millisecond clock. Decides once `now_ms` is a full
  /// window past the last decision; a window that ran long because nothing
  /// asked counts its quiet time too.
  bool loaded(std::uint32_t now_ms) {
    if (min_rate_ == 0)
      return true;
    auto span = now_ms - window_start_;
    if (span >= window_ms_) {
      loaded_ = frames_ * 1000 >= std::uint64_t{min_rate_} * span;
      frames_ = 0;
      window_start_ = now_ms;
    }
    return loaded_;
  }

private:
  std::uint32_t min_rate_;
  std::uint32_t window_ms_;
  std::uint64_t frames_ = 0;
  std::uint32_t window_start_ = 0;
  bool loaded_;
};

} // namespace rc::net
