#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

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
///   timer in every session.
class io_worker {
public:
  explicit io_worker(std::chrono::milliseconds ping_interval);

  boost::asio::io_context& context() { return ioc_; }

  /// Any thread: `s->flush()` runs soon on this worker.
  void schedule_flush(std::shared_ptr<websocket_session> s);

  /// Worker thread only: sessions pinged by the liveness timer.
  void add(websocket_session* s);
  void remove(websocket_session* s);

  void start();
  void stop();
  void join();

private:
  void run_flushes();
  void arm_ping_timer();

  boost::asio::io_context ioc_{1};
  boost::asio::steady_timer ping_timer_{ioc_};
  std::chrono::milliseconds ping_interval_;
  std::thread thread_;

  std::mutex flush_mutex_;
  std::vector<std::shared_ptr<websocket_session>> to_flush_;
  std::vector<std::shared_ptr<websocket_session>> flushing_; // worker thread only

  std::vector<websocket_session*> sessions_; // worker thread only
};

/// The server's I/O workers; new connections are dealt out round robin.
class io_pool {
public:
  io_pool(unsigned threads, std::chrono::milliseconds ping_interval);
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
