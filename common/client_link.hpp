#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/close_reason.hpp"
#include "common/frame.hpp"

namespace rc {

/// The seam between a socket (net/) and the actors that serve it (actors/).
/// Implemented by the WebSocket session; every call is thread-safe and only
/// enqueues work on the session's strand, so actors never touch a socket.
class client_link {
public:
  virtual ~client_link() = default;

  /// Queues one text frame. Over the outgoing limits the session closes
  /// with `slow_consumer` instead of growing without bound. Returns false
  /// when the frame was refused (the session is closing or over its limits):
  /// it will not be written, and a caller that must not lose it keeps it.
  virtual bool deliver(frame_ptr frame) = 0;

  /// Called once per confirmed frame: `true` when the frame was written to
  /// the socket, `false` when it was dropped (closed, slow consumer). Runs on
  /// the session's thread: it must only enqueue (e.g. send a message).
  using written_fn = std::function<void(bool written)>;

  /// Like `deliver`, and reports whether this frame reached the socket.
  virtual void deliver(frame_ptr frame, written_fn written) = 0;

  /// Like `deliver`, for a frame the client is waiting for (the answer to
  /// its request): it never waits for the write delay's tick, and takes
  /// whatever is queued before it along.
  virtual bool reply(frame_ptr frame) { return deliver(std::move(frame)); }

  /// Writes what is queued (bounded by the drain time), then closes.
  virtual void close(close_reason why) = 0;

  /// The connection actor finished one inbound frame; reading may resume.
  virtual void frame_done() = 0;
};

using client_link_ptr = std::shared_ptr<client_link>;

/// What net/ calls for each inbound event of one WebSocket. Implemented by
/// the node, which forwards to the connection actor.
class inbound_handler {
public:
  virtual ~inbound_handler() = default;
  virtual void on_frame(std::string text) = 0;
  virtual void on_closed(close_reason why) = 0;
};

} // namespace rc
