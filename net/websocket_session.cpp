#include "net/websocket_session.hpp"

#include <boost/asio/write.hpp>
#include <boost/beast/websocket/detail/utf8_checker.hpp>
#include <spdlog/spdlog.h>

#include <cstring>
#include <optional>
#include <unistd.h>

#include "common/metrics.hpp"
#include "net/io_pool.hpp"

namespace rc::net {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;

namespace {

/// Client frame opcodes (RFC 6455 5.2).
enum : int { op_continuation = 0x0, op_text = 0x1, op_binary = 0x2, op_close = 0x8,
             op_ping = 0x9, op_pong = 0xA };

/// Bytes read per readiness; one buffer per worker thread, so an idle
/// connection holds none.
constexpr std::size_t read_chunk = 64 * 1024;

/// Over this many bytes of capacity, drained buffers are given back.
constexpr std::size_t keep_capacity = 16 * 1024;
/// Drains after a ping tick that give the queues' memory back.
constexpr std::uint32_t releasing_drains = 4;
/// Writes one flush() may complete in place before it yields the worker.
constexpr int inline_rounds = 4;

/// Why a socket error ended a session: a peer that hung up without a close
/// frame (end of stream, reset, a write into a closed connection) closed it.
close_reason failure_reason(const beast::error_code& ec) {
  bool hung_up = ec == asio::error::eof || ec == asio::error::connection_reset
                 || ec == asio::error::broken_pipe;
  return hung_up ? close_reason::client_closed : close_reason::network_error;
}

const frame_ptr& ping_frame() {
  static const frame_ptr f = std::make_shared<const frame>("", ws_opcode::ping);
  return f;
}

frame_ptr close_frame(std::uint16_t code, std::string_view reason) {
  std::string payload;
  if (code != 0) {
    payload.push_back(static_cast<char>(code >> 8));
    payload.push_back(static_cast<char>(code & 0xFF));
    payload.append(reason.substr(0, 123));
  }
  return std::make_shared<const frame>(payload, ws_opcode::close);
}

bool is_close_frame(const frame_ptr& f) {
  return static_cast<unsigned char>(f->wire()[0]) == (0x80 | static_cast<unsigned>(ws_opcode::close));
}

/// Close codes a peer may send (RFC 6455 7.4).
bool valid_close_code(std::uint16_t c) {
  return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) || (c >= 3000 && c <= 4999);
}

template <class T>
void release_if_large(T& buffer) {
  if (buffer.capacity() * sizeof(typename T::value_type) > keep_capacity)
    T{}.swap(buffer);
}

/// A buffer sequence viewing the session's vector: passing the vector itself
/// would copy it into the write operation.
struct buffer_span {
  using value_type = asio::const_buffer;
  using const_iterator = const asio::const_buffer*;
  const asio::const_buffer* first;
  const asio::const_buffer* last;
  const_iterator begin() const { return first; }
  const_iterator end() const { return last; }
};

} // namespace

/// Completes a readiness wait; its operation lives in the session's memory.
struct readable_handler {
  std::shared_ptr<websocket_session> self;
  using allocator_type = wait_allocator<void>;
  allocator_type get_allocator() const noexcept { return allocator_type{&self->wait_memory_}; }
  void operator()(beast::error_code ec) const {
    self->reading_ = false;
    self->on_readable(ec);
  }
};

websocket_session::websocket_session(beast::tcp_stream&& stream, io_worker& worker,
                                     server_context_ptr ctx, identity who, std::string leftover,
                                     bool full)
  : socket_(worker.context().get_executor()), worker_(worker), ctx_(std::move(ctx)), user_(who.user),
    opening_(std::make_unique<opening>(opening{websocket::stream<beast::tcp_stream>{std::move(stream)},
                                               std::move(who)})),
    partial_(std::move(leftover)), full_(full) {
}

websocket_session::~websocket_session() {
  report_dropped(queue_);
  report_dropped(inflight_frames_);
  if (!full_) // a refused one gave its slot back at once
    ctx_->websockets--;
}

void websocket_session::report_dropped(std::vector<outgoing>& dropped) {
  for (auto& o : dropped)
    if (o.written)
      o.written(false);
  dropped.clear();
}

void websocket_session::run(http::request<http::string_body> req) {
  // Beast bounds the opening handshake; the worker's timer handles idle peers.
  auto& ws = opening_->ws;
  beast::get_lowest_layer(ws).expires_never();
  websocket::stream_base::timeout t{};
  t.handshake_timeout = ctx_->cfg.limits.handshake_timeout;
  t.idle_timeout = websocket::stream_base::none();
  t.keep_alive_pings = false;
  ws.set_option(t);
  ws.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
    res.set(http::field::server, "roomcast");
  }));
  ws.async_accept(req, beast::bind_front_handler(&websocket_session::on_accept, shared_from_this()));
}

void websocket_session::on_accept(beast::error_code ec) {
  auto op = std::move(opening_);
  if (ec) {
    spdlog::debug("websocket handshake failed for {}: {}", user_, ec.message());
    std::lock_guard<std::mutex> guard{mutex_};
    closed_ = true;
    return;
  }
  // From here on the session frames the protocol itself (see the header).
  auto tcp = op->ws.next_layer().release_socket();
  auto protocol = tcp.local_endpoint(ec).protocol();
  if (!ec) {
    auto fd = tcp.release(ec);
    if (!ec) {
      socket_.assign(protocol, fd, ec);
      if (ec)
        ::close(fd);
    }
  }
  if (ec) {
    spdlog::debug("cannot take over the socket of {}: {}", user_, ec.message());
    std::lock_guard<std::mutex> guard{mutex_};
    closed_ = true;
    return;
  }
  socket_.non_blocking(true, ec);
  opened_ = std::chrono::steady_clock::now();
  metrics::global().connections++;
  worker_.add(this);
  registered_ = true;
  if (full_)
    start_close(close_reason::node_full); // no connection actor; read only for the close echo
  else
    inbound_ = ctx_->hooks.open(shared_from_this(), std::move(op->who));
  if (!partial_.empty())
    process(nullptr, 0); // a client may send frames right behind its request
  else
    wait_readable();
}

// -- reading ----------------------------------------------------------------------

void websocket_session::wait_readable() {
  if (reading_ || finished_ || read_paused_)
    return;
  reading_ = true;
  socket_.async_wait(socket_type::wait_read, readable_handler{shared_from_this()});
}

void websocket_session::on_readable(beast::error_code ec) {
  if (finished_)
    return;
  if (ec)
    return finish(close_reason::network_error);
  thread_local std::unique_ptr<char[]> chunk{new char[read_chunk]};
  auto n = socket_.read_some(asio::buffer(chunk.get(), read_chunk), ec);
  if (ec == asio::error::would_block || ec == asio::error::try_again)
    return wait_readable();
  if (ec)
    return finish(close_started_ ? reason_ : failure_reason(ec));
  if (discard_input_)
    return wait_readable();
  process(chunk.get(), n);
}

void websocket_session::process(char* fresh, std::size_t size) {
  read_outcome outcome;
  std::size_t used = 0;
  if (partial_.empty()) {
    outcome = consume(fresh, size, used);
    if (outcome != read_outcome::stop && used < size)
      partial_.assign(fresh + used, size - used);
  } else {
    if (size > 0)
      partial_.append(fresh, size);
    outcome = consume(partial_.data(), partial_.size(), used);
    if (outcome != read_outcome::stop) {
      partial_.erase(0, used);
      if (partial_.empty())
        std::string{}.swap(partial_);
    }
  }
  if (outcome == read_outcome::stop) {
    std::string{}.swap(partial_);
    if (!finished_)
      wait_readable(); // for the peer's close frame or its hang-up
    return;
  }
  if (outcome == read_outcome::paused)
    read_paused_ = true;
  else
    wait_readable();
}

websocket_session::read_outcome websocket_session::consume(char* data, std::size_t size,
                                                           std::size_t& used) {
  const std::size_t max_message = ctx_->cfg.limits.max_frame_bytes;
  while (used < size) {
    if (inflight_ >= max_inflight)
      return read_outcome::paused;
    auto* u = reinterpret_cast<unsigned char*>(data + used);
    std::size_t avail = size - used;
    if (avail < 2)
      return read_outcome::more;
    bool fin = (u[0] & 0x80) != 0;
    int opcode = u[0] & 0x0F;
    bool masked = (u[1] & 0x80) != 0;
    std::uint64_t len = u[1] & 0x7F;
    std::size_t header = 2;
    if (len == 126) {
      if (avail < 4)
        return read_outcome::more;
      len = (std::uint64_t{u[2]} << 8) | u[3];
      header = 4;
    } else if (len == 127) {
      if (avail < 10)
        return read_outcome::more;
      len = 0;
      for (int i = 2; i < 10; ++i)
        len = (len << 8) | u[i];
      header = 10;
    }
    bool control = opcode >= op_close;
    bool known = opcode <= op_binary || (opcode >= op_close && opcode <= op_pong);
    // No extensions are negotiated, clients must mask, control frames are
    // short and whole (RFC 6455 5.1-5.5).
    if ((u[0] & 0x70) != 0 || !masked || !known || (control && (!fin || len > 125))
        || (opcode == op_continuation && !in_message_)
        || ((opcode == op_text || opcode == op_binary) && in_message_)) {
      fail(close_reason::protocol_error);
      return read_outcome::stop;
    }
    if (opcode == op_binary) {
      fail(close_reason::binary_frame);
      return read_outcome::stop;
    }
    // Compared without adding: a 64-bit length near 2^64 would wrap the sum
    // (and `total` below) and let the unmasking run past the buffer.
    // message_ never holds more than max_message, so the subtraction cannot.
    if (!control && (len > max_message || len > max_message - message_.size())) {
      fail(close_reason::too_large);
      return read_outcome::stop;
    }
    // Compared without adding too, whatever --max-frame-bytes allows.
    if (avail < header + 4 || avail - header - 4 < len)
      return read_outcome::more;
    std::size_t total = header + 4 + static_cast<std::size_t>(len);
    unsigned char key[4];
    std::memcpy(key, u + header, 4);
    char* payload = data + used + header + 4;
    for (std::size_t i = 0; i < len; ++i)
      payload[i] = static_cast<char>(payload[i] ^ key[i & 3]);
    used += total;
    missed_pongs_ = 0; // any frame shows the peer is alive
    if (on_frame(opcode, fin, {payload, static_cast<std::size_t>(len)}) == read_outcome::stop)
      return read_outcome::stop;
  }
  return read_outcome::more;
}

websocket_session::read_outcome websocket_session::on_frame(int opcode, bool fin,
                                                            std::string_view payload) {
  switch (opcode) {
    case op_ping:
      if (!close_started_)
        queue_control(std::make_shared<const frame>(payload, ws_opcode::pong), true);
      return read_outcome::more;
    case op_pong:
      return read_outcome::more;
    case op_close: {
      std::uint16_t code = 0;
      std::optional<close_reason> broken; // a close frame that breaks RFC 6455 7.1.5-7.1.6
      if (payload.size() == 1)
        broken = close_reason::protocol_error;
      else if (payload.size() >= 2) {
        code = static_cast<std::uint16_t>(
          (static_cast<unsigned char>(payload[0]) << 8) | static_cast<unsigned char>(payload[1]));
        if (!valid_close_code(code))
          broken = close_reason::protocol_error;
        else if (!beast::websocket::detail::check_utf8(payload.data() + 2, payload.size() - 2))
          broken = close_reason::invalid_utf8;
      }
      close_received_ = true;
      if (close_started_) {
        // Our close was answered. Finish once it has left (or now).
        if (close_sent_)
          finish(reason_);
        return read_outcome::stop;
      }
      if (broken) {
        fail(*broken);
        return read_outcome::stop;
      }
      // Echo the peer's close; the TCP close follows once it is written.
      start_close(close_reason::client_closed, code);
      return read_outcome::stop;
    }
    default:
      break;
  }
  if (close_started_)
    return read_outcome::more; // data after our close frame is ignored
  if (!fin || in_message_) {
    message_.append(payload);
    in_message_ = !fin;
    if (!fin)
      return read_outcome::more;
    payload = message_;
  }
  if (!beast::websocket::detail::check_utf8(payload.data(), payload.size())) {
    fail(close_reason::invalid_utf8);
    return read_outcome::stop;
  }
  hand_on(std::string{payload});
  message_.clear();
  release_if_large(message_);
  return close_started_ ? read_outcome::stop : read_outcome::more;
}

void websocket_session::hand_on(std::string text) {
  ++inflight_; // before handing on, or frame_done() could overtake it
  if (inbound_)
    inbound_->on_frame(std::move(text));
}

void websocket_session::frame_done() {
  asio::post(worker_.context(), [self = shared_from_this()] {
    --self->inflight_;
    if (self->read_paused_ && self->inflight_ < max_inflight && !self->finished_) {
      self->read_paused_ = false;
      self->process(nullptr, 0);
    }
  });
}

// -- writing ----------------------------------------------------------------------

bool websocket_session::deliver(frame_ptr frame) {
  return enqueue(std::move(frame), nullptr);
}

void websocket_session::deliver(frame_ptr frame, written_fn written) {
  enqueue(std::move(frame), std::move(written));
}

bool websocket_session::reply(frame_ptr frame) {
  return enqueue(std::move(frame), nullptr, true);
}

bool websocket_session::enqueue(frame_ptr frame, written_fn written, bool answer) {
  bool kick = false;
  bool overflowed_now = false;
  {
    std::unique_lock<std::mutex> guard{mutex_};
    if (closed_ || overflowed_) {
      guard.unlock();
      if (written)
        written(false);
      return false;
    }
    kick = push_limited_locked(outgoing{std::move(frame), std::move(written)}, answer,
                               overflowed_now);
  }
  if (overflowed_now)
    close(close_reason::slow_consumer);
  if (kick)
    worker_.schedule_flush(shared_from_this());
  return true;
}

bool websocket_session::flush_held() {
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (!held_)
      return false;
    held_ = false;
  }
  flush();
  return true;
}

bool websocket_session::push_limited_locked(outgoing o, bool answer, bool& overflowed_now) {
  // The limits bound what waits behind other frames: one frame into an
  // empty queue always goes, so a message of the largest size a client may
  // send (whose envelope adds the room and the sender's name) still reaches
  // an idle member when the byte limit is set to the frame limit.
  bool was_empty = queue_.empty();
  bool kick = push_locked(std::move(o), answer);
  auto& lim = ctx_->cfg.limits;
  if (!overflowed_ && !was_empty
      && (queue_.size() > lim.max_queue_frames || queued_bytes_ > lim.max_queue_bytes)) {
    // Closed now, not when the write in flight ends: a reader that stopped
    // reading never ends it, and the close timer bounds the wait for it.
    overflowed_ = true;
    overflowed_now = true;
  }
  return kick;
}

bool websocket_session::push_locked(outgoing o, bool answer) {
  queued_bytes_ += o.frame->size();
  queue_.push_back(std::move(o));
  // An answer does not wait for the delay tick: it wakes a held session
  // (the tick then finds it no longer held), or leaves right after the
  // write in flight.
  bool kick = !writing_ || (answer && held_);
  writing_ = true;
  if (answer) {
    answer_queued_ = true;
    held_ = false;
  }
  return kick;
}

std::vector<websocket_session::outgoing> websocket_session::take_queue_locked() {
  for (auto& o : queue_)
    queued_bytes_ -= o.frame->size();
  std::vector<outgoing> taken;
  taken.swap(queue_);
  return taken;
}

void websocket_session::queue_control(frame_ptr f, bool limited) {
  bool kick;
  bool overflowed_now = false;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    // A client that pings and never reads fills the queue with pongs like
    // any other slow consumer.
    if (!limited)
      kick = push_locked(outgoing{std::move(f), nullptr}, true); // pings, close
    else if (overflowed_)
      return;
    else
      kick = push_limited_locked(outgoing{std::move(f), nullptr}, true, overflowed_now); // pongs
  }
  if (overflowed_now)
    close(close_reason::slow_consumer);
  if (kick)
    worker_.schedule_flush(shared_from_this());
}

void websocket_session::flush(bool may_wait) {
  // Each round that writes everything at once (the common case) is done;
  // the next one takes whatever was queued meanwhile. A queue that other
  // threads keep filling gets a few rounds here, then waits its turn behind
  // the worker's other sessions.
  for (int round = 0; write_queued(may_wait); ++round) {
    may_wait = true;
    if (round + 1 == inline_rounds) {
      asio::post(worker_.context(), [self = shared_from_this()] { self->flush(true); });
      return;
    }
  }
}

bool websocket_session::write_queued(bool may_wait) {
  if (finished_) {
    std::lock_guard<std::mutex> guard{mutex_};
    writing_ = false;
    return false;
  }
  bool drained = false;
  // A session that writes rarely gives its queue memory back whenever the
  // queue drains (the first few drains after a ping tick: enough for a
  // connection's opening exchange of welcome, joins and acks); one that
  // writes often keeps it until the next tick (releasing on every drain
  // cost ~4% of fan-out throughput).
  bool release = drains_since_tick_ < releasing_drains;
  auto hold = io_worker::hold::none;
  for (;;) {
    bool overflow = false;
    {
      std::lock_guard<std::mutex> guard{mutex_};
      if (overflowed_ && !close_started_)
        overflow = true;
      else if (queue_.empty())
        drained = true;
      // With the write delay, frames for a socket written within the delay
      // wait for the worker's delay tick and leave with whatever comes until
      // then (asked only when something is queued: no clock read otherwise).
      else if (may_wait && !answer_queued_
               && (hold = worker_.must_wait(last_write_ms_)) != io_worker::hold::none)
        held_ = true;
      else {
        inflight_frames_.swap(queue_);
        answer_queued_ = false;
      }
      if (drained)
        writing_ = false;
    }
    if (!overflow)
      break;
    start_close(close_reason::slow_consumer); // drops the queue, queues the close frame
  }
  if (hold != io_worker::hold::none) {
    worker_.defer_flush(shared_from_this(), hold);
    return false;
  }
  if (drained) {
    ++drains_since_tick_;
    if (release) {
      free_queues();
    } else {
      release_if_large(inflight_frames_);
      release_if_large(buffers_);
    }
    if (close_when_drained_ && !close_started_)
      start_close(reason_);
    return false;
  }
  buffers_.clear();
  inflight_bytes_ = 0;
  for (auto& o : inflight_frames_) {
    auto wire = o.frame->wire();
    buffers_.emplace_back(wire.data(), wire.size());
    inflight_bytes_ += o.frame->size();
  }
  if (worker_.delays_writes())
    last_write_ms_ = worker_.now_ms();
  // Sent right here while the socket takes it all: an asynchronous write
  // costs an operation object and a second handler run, and a burst to
  // thousands of idle sessions allocated all their operations at once
  // (~0.5 KiB of heap per connection that stayed, fragmented).
  beast::error_code ec;
  auto first = buffers_.begin();
  while (first != buffers_.end()) {
    // One send takes at most Asio's 64 buffers.
    auto last = first + std::min<std::ptrdiff_t>(64, buffers_.end() - first);
    std::size_t asked = 0;
    for (auto it = first; it != last; ++it)
      asked += it->size();
    auto sent = socket_.send(buffer_span{&*first, &*first + (last - first)}, 0, ec);
    if (ec)
      break; // a send that would block wrote nothing: not counted
    worker_.count_write();
    for (auto left = sent; left > 0;) {
      auto n = std::min(left, first->size());
      *first += n;
      left -= n;
      if (first->size() == 0)
        ++first;
    }
    if (sent < asked)
      break; // the socket is full: the rest waits for it
  }
  if (first == buffers_.end())
    return complete_write({});
  if (ec && ec != asio::error::would_block && ec != asio::error::try_again)
    return complete_write(ec);
  worker_.count_write();
  asio::async_write(socket_, buffer_span{&*first, buffers_.data() + buffers_.size()},
                    beast::bind_front_handler(&websocket_session::on_written, shared_from_this()));
  return false;
}

void websocket_session::on_written(beast::error_code ec, std::size_t) {
  if (complete_write(ec))
    flush(true);
}

bool websocket_session::complete_write(beast::error_code ec) {
  bool sent_close = false;
  for (auto& o : inflight_frames_) {
    if (o.written)
      o.written(!ec);
    sent_close = sent_close || is_close_frame(o.frame);
  }
  inflight_frames_.clear();
  {
    std::lock_guard<std::mutex> guard{mutex_};
    queued_bytes_ -= inflight_bytes_;
  }
  inflight_bytes_ = 0;
  if (ec) {
    if (ec != asio::error::operation_aborted)
      spdlog::debug("write to {} failed: {}", user_, ec.message());
    finish(close_started_ ? reason_ : failure_reason(ec));
    return false;
  }
  if (sent_close) {
    close_sent_ = true;
    if (close_received_) {
      finish(reason_);
      return false;
    }
    // Half-close so the peer sees our close, then wait for its answer.
    beast::error_code ignored;
    socket_.shutdown(socket_type::shutdown_send, ignored);
  }
  return true;
}


// -- closing ------------------------------------------------------------------------

void websocket_session::close(close_reason why) {
  asio::post(worker_.context(), [self = shared_from_this(), why] {
    if (self->close_started_ || self->finished_ || self->close_when_drained_)
      return;
    if (why != close_reason::shutdown)
      return self->start_close(why);
    // Graceful: write what is queued first, then close with 1001.
    self->close_when_drained_ = true;
    self->reason_ = why;
    bool idle;
    {
      std::lock_guard<std::mutex> guard{self->mutex_};
      idle = !self->writing_;
    }
    if (idle)
      self->start_close(why);
  });
}

void websocket_session::fail(close_reason why) {
  // The input cannot be trusted any more: stop parsing it, close, and drop
  // whatever else arrives until the peer hangs up.
  discard_input_ = true;
  start_close(why);
}

void websocket_session::start_close(close_reason why, std::uint16_t code_override) {
  if (close_started_ || finished_)
    return;
  close_started_ = true;
  reason_ = why;
  std::vector<outgoing> dropped;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    closed_ = true;
    if (why != close_reason::shutdown)
      dropped = take_queue_locked();
  }
  report_dropped(dropped);
  if (why == close_reason::client_closed)
    queue_control(close_frame(code_override, ""));
  else
    queue_control(close_frame(close_code(why), to_string(why)));
  arm_close_timer();
}

void websocket_session::arm_close_timer() {
  // Bounds the closing handshake, also when the peer reads nothing at all.
  close_timer_ = std::make_unique<asio::steady_timer>(worker_.context());
  close_timer_->expires_after(ctx_->cfg.limits.handshake_timeout);
  close_timer_->async_wait([self = shared_from_this()](beast::error_code ec) {
    if (!ec)
      self->finish(self->reason_);
  });
}

void websocket_session::finish(close_reason why) {
  if (finished_)
    return;
  finished_ = true;
  if (close_started_)
    why = reason_;
  std::vector<outgoing> dropped;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    closed_ = true;
    dropped = take_queue_locked();
  }
  report_dropped(dropped);
  if (close_timer_)
    close_timer_->cancel();
  beast::error_code ignored;
  socket_.close(ignored);
  if (registered_) {
    worker_.remove(this);
    registered_ = false;
  }
  std::string{}.swap(partial_);
  std::string{}.swap(message_);
  auto& mx = metrics::global();
  mx.connections--;
  mx.count_close(why);
  mx.connection_duration.observe(seconds_since(opened_));
  spdlog::debug("connection of {} closed: {}", user_, to_string(why));
  if (inbound_) {
    inbound_->on_closed(why);
    inbound_.reset();
  }
}

// -- liveness -----------------------------------------------------------------------

void websocket_session::release_idle_queues() {
  drains_since_tick_ = 0;
  free_queues();
}

void websocket_session::free_queues() {
  std::vector<outgoing> spare;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    if (writing_)
      return; // a write may be using the vectors below
    spare.swap(queue_);
  }
  decltype(inflight_frames_){}.swap(inflight_frames_);
  decltype(buffers_){}.swap(buffers_);
}

void websocket_session::on_ping_tick() {
  // Never ends the session from here: the worker is walking its list.
  if (close_started_ || finished_)
    return;
  release_idle_queues();
  if (missed_pongs_ >= ctx_->cfg.limits.max_missed_pongs)
    return start_close(close_reason::ping_timeout);
  ++missed_pongs_;
  if (!send_now(ping_frame()))
    queue_control(ping_frame());
}

bool websocket_session::send_now(const frame_ptr& f) {
  // Held across the send: a frame queued meanwhile must not start a write
  // of its own before this one has left (or been continued below).
  std::lock_guard<std::mutex> guard{mutex_};
  if (writing_)
    return false;
  auto wire = f->wire();
  beast::error_code ec;
  auto n = socket_.send(asio::buffer(wire.data(), wire.size()), 0, ec);
  if (ec || n == 0)
    return false; // would block, or a failure the queued write will report
  worker_.count_write();
  if (n < wire.size()) {
    // Rare for a few bytes, but the rest must leave before any other frame.
    writing_ = true;
    asio::async_write(socket_, asio::buffer(wire.data() + n, wire.size() - n),
                      beast::bind_front_handler(&websocket_session::on_written, shared_from_this()));
  }
  return true;
}

} // namespace rc::net
