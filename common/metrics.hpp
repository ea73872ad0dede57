#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/close_reason.hpp"
#include "common/error_code.hpp"

namespace rc {

/// A cumulative histogram with fixed bucket bounds (seconds), lock-free.
class histogram {
public:
  explicit histogram(std::vector<double> bounds);
  void observe(double seconds);
  void render(std::string& out, const char* name, const char* help) const;

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_; // one per bound, +Inf last
  std::atomic<std::uint64_t> count_{0};
  std::atomic<std::uint64_t> sum_ns_{0};
};

/// The node's Prometheus metrics. Every field is updated lock-free from any
/// thread (asio or CAF); `render` produces the text exposition format.
class metrics {
public:
  metrics();

  /// The process-wide instance `/metrics` exposes.
  static metrics& global();

  std::atomic<std::int64_t> connections{0};
  std::atomic<std::int64_t> rooms{0};
  std::atomic<std::int64_t> users{0};
  /// Bytes of private messages waiting in memory inboxes.
  std::atomic<std::int64_t> inbox_bytes{0};
  std::atomic<std::uint64_t> frames_received{0};
  std::atomic<std::uint64_t> messages_delivered{0};
  std::atomic<std::uint64_t> upgrades_refused{0};
  /// Socket writes held for a write-delay tick (the delay at work under load).
  std::atomic<std::uint64_t> delayed_writes{0};
  /// Writes to client sockets (each takes every frame queued meanwhile):
  /// with messages_delivered, how many frames share a system call. Each
  /// I/O thread adds its count once per batch of flushes (io_worker).
  std::atomic<std::uint64_t> socket_writes{0};
  histogram connection_duration;
  histogram fanout_latency;

  /// Kinds of messages one node sends another, for
  /// `roomcast_cluster_messages_total{kind}`.
  enum class cluster_kind : std::uint8_t { room, user, broadcast, request, control };
  static constexpr std::size_t cluster_kind_count = 5;
  void count_cluster(cluster_kind k, std::uint64_t n = 1) {
    cluster_[static_cast<size_t>(k)] += n;
  }
  std::uint64_t cluster_messages(cluster_kind k) const { return cluster_[static_cast<size_t>(k)]; }
  std::atomic<std::int64_t> cluster_members{1}; ///< this node, until it joins a cluster

  void count_close(close_reason r) { closes_[static_cast<size_t>(r)]++; }
  void count_error(error_code c) { errors_[static_cast<size_t>(c)]++; }
  std::uint64_t closes(close_reason r) const { return closes_[static_cast<size_t>(r)]; }
  std::uint64_t errors(error_code c) const { return errors_[static_cast<size_t>(c)]; }

  std::string render() const;
  /// One gauge in the text format, for metrics kept elsewhere.
  static std::string gauge(const char* name, const char* help, long long value);

private:
  std::array<std::atomic<std::uint64_t>, close_reason_count> closes_{};
  std::array<std::atomic<std::uint64_t>, error_code_count> errors_{};
  std::array<std::atomic<std::uint64_t>, cluster_kind_count> cluster_{};
};

/// Seconds since `t0` on the steady clock, for histogram observations.
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

} // namespace rc
