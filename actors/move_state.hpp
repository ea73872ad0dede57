#pragma once

#include <caf/actor.hpp>
#include <caf/local_actor.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/response_promise.hpp>
#include <caf/result.hpp>
#include <caf/skip.hpp>

#include <chrono>

namespace rc {

/// How long a move waits for its new owner to take the state. Long: a move
/// that times out cannot be taken back, and a new owner that was only slow
/// (frozen for a few seconds) takes the state late, so a second copy made
/// meanwhile would split the room or user in two (a probe saw acked room
/// messages lost and inboxes delivered three times with 2 s).
constexpr auto move_timeout = std::chrono::seconds{10};

/// What `move_state::divert` did with the current message.
enum class diverted {
  no,        ///< serving: the handler handles it
  waits,     ///< moving: left in the mailbox until the move ends
  delegated, ///< moved: passed on to the successor
};

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

  /// While moving, the current message waits: the handler returns CAF's
  /// `skip`, which keeps it in the mailbox, ahead of newer ones, until a
  /// message is handled (the move's answer), so what waited is handled in
  /// its order and before anything that came after it, whether the move
  /// succeeded or failed. (Before, waiting messages were kept aside and,
  /// after a failed move, sent to this actor again, behind messages that
  /// had come meanwhile: a relay's publishes could swap places.) Once
  /// moved, the message goes to the successor (replies reach the original
  /// sender).
  diverted divert(caf::local_actor* self) {
    if (state == phase::serving)
      return diverted::no;
    if (state == phase::moving)
      return diverted::waits;
    auto msg = self->current_mailbox_element()->move_content_to_message();
    auto rp = self->make_response_promise();
    rp.delegate(successor, msg);
    return diverted::delegated;
  }
};

/// What a handler returns for a message `divert` took care of.
template <class... Ts>
caf::result<Ts...> diverted_result(diverted d) {
  if (d == diverted::waits)
    return caf::skip;
  return caf::delegated<Ts...>{};
}

} // namespace rc
