#pragma once

// A fixed-size log-linear histogram of nanosecond values (HdrHistogram's
// layout with 64 sub-buckets per power of two, so every recorded value is
// kept to within 1.6%). Recording is two shifts and an increment with no
// allocation, so each load-generator thread keeps its own and they are
// merged at the end. (Debian packages no C/C++ HdrHistogram.)

#include <algorithm>
#include <array>
#include <cstdint>

namespace rc::bench {

class histogram {
public:
  void record(std::int64_t ns) {
    auto v = static_cast<std::uint64_t>(ns < 0 ? 0 : ns);
    ++counts_[index_of(v)];
    ++total_;
    max_ = std::max(max_, v);
  }

  void merge(const histogram& other) {
    for (std::size_t i = 0; i < counts_.size(); ++i)
      counts_[i] += other.counts_[i];
    total_ += other.total_;
    max_ = std::max(max_, other.max_);
  }

  std::uint64_t count() const { return total_; }
  std::uint64_t max() const { return max_; }

  /// The value at quantile `q` (0..1): the upper edge of its bucket, capped
  /// at the largest value recorded.
  std::uint64_t quantile(double q) const {
    if (total_ == 0)
      return 0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total_));
    if (rank >= total_)
      rank = total_ - 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen > rank)
        return std::min(upper_of(i), max_);
    }
    return max_;
  }

private:
  static constexpr int sub_bits = 6;
  static constexpr std::uint64_t sub = 1u << sub_bits; // 64
  // Values below 2*sub map to themselves; above, each power of two gets `sub` buckets.
  static constexpr std::size_t buckets = (64 - sub_bits) * sub + sub;

  static std::size_t index_of(std::uint64_t v) {
    if (v < 2 * sub)
      return static_cast<std::size_t>(v);
    int msb = 63 - __builtin_clzll(v);
    int e = msb - sub_bits; // >= 1
    return static_cast<std::size_t>(e) * sub + static_cast<std::size_t>(v >> e);
  }

  static std::uint64_t upper_of(std::size_t i) {
    if (i < 2 * sub)
      return i;
    std::uint64_t e = i / sub - 1;
    std::uint64_t m = i % sub + sub;
    return ((m + 1) << e) - 1;
  }

  std::array<std::uint64_t, buckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

} // namespace rc::bench
