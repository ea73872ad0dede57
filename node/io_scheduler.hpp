#pragma once

#include <boost/asio/io_context.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/detail/thread_safe_actor_clock.hpp>
#include <caf/execution_unit.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace rc {

/// A CAF scheduler that runs actors on the server's I/O threads.
///
/// Why: at a few publishes a second per room, a publish read by an I/O
/// thread woke a CAF worker (a futex call and two context switches), and
/// the worker's writes woke the I/O thread back (an epoll interrupt). Run
/// where the frame was read, the actors of a publish need no other thread,
/// and the frames for that thread's sessions go out before it sleeps again.
///
/// An actor made ready by code on an I/O thread (a session's read, another
/// actor running there) runs next on that thread; one made ready elsewhere
/// (CAF's clock, remoting, the main thread) goes to the I/O threads in turn.
/// Before the server runs and after it stops, actors run on one thread of
/// the scheduler's own (the fallback): jobs that were queued on an I/O
/// thread when it stopped move there, so none is lost.
class io_scheduler : public caf::scheduler::abstract_coordinator {
public:
  explicit io_scheduler(caf::actor_system& sys);
  ~io_scheduler() override;

  /// Any thread: runs `job` soon (on this I/O thread if called on one).
  void enqueue(caf::resumable* job) override;

  caf::detail::thread_safe_actor_clock& clock() noexcept override { return clock_; }

  /// From now on, actors run on these contexts' threads. Each context must
  /// be run by exactly one thread (net::io_pool's workers are).
  void attach(const std::vector<boost::asio::io_context*>& contexts);
  /// Call before the contexts stop: actors run on the fallback again.
  void detach();

  /// Returns the running system's io_scheduler, or nullptr if it has another.
  static io_scheduler* of(caf::actor_system& sys);

protected:
  void start() override;
  void stop() override;

private:
  /// Where jobs run: one I/O context and its thread.
  struct unit : caf::execution_unit {
    unit(io_scheduler* owner, boost::asio::io_context* ctx, bool pool);
    void exec_later(caf::resumable* job) override;

    io_scheduler* owner;
    boost::asio::io_context* ctx;
    bool pool; ///< one of the server's I/O contexts (not the fallback)
  };
  struct job_handler;

  void post(unit& to, caf::resumable* job);
  void run(unit& on, caf::resumable* job);
  /// The attached unit whose thread calls this, or nullptr.
  unit* current() const;
  unit& next_pool_unit();

  caf::detail::thread_safe_actor_clock clock_;
  std::thread timer_;

  std::unique_ptr<boost::asio::io_context> fallback_ctx_; // reset at stop: drops its queue
  std::thread fallback_thread_;
  unit fallback_;

  using units = std::vector<std::unique_ptr<unit>>;
  std::mutex attach_mutex_;
  std::vector<std::unique_ptr<units>> attached_ever_; // kept: queued handlers point into them
  std::atomic<units*> live_{nullptr}; // the attached units; nullptr: the fallback runs all
  std::atomic<std::size_t> next_{0};
  std::atomic<bool> stopping_{false};
};

/// Messages an actor handles before it yields its I/O thread: the sockets
/// waiting behind a busy actor wait for at most this many.
inline constexpr std::size_t io_throughput = 16;

/// Makes `cfg`'s actor system schedule with `io_scheduler`.
void use_io_scheduler(caf::actor_system_config& cfg);

} // namespace rc
