#pragma once

#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <chrono>
#include <deque>
#include <memory>
#include <mutex>

#include "common/client_link.hpp"
#include "net/server_context.hpp"

namespace rc::net {

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

/// One WebSocket connection. Owns the socket; reads frames and hands them to
/// its inbound handler (the connection actor); writes queued frames with one
/// write in flight. All socket state lives on the session's strand; the
/// `client_link` calls may come from any thread and only enqueue.
///
/// Limits enforced here: message size (1009), binary frames (1003), invalid
/// UTF-8 (1007, by Beast), outgoing queue frames/bytes (1008 slow_consumer),
/// missed pings (1008 ping_timeout), and inbound backpressure (at most
/// `max_inflight` frames handed on and not yet processed).
class websocket_session : public client_link,
                          public std::enable_shared_from_this<websocket_session> {
public:
  websocket_session(beast::tcp_stream&& stream, server_context_ptr ctx, identity who);
  ~websocket_session() override;

  /// Completes the handshake for `req` and starts reading.
  void run(http::request<http::string_body> req);

  // -- client_link ------------------------------------------------------------
  void deliver(frame_ptr frame) override;
  void deliver(frame_ptr frame, written_fn written) override;
  void close(close_reason why) override;
  void frame_done() override;

private:
  static constexpr int max_inflight = 32;

  struct outgoing {
    frame_ptr frame;
    written_fn written; ///< empty for unconfirmed frames
  };

  void on_accept(beast::error_code ec);
  void do_read();
  void on_read(beast::error_code ec, std::size_t bytes);
  void do_write();
  void on_write(beast::error_code ec, std::size_t bytes);
  void start_close(close_reason why);
  void on_ping_timer(beast::error_code ec);
  void arm_ping_timer();
  /// Ends the session once: metrics, log, and tells the inbound handler.
  void finish(close_reason why);
  /// Reports `false` to the confirmations of frames that will not be written.
  static void report_dropped(std::deque<outgoing>& dropped);

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  server_context_ptr ctx_;
  identity who_;
  std::shared_ptr<inbound_handler> inbound_;
  boost::asio::steady_timer ping_timer_;
  std::chrono::steady_clock::time_point opened_;

  // Strand-only state.
  int inflight_ = 0;
  bool read_paused_ = false;
  bool close_started_ = false;
  bool finished_ = false;
  bool ping_in_flight_ = false;
  std::uint64_t missed_pongs_ = 0;
  close_reason reason_ = close_reason::client_closed;
  bool reason_set_ = false;
  /// Set by a graceful close: close once the queue is written.
  bool close_when_drained_ = false;

  // Outgoing queue, shared with deliver() callers.
  std::mutex mutex_;
  std::deque<outgoing> queue_; // front() is being written while writing_
  std::size_t queued_bytes_ = 0;
  bool writing_ = false;        // a write is in flight or posted
  bool overflowed_ = false;
  bool closed_ = false;         // no more frames accepted
};

} // namespace rc::net
