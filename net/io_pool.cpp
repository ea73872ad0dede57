#include "net/io_pool.hpp"

#include <pthread.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include "common/metrics.hpp"
#include "net/websocket_session.hpp"

namespace rc::net {

io_worker::io_worker(std::chrono::milliseconds ping_interval, std::chrono::milliseconds write_delay,
                     std::chrono::microseconds write_delay_min_lag)
  : ping_interval_(ping_interval), write_delay_ms_(static_cast<std::uint32_t>(write_delay.count())),
    load_(write_delay_min_lag, write_delay_ms_) {
}

io_worker::hold io_worker::must_wait(std::uint32_t written_ms) {
  if (!delays_writes())
    return hold::none;
  auto now = now_ms();
  auto since = now - written_ms;
  if (since >= 2 * write_delay_ms_)
    return hold::none; // a quiet socket is written at once
  // A lightly loaded worker writes at once too (load_gate).
  if (!load_.loaded(now))
    return hold::none;
  return since < write_delay_ms_ ? hold::next_tick : hold::tick_after;
}

std::uint32_t io_worker::now_ms() const {
  auto since = std::chrono::steady_clock::now() - epoch_;
  return static_cast<std::uint32_t>(
    std::chrono::duration_cast<std::chrono::milliseconds>(since).count());
}

void io_worker::defer_flush(std::shared_ptr<websocket_session> s, hold h) {
  (h == hold::tick_after ? deferred_later_ : deferred_).push_back(std::move(s));
  arm_delay_timer();
}

void io_worker::arm_delay_timer() {
  if (delay_armed_)
    return;
  delay_armed_ = true;
  delay_timer_.expires_after(std::chrono::milliseconds{write_delay_ms_});
  delay_timer_.async_wait([this](boost::system::error_code ec) {
    delay_armed_ = false;
    if (ec)
      return;
    deferred_run_.swap(deferred_);
    deferred_.swap(deferred_later_); // their turn is the next tick
    // Only sessions that still held frames (an answer may have sent them,
    // and a session may be listed twice): before, every entry counted.
    std::uint64_t delayed = 0;
    for (auto& s : deferred_run_)
      delayed += s->flush_held() ? 1 : 0;
    metrics::global().delayed_writes += delayed; // one atomic per tick
    deferred_run_.clear();
    report_writes();
    if (!deferred_.empty())
      arm_delay_timer();
  });
}

void io_worker::schedule_flush(std::shared_ptr<websocket_session> s) {
  bool first;
  {
    std::lock_guard<std::mutex> guard{flush_mutex_};
    first = to_flush_.empty();
    to_flush_.push_back(std::move(s));
    if (first && delays_writes())
      kick_posted_ = std::chrono::steady_clock::now();
  }
  if (first)
    boost::asio::post(ioc_, [this] { run_flushes(); });
}

void io_worker::run_flushes() {
  std::chrono::steady_clock::time_point posted;
  {
    std::lock_guard<std::mutex> guard{flush_mutex_};
    flushing_.swap(to_flush_);
    posted = kick_posted_;
  }
  if (delays_writes())
    load_.observe(std::chrono::steady_clock::now() - posted);
  for (auto& s : flushing_)
    s->flush(true);
  flushing_.clear();
  report_writes();
}

void io_worker::report_writes() {
  if (writes_unreported_ == 0)
    return;
  metrics::global().socket_writes.fetch_add(writes_unreported_, std::memory_order_relaxed);
  writes_unreported_ = 0;
}

void io_worker::add(websocket_session* s) {
  s->slot_ = sessions_.size();
  sessions_.push_back(s);
}

void io_worker::remove(websocket_session* s) {
  auto at = s->slot_;
  sessions_[at] = sessions_.back();
  sessions_[at]->slot_ = at;
  sessions_.pop_back();
}

void io_worker::arm_ping_timer() {
  if (ping_interval_.count() <= 0)
    return;
  ping_timer_.expires_after(ping_interval_);
  ping_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec)
      return;
    // on_ping_tick never removes a session, so indices stay valid.
    for (std::size_t i = 0; i < sessions_.size(); ++i)
      sessions_[i]->on_ping_tick();
    report_writes(); // and those of writes outside a batch (a full socket's)
    arm_ping_timer();
  });
}

void io_worker::start() {
  arm_ping_timer();
  thread_ = std::thread{[this] {
    // Named for top and perf: CAF names its own workers caf.multiplexer.
    pthread_setname_np(pthread_self(), "roomcast.io");
    auto guard = boost::asio::make_work_guard(ioc_);
    ioc_.run();
  }};
}

void io_worker::stop() {
  ioc_.stop();
}

void io_worker::join() {
  if (thread_.joinable())
    thread_.join();
}

io_pool::io_pool(unsigned threads, std::chrono::milliseconds ping_interval,
                 std::chrono::milliseconds write_delay, std::chrono::microseconds write_delay_min_lag) {
  for (unsigned i = 0; i < std::max(1u, threads); ++i)
    workers_.push_back(std::make_unique<io_worker>(ping_interval, write_delay, write_delay_min_lag));
}

io_pool::~io_pool() {
  stop();
}

io_worker& io_pool::next() {
  // Called by the accepting thread only.
  return *workers_[next_++ % workers_.size()];
}

void io_pool::start() {
  if (running_)
    return;
  running_ = true;
  for (auto& w : workers_)
    w->start();
}

void io_pool::stop() {
  for (auto& w : workers_)
    w->stop();
  for (auto& w : workers_)
    w->join();
  running_ = false;
}

} // namespace rc::net
