#include "node/io_scheduler.hpp"

#include <pthread.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <utility>

namespace rc {

/// One job on its way to a unit. A handler that never runs (its context
/// stopped first) hands the job to the fallback, or releases it once the
/// scheduler itself stops, so no actor is left scheduled forever.
struct io_scheduler::job_handler {
  io_scheduler* owner;
  unit* on;
  caf::resumable* job;

  job_handler(io_scheduler* o, unit* u, caf::resumable* j) : owner(o), on(u), job(j) {}
  job_handler(job_handler&& other) noexcept
    : owner(other.owner), on(other.on), job(std::exchange(other.job, nullptr)) {}
  job_handler(const job_handler&) = delete;
  job_handler& operator=(const job_handler&) = delete;
  job_handler& operator=(job_handler&&) = delete;

  ~job_handler() {
    if (job == nullptr)
      return;
    if (owner->stopping_.load())
      caf::scheduler::abstract_coordinator::cleanup_and_release(job);
    else
      owner->post(owner->fallback_, job);
  }

  void operator()() { owner->run(*on, std::exchange(job, nullptr)); }
};

io_scheduler::unit::unit(io_scheduler* owner, boost::asio::io_context* ctx, bool pool)
  : caf::execution_unit(&owner->system()), owner(owner), ctx(ctx), pool(pool) {
}

void io_scheduler::unit::exec_later(caf::resumable* job) {
  // The fallback hands its actors' messages to the I/O threads once they
  // run, so no chain of actors stays on it.
  if (pool)
    owner->post(*this, job);
  else
    owner->enqueue(job);
}

io_scheduler::io_scheduler(caf::actor_system& sys)
  : caf::scheduler::abstract_coordinator(sys),
    fallback_ctx_(std::make_unique<boost::asio::io_context>(1)),
    fallback_(this, fallback_ctx_.get(), false) {
}

io_scheduler::~io_scheduler() = default;

io_scheduler* io_scheduler::of(caf::actor_system& sys) {
  return dynamic_cast<io_scheduler*>(&sys.scheduler());
}

void io_scheduler::start() {
  fallback_thread_ = std::thread{[this] {
    pthread_setname_np(pthread_self(), "roomcast.actor");
    system().thread_started();
    auto guard = boost::asio::make_work_guard(*fallback_ctx_);
    fallback_ctx_->run();
    system().thread_terminates();
  }};
  timer_ = std::thread{[this] {
    pthread_setname_np(pthread_self(), "caf.clock");
    system().thread_started();
    clock_.run_dispatch_loop();
    system().thread_terminates();
  }};
  caf::scheduler::abstract_coordinator::start();
}

void io_scheduler::stop() {
  detach();
  stop_actors();
  stopping_ = true;
  fallback_ctx_->stop();
  if (fallback_thread_.joinable())
    fallback_thread_.join();
  // Releases whatever was still queued while the system is alive.
  fallback_ctx_.reset();
  clock_.cancel_dispatch_loop();
  if (timer_.joinable())
    timer_.join();
}

void io_scheduler::attach(const std::vector<boost::asio::io_context*>& contexts) {
  if (contexts.empty())
    return;
  auto fresh = std::make_unique<units>();
  for (auto* ctx : contexts)
    fresh->push_back(std::make_unique<unit>(this, ctx, true));
  std::lock_guard<std::mutex> guard{attach_mutex_};
  live_.store(fresh.get());
  attached_ever_.push_back(std::move(fresh));
}

void io_scheduler::detach() {
  live_.store(nullptr);
}

void io_scheduler::enqueue(caf::resumable* job) {
  if (auto* here = current())
    return post(*here, job);
  if (auto* live = live_.load())
    return post(*(*live)[next_.fetch_add(1, std::memory_order_relaxed) % live->size()], job);
  post(fallback_, job);
}

io_scheduler::unit* io_scheduler::current() const {
  auto* live = live_.load();
  if (live == nullptr)
    return nullptr;
  for (auto& u : *live)
    if (u->ctx->get_executor().running_in_this_thread())
      return u.get();
  return nullptr;
}

void io_scheduler::post(unit& to, caf::resumable* job) {
  // Detached: the I/O contexts are about to stop, or have.
  unit* target = (to.pool && live_.load() == nullptr) ? &fallback_ : &to;
  if (target == &fallback_ && stopping_.load()) {
    cleanup_and_release(job);
    return;
  }
  boost::asio::post(*target->ctx, job_handler{this, target, job});
}

void io_scheduler::run(unit& on, caf::resumable* job) {
  switch (job->resume(&on, max_throughput())) {
    case caf::resumable::resume_later:
      post(on, job); // behind the I/O that waits on this thread
      break;
    case caf::resumable::done:
    case caf::resumable::awaiting_message:
      intrusive_ptr_release(job);
      break;
    case caf::resumable::shutdown_execution_unit:
      break;
  }
}

void use_io_scheduler(caf::actor_system_config& cfg) {
  cfg.set("scheduler.max-throughput", io_throughput);
  cfg.module_factories.push_back([](caf::actor_system& sys) -> caf::actor_system::module* {
    return new io_scheduler(sys);
  });
}

} // namespace rc
