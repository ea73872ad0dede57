#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/client_link.hpp"
#include "net/server_context.hpp"

namespace rc::net {

class io_worker;

/// Memory for the one readiness wait a session always has pending, inside the
/// session: Asio would otherwise keep a heap block per idle connection (and
/// reuses larger blocks for it, ~270 bytes). Larger requests go to the heap.
class wait_memory {
public:
  void* allocate(std::size_t size) {
    if (!in_use_ && size <= sizeof(storage_)) {
      in_use_ = true;
      return storage_;
    }
    return ::operator new(size);
  }
  void deallocate(void* p) {
    if (p == storage_)
      in_use_ = false;
    else
      ::operator delete(p);
  }

private:
  alignas(std::max_align_t) unsigned char storage_[96];
  bool in_use_ = false;
};

/// The allocator Asio uses for a handler that names it (`get_allocator`).
template <class T>
struct wait_allocator {
  using value_type = T;
  wait_memory* memory;
  explicit wait_allocator(wait_memory* m) noexcept : memory(m) {}
  template <class U>
  wait_allocator(const wait_allocator<U>& other) noexcept : memory(other.memory) {}
  T* allocate(std::size_t n) { return static_cast<T*>(memory->allocate(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) { memory->deallocate(p); }
  template <class U>
  bool operator==(const wait_allocator<U>& o) const noexcept { return memory == o.memory; }
  template <class U>
  bool operator!=(const wait_allocator<U>& o) const noexcept { return memory != o.memory; }
};

/// One WebSocket connection. Beast performs the opening handshake; after it
/// the session owns the TCP socket and speaks RFC 6455 frames itself, because
/// that is what lets it write pre-framed, shared frames: everything queued
/// while a write is in flight leaves in one gathered write, sent right away
/// while the socket takes it all (an asynchronous write only for the rest).
///
/// Threads: the socket and all state below "worker only" belong to the
/// session's io_worker thread. `client_link` calls come from any thread and
/// only touch the outgoing queue under `mutex_`.
///
/// Memory: an idle session holds no read buffer (it waits for readability
/// and reads into its worker's buffer), no timer (its worker pings it), its
/// pending wait lives inside it, large buffers are released when they drain
/// and the queues' memory at the next ping when nothing is being written,
/// and a ping to an idle session allocates nothing (send_now).
///
/// Limits enforced here: message size (1009), binary frames (1003), invalid
/// UTF-8 (1007), protocol errors (1002), outgoing queue frames/bytes (1008
/// slow_consumer), unanswered pings (1008 ping_timeout), and inbound
/// backpressure (at most `max_inflight` frames handed on and not processed).
class websocket_session : public client_link,
                          public std::enable_shared_from_this<websocket_session> {
public:
  /// `leftover`: bytes the HTTP session read past the upgrade request.
  /// `full`: the node is at its connection limit; the session completes the
  /// handshake only to close with 1013 (try again later), as the protocol
  /// says, so that even a browser learns why.
  websocket_session(boost::beast::tcp_stream&& stream, io_worker& worker, server_context_ptr ctx,
                    identity who, std::string leftover, bool full = false);
  ~websocket_session() override;

  /// Completes the handshake for `req` and starts reading.
  void run(boost::beast::http::request<boost::beast::http::string_body> req);

  // -- client_link ------------------------------------------------------------
  bool deliver(frame_ptr frame) override;
  void deliver(frame_ptr frame, written_fn written) override;
  bool reply(frame_ptr frame) override;
  void close(close_reason why) override;
  void frame_done() override;

private:
  friend class io_worker;
  friend struct readable_handler;
  static constexpr int max_inflight = 32;

  struct outgoing {
    frame_ptr frame;
    written_fn written; ///< empty for unconfirmed frames
  };
  enum class read_outcome { more, paused, stop };

  void on_accept(boost::beast::error_code ec);
  // Reading (worker only).
  void wait_readable();
  void on_readable(boost::beast::error_code ec);
  /// Parses `partial_` followed by `size` fresh bytes.
  void process(char* fresh, std::size_t size);
  read_outcome consume(char* data, std::size_t size, std::size_t& used);
  read_outcome on_frame(int opcode, bool fin, std::string_view payload);
  void hand_on(std::string text);
  // Writing.
  /// Any thread: queues `frame`; false (and `written(false)`) when refused.
  /// An `answer` is written without waiting for the write delay's tick.
  bool enqueue(frame_ptr frame, written_fn written, bool answer = false);
  /// Worker: writes everything queued in one gathered write; with
  /// `may_wait`, leaves it for the worker's delay tick instead when the
  /// socket was written within the write delay (io_worker::must_wait).
  void flush(bool may_wait = false);
  /// One round of flush(): true when it wrote everything at once and the
  /// queue must be looked at again.
  bool write_queued(bool may_wait);
  /// Worker, at the delay tick: flush() unless an answer took the held
  /// frames out meanwhile; returns whether it had held frames to flush.
  bool flush_held();
  void on_written(boost::beast::error_code ec, std::size_t bytes);
  /// After the frames in flight have left (or failed): reports them, and
  /// true unless the session ended or the queue must not be written again.
  bool complete_write(boost::beast::error_code ec);
  // Closing (worker only).
  /// Queues our close frame (`code_override`: the code echoed to a client's close).
  void start_close(close_reason why, std::uint16_t code_override = 0);
  /// Closes after input that breaks the protocol or a limit.
  void fail(close_reason why);
  void queue_control(frame_ptr f, bool limited = false);
  /// Under `mutex_`: appends `o`; true when the caller must schedule a flush.
  bool push_locked(outgoing o, bool answer);
  /// The same, and marks the session overflowed when `o` made the queue
  /// exceed the outgoing limits behind other frames (`overflowed_now`: this
  /// push did, and the caller must start the close).
  bool push_limited_locked(outgoing o, bool answer, bool& overflowed_now);
  /// Under `mutex_`: takes every queued frame out (not the one in flight).
  std::vector<outgoing> take_queue_locked();
  void arm_close_timer();
  /// Ends the session once: metrics, log, and tells the inbound handler.
  void finish(close_reason why);
  /// Called by the worker's liveness timer.
  void on_ping_tick();
  /// Worker: writes `f` (which must outlive the write) with one non-blocking
  /// send when nothing is queued or in flight; false when it must be queued.
  /// Pings an idle session without the queue vectors and a write operation:
  /// allocated for every session of a ping tick at once, those left ~0.5 KiB
  /// of freed but fragmented heap per connection.
  bool send_now(const frame_ptr& f);
  /// Ping tick: gives back the queues' memory, and lets the next drains do
  /// so too.
  void release_idle_queues();
  /// Gives back the queues' memory unless a write is scheduled or in flight.
  void free_queues();

  static void report_dropped(std::vector<outgoing>& dropped);

  /// Bound to the worker's io_context type rather than a polymorphic
  /// executor: every pending operation is smaller, and one is always pending.
  using socket_type =
    boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>;
  socket_type socket_;
  io_worker& worker_;
  server_context_ptr ctx_;
  std::string user_; ///< for logs
  std::shared_ptr<inbound_handler> inbound_;
  std::chrono::steady_clock::time_point opened_;
  /// During the opening handshake only: Beast's stream, and who is
  /// connecting (handed to the inbound handler once accepted).
  struct opening {
    boost::beast::websocket::stream<boost::beast::tcp_stream> ws;
    identity who;
  };
  std::unique_ptr<opening> opening_;

  // Worker only.
  std::string partial_;  ///< unparsed bytes of an incomplete frame (or held while paused)
  std::string message_;  ///< fragments of a message being assembled
  bool in_message_ = false;
  int inflight_ = 0;
  bool read_paused_ = false;
  bool reading_ = false;
  bool close_started_ = false;
  bool close_received_ = false;
  bool close_sent_ = false;
  bool discard_input_ = false;
  bool finished_ = false;
  bool registered_ = false;
  bool full_ = false; ///< closes with 1013 right after the handshake
  std::size_t slot_ = 0; ///< index in the worker's session list
  std::uint32_t missed_pongs_ = 0;
  close_reason reason_ = close_reason::client_closed;
  /// A graceful close waits for the queue to drain.
  bool close_when_drained_ = false;
  std::unique_ptr<boost::asio::steady_timer> close_timer_;
  wait_memory wait_memory_;
  std::vector<outgoing> inflight_frames_;
  std::vector<boost::asio::const_buffer> buffers_;
  std::size_t inflight_bytes_ = 0;
  std::uint32_t drains_since_tick_ = 0; ///< the first few drains after a tick free the queues
  std::uint32_t last_write_ms_ = 0;     ///< worker's now_ms() at the last write (write delay)

  // Outgoing queue, shared with deliver() callers.
  std::mutex mutex_;
  std::vector<outgoing> queue_;
  std::size_t queued_bytes_ = 0; ///< queued and in flight
  bool writing_ = false;         ///< a flush is scheduled or a write in flight
  bool overflowed_ = false;
  bool closed_ = false;          ///< no more frames accepted
  bool held_ = false;            ///< waiting for the worker's delay tick
  bool answer_queued_ = false;   ///< the queue holds an answer: no delay
};

} // namespace rc::net
