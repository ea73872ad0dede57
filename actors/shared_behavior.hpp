#pragma once

#include <caf/behavior.hpp>
#include <caf/resumable.hpp>
#include <caf/stateful_actor.hpp>

#include <cstddef>
#include <utility>

namespace rc {

/// A stateful actor whose instances share one behavior. CAF 0.17 builds a
/// behavior for every actor, about 40 bytes a handler with its `self`
/// capture. For the actors a node has per connection (connection, user) or
/// per room (room, relay), that was 0.9 of an idle connection's 5.9 KiB
/// (docs/benchmarks-history.md). The handlers of a shared behavior capture nothing
/// and find the actor they run in with `current()`.
///
/// `current()` is set while the actor runs (`resume`), which is where CAF
/// calls every handler: messages, responses, down and exit handlers, on
/// every scheduler, its deterministic test coordinator included. Lambdas a
/// handler makes (continuations, timers) may capture the `self` it got.
///
/// A spawn function returns `shared<make_handlers>()`: the behavior
/// `make_handlers` builds once, on first use. Returning `make_handlers()`
/// would work as well, and silently build one behavior per actor again.
template <class State>
class sharing_actor : public caf::stateful_actor<State> {
public:
  using caf::stateful_actor<State>::stateful_actor;

  /// The actor running on this thread; only valid inside its handlers.
  static sharing_actor* current() { return current_; }

  /// The behavior `Make` builds, built once for all actors that return it
  /// (one per `Make`: a kind may have more than one).
  template <caf::behavior (*Make)()>
  static const caf::behavior& shared() {
    static const caf::behavior handlers = Make();
    return handlers;
  }

  caf::resumable::resume_result resume(caf::execution_unit* ctx,
                                       std::size_t max) override {
    auto outer = std::exchange(current_, this);
    auto result = caf::stateful_actor<State>::resume(ctx, max);
    current_ = outer;
    return result;
  }

private:
  static inline thread_local sharing_actor* current_ = nullptr;
};

} // namespace rc
