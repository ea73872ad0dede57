#pragma once

#include <caf/actor.hpp>
#include <caf/local_actor.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/response_promise.hpp>

#include <chrono>
#include <functional>
#include <vector>

namespace rc {

/// How long a move waits for its new owner to take the state. Long: a move
/// that times out cannot be taken back, and a new owner that was only slow
/// (frozen for a few seconds) takes the state late, so a second copy made
/// meanwhile would split the room or user in two (a probe saw acked room
/// messages lost and inboxes delivered three times with 2 s).
constexpr auto move_timeout = std::chrono::seconds{10};

/// Where an actor that can move to another node (a room, a user) is in its
/// move. Shared by both so they divert requests the same way.
struct move_state {
  enum class phase {
    serving,    ///< the owner's actor
    moving,     ///< handing its state to a new owner; requests wait
    forwarding, ///< moved: passes everything on to its successor
  };
  phase state = phase::serving;
  caf::actor successor;
  std::vector<std::function<void()>> held;

  /// While moving, the current request waits; once moved, it goes to the
  /// successor (replies reach the original sender). Returns true when the
  /// current message was taken care of that way.
  bool divert(caf::local_actor* self) {
    if (state == phase::serving)
      return false;
    auto msg = self->current_mailbox_element()->move_content_to_message();
    auto rp = self->make_response_promise();
    if (state == phase::moving) {
      // Released to the successor, or back to this actor if the move failed.
      auto me = caf::actor_cast<caf::actor>(self);
      held.push_back([this, me, msg, rp]() mutable { rp.delegate(successor ? successor : me, msg); });
    }
    else
      rp.delegate(successor, msg);
    return true;
  }

  /// The move ended (done or failed): release what waited, in order.
  void release_held() {
    auto waiting = std::move(held);
    held.clear();
    for (auto& fn : waiting)
      fn();
  }
};

} // namespace rc
