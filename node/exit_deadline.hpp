#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

namespace rc {

/// Calls `on_expiry` (on a thread of its own) if `done()` does not come
/// within `limit` of the construction. The daemon's bound on CAF's own
/// teardown: in CAF 0.17 a middleman actor can outlive its stop, and
/// `~actor_system` then waits for it forever (docs/operations.md).
class exit_deadline {
public:
  exit_deadline(std::chrono::milliseconds limit, std::function<void()> on_expiry);
  ~exit_deadline();
  exit_deadline(const exit_deadline&) = delete;
  exit_deadline& operator=(const exit_deadline&) = delete;

  /// What was bounded has ended; `on_expiry` will not be called. Idempotent.
  void done();

private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread watcher_;
};

} // namespace rc
