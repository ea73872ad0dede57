#pragma once

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/policy/work_sharing.hpp>
#include <caf/resumable.hpp>
#include <caf/scheduler/abstract_coordinator.hpp>
#include <caf/scheduler/coordinator.hpp>

#include <cstddef>
#include <mutex>

namespace rc {

/// CAF's work sharing (one queue, workers sleep on a condition variable),
/// except that an actor made ready by another actor does not wake a
/// sleeping worker when it is the only job waiting: the worker that made it
/// ready takes it next, as soon as its current actor yields.
///
/// Why: a publish crosses connection, relay, room and relay. At low rates
/// (many small rooms) CAF's work sharing woke a sleeping worker for every
/// hop, a futex call and two context switches each, although the sending
/// worker was about to go idle. Jobs from outside the workers (sockets,
/// timers) still wake a worker at once, and a second waiting job wakes
/// another, so a loaded node keeps every worker busy. An actor yields its
/// worker after `hand_off_throughput` messages, so a busy actor holds up a
/// job it made ready for at most that many (CAF's default is unlimited):
/// a room whose logic takes 100 us a publish delays its relay by at most
/// 1.6 ms, and only while no socket or timer wakes the other worker.
class hand_off_policy : public caf::policy::work_sharing {
public:
  // Only where a job enters the queue differs; dequeue is work sharing's.

  template <class Coordinator>
  void central_enqueue(Coordinator* self, caf::resumable* job) {
    push(d(self), job, true);
  }

  template <class Worker>
  void external_enqueue(Worker* self, caf::resumable* job) {
    push(d(self->parent()), job, true);
  }

  template <class Worker>
  void internal_enqueue(Worker* self, caf::resumable* job) {
    push(d(self->parent()), job, false);
  }

  template <class Worker>
  void resume_job_later(Worker* self, caf::resumable* job) {
    push(d(self->parent()), job, false);
  }

private:
  /// `wake`: the job comes from outside the workers; otherwise a worker
  /// wakes only when another job already waits.
  static void push(coordinator_data& data, caf::resumable* job, bool wake) {
    queue_type node; // allocated outside the lock, as work sharing does
    node.push_back(job);
    {
      std::lock_guard<std::mutex> guard{data.lock};
      data.queue.splice(data.queue.end(), node);
      wake = wake || data.queue.size() > 1;
    }
    if (wake)
      data.cv.notify_one();
  }
};

inline constexpr std::size_t hand_off_throughput = 16;

/// Makes `cfg`'s actor system schedule with `hand_off_policy`.
inline void use_hand_off_scheduler(caf::actor_system_config& cfg) {
  cfg.set("scheduler.max-throughput", hand_off_throughput);
  cfg.module_factories.push_back([](caf::actor_system& sys) -> caf::actor_system::module* {
    return new caf::scheduler::coordinator<hand_off_policy>(sys);
  });
}

} // namespace rc
