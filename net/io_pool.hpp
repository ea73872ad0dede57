#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "net/load_gate.hpp"

namespace rc::net {

class websocket_session;

/// One I/O thread and its single-threaded io_context. Every socket belongs to
/// one worker for life, so its handlers run in order without a strand.
///
/// Two jobs are batched here instead of costing something per connection:
/// - write kicks: deliveries from other threads wake a session through one
///   post per burst (a room's fan-out to thousands of sessions costs a few
///   posts, not one per session);
/// - liveness: one timer per worker pings all of its sessions, instead of a
///   timer in every session;
/// - the write delay: while the worker is behind (its write kicks wait at
///   least `write_delay_min_lag` on average, see load_gate), a session
///   written less than `write_delay` ago leaves its next frames queued until
///   the worker's delay tick, so they go out in one gathered write (one
///   timer per worker, not per session). One written less than twice that
///   ago waits for the tick after: its frames come a little slower than the
///   delay, and a single tick would send each alone, late for nothing.
class io_worker {
public:
  io_worker(std::chrono::milliseconds ping_interval, std::chrono::milliseconds write_delay,
            std::chrono::microseconds write_delay_min_lag);

  boost::asio::io_context& context() { return ioc_; }

  /// Any thread: `s->flush()` runs soon on this worker.
  void schedule_flush(std::shared_ptr<websocket_session> s);

  /// Milliseconds since the worker was made, wrapping: a 4-byte write
  /// timestamp per session.
  std::uint32_t now_ms() const;
  /// How long a session's queued frames wait for the delay.
  enum class hold { none, next_tick, tick_after };
  /// Worker thread only: whether a session last written at `written_ms`
  /// waits for a delay tick, and which.
  hold must_wait(std::uint32_t written_ms);
  bool delays_writes() const { return write_delay_ms_ != 0; }
  /// Worker thread only: `s->flush_held()` at the delay tick `h` says.
  void defer_flush(std::shared_ptr<websocket_session> s, hold h);

  /// Worker thread only: a session wrote to its socket. Counted here and
  /// added to the metric once per batch of flushes (report_writes), not
  /// once per write from every I/O thread into one shared counter.
  void count_write() { ++writes_unreported_; }
  void report_writes();

  /// Worker thread only: sessions pinged by the liveness timer.
  void add(websocket_session* s);
  void remove(websocket_session* s);

  void start();
  void stop();
  void join();

private:
  void run_flushes();
  void arm_ping_timer();
  void arm_delay_timer();

  boost::asio::io_context ioc_{1};
  boost::asio::steady_timer ping_timer_{ioc_};
  std::chrono::milliseconds ping_interval_;
  std::thread thread_;

  std::mutex flush_mutex_;
  std::vector<std::shared_ptr<websocket_session>> to_flush_;
  std::chrono::steady_clock::time_point kick_posted_; // the first of to_flush_ (load gate)
  std::vector<std::shared_ptr<websocket_session>> flushing_; // worker thread only

  std::vector<websocket_session*> sessions_; // worker thread only
  std::uint64_t writes_unreported_ = 0;      // worker thread only

  std::chrono::steady_clock::time_point epoch_ = std::chrono::steady_clock::now();
  std::uint32_t write_delay_ms_;
  boost::asio::steady_timer delay_timer_{ioc_};
  bool delay_armed_ = false;
  load_gate load_; // worker thread only
  // Worker thread only: sessions waiting for the next delay tick, for the
  // tick after, and the batch being flushed.
  std::vector<std::shared_ptr<websocket_session>> deferred_, deferred_later_, deferred_run_;
};

/// The server's I/O workers; new connections are dealt out round robin.
class io_pool {
public:
  io_pool(unsigned threads, std::chrono::milliseconds ping_interval,
          std::chrono::milliseconds write_delay, std::chrono::microseconds write_delay_min_lag);
  ~io_pool();

  io_worker& next();
  io_worker& first() { return *workers_.front(); }

  void start();
  /// Stops all I/O and joins the threads.
  void stop();

private:
  std::vector<std::unique_ptr<io_worker>> workers_;
  std::size_t next_ = 0;
  bool running_ = false;
};

} // namespace rc::net
