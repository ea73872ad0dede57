#include "node/exit_deadline.hpp"

namespace rc {

exit_deadline::exit_deadline(std::chrono::milliseconds limit, std::function<void()> on_expiry) {
  watcher_ = std::thread{[this, limit, on_expiry = std::move(on_expiry)] {
    bool expired;
    {
      std::unique_lock<std::mutex> lock{mutex_};
      expired = !cv_.wait_for(lock, limit, [this] { return done_; });
    }
    if (expired)
      on_expiry();
  }};
}

exit_deadline::~exit_deadline() {
  done();
}

void exit_deadline::done() {
  {
    std::lock_guard<std::mutex> lock{mutex_};
    done_ = true;
  }
  cv_.notify_all();
  if (watcher_.joinable())
    watcher_.join();
}

} // namespace rc
