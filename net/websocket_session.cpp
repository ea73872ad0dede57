#include "net/websocket_session.hpp"

#include <boost/asio/post.hpp>
#include <spdlog/spdlog.h>

#include "common/metrics.hpp"

namespace rc::net {

websocket_session::websocket_session(beast::tcp_stream&& stream, server_context_ptr ctx,
                                     identity who)
  : ws_(std::move(stream)), ctx_(std::move(ctx)), who_(std::move(who)),
    ping_timer_(ws_.get_executor()) {
}

websocket_session::~websocket_session() {
  report_dropped(queue_);
  ctx_->websockets--;
}

void websocket_session::report_dropped(std::deque<outgoing>& dropped) {
  for (auto& o : dropped)
    if (o.written)
      o.written(false);
  dropped.clear();
}

void websocket_session::run(http::request<http::string_body> req) {
  auto& lim = ctx_->cfg.limits;
  // Beast's own timeouts bound the opening and the closing handshakes; the
  // ping timer below handles idle peers.
  beast::get_lowest_layer(ws_).expires_never();
  websocket::stream_base::timeout t{};
  t.handshake_timeout = lim.handshake_timeout;
  t.idle_timeout = websocket::stream_base::none();
  t.keep_alive_pings = false;
  ws_.set_option(t);
  ws_.read_message_max(lim.max_frame_bytes);
  ws_.auto_fragment(false);
  ws_.set_option(websocket::stream_base::decorator([](websocket::response_type& res) {
    res.set(http::field::server, "roomcast");
  }));
  ws_.control_callback([this](websocket::frame_type kind, beast::string_view) {
    if (kind == websocket::frame_type::pong)
      missed_pongs_ = 0;
  });
  ws_.async_accept(req, beast::bind_front_handler(&websocket_session::on_accept,
                                                  shared_from_this()));
}

void websocket_session::on_accept(beast::error_code ec) {
  if (ec) {
    spdlog::debug("websocket handshake failed for {}: {}", who_.user, ec.message());
    std::lock_guard<std::mutex> guard{mutex_};
    closed_ = true;
    return;
  }
  opened_ = std::chrono::steady_clock::now();
  metrics::global().connections++;
  inbound_ = ctx_->hooks.open(shared_from_this(), who_);
  arm_ping_timer();
  do_read();
}

// -- reading ----------------------------------------------------------------------

void websocket_session::do_read() {
  ws_.async_read(buffer_,
                 beast::bind_front_handler(&websocket_session::on_read, shared_from_this()));
}

void websocket_session::on_read(beast::error_code ec, std::size_t) {
  if (ec) {
    if (ec == websocket::error::closed)
      return finish(close_reason::client_closed);
    if (ec == websocket::error::message_too_big)
      return finish(close_reason::too_large); // Beast has sent 1009
    if (ec == websocket::error::bad_frame_payload)
      return finish(close_reason::invalid_utf8); // Beast has sent 1007
    return finish(close_reason::network_error);
  }
  missed_pongs_ = 0;
  if (!ws_.got_text()) {
    buffer_.consume(buffer_.size());
    start_close(close_reason::binary_frame);
    return;
  }
  auto text = beast::buffers_to_string(buffer_.data());
  buffer_.consume(buffer_.size());
  // Release a large buffer after a large message instead of keeping it per connection.
  if (buffer_.capacity() > 16 * 1024)
    buffer_.shrink_to_fit();
  ++inflight_; // before handing on, or frame_done() could overtake it
  if (inbound_)
    inbound_->on_frame(std::move(text));
  if (close_started_)
    return;
  if (inflight_ >= max_inflight)
    read_paused_ = true;
  else
    do_read();
}

void websocket_session::frame_done() {
  boost::asio::post(ws_.get_executor(), [self = shared_from_this()] {
    --self->inflight_;
    if (self->read_paused_ && self->inflight_ < max_inflight && !self->close_started_) {
      self->read_paused_ = false;
      self->do_read();
    }
  });
}

// -- writing ----------------------------------------------------------------------

void websocket_session::deliver(frame_ptr frame) {
  deliver(std::move(frame), nullptr);
}

void websocket_session::deliver(frame_ptr frame, written_fn written) {
  bool kick = false;
  {
    std::unique_lock<std::mutex> guard{mutex_};
    if (closed_ || overflowed_) {
      guard.unlock();
      if (written)
        written(false);
      return;
    }
    queued_bytes_ += frame->size();
    queue_.push_back(outgoing{std::move(frame), std::move(written)});
    auto& lim = ctx_->cfg.limits;
    if (queue_.size() > lim.max_queue_frames || queued_bytes_ > lim.max_queue_bytes)
      overflowed_ = true;
    kick = !writing_;
    writing_ = true;
  }
  if (kick)
    boost::asio::post(ws_.get_executor(), [self = shared_from_this()] { self->do_write(); });
}

void websocket_session::do_write() {
  frame_ptr next;
  bool overflow = false;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    overflow = overflowed_;
    if (!overflow && !queue_.empty() && !close_started_)
      next = queue_.front().frame;
    else
      writing_ = false;
  }
  if (overflow) {
    start_close(close_reason::slow_consumer);
    return;
  }
  if (!next) {
    if (close_when_drained_ && !close_started_)
      start_close(reason_);
    return;
  }
  ws_.text(true);
  ws_.async_write(boost::asio::buffer(*next),
                  beast::bind_front_handler(&websocket_session::on_write, shared_from_this()));
}

void websocket_session::on_write(beast::error_code ec, std::size_t) {
  written_fn written;
  {
    // The buffer just written stays alive until here (front of the queue).
    std::lock_guard<std::mutex> guard{mutex_};
    if (!queue_.empty()) {
      queued_bytes_ -= queue_.front().frame->size();
      written = std::move(queue_.front().written);
      queue_.pop_front();
    }
    if (ec)
      writing_ = false;
  }
  if (written)
    written(!ec);
  if (ec) {
    if (ec != boost::asio::error::operation_aborted && ec != websocket::error::closed)
      spdlog::debug("write to {} failed: {}", who_.user, ec.message());
    return; // the pending read reports the end of the connection
  }
  do_write();
}

// -- closing ------------------------------------------------------------------------

void websocket_session::close(close_reason why) {
  boost::asio::post(ws_.get_executor(), [self = shared_from_this(), why] {
    if (self->close_started_ || self->finished_ || self->close_when_drained_)
      return;
    if (why == close_reason::shutdown) {
      // Graceful: flush what is queued first, then close with 1001.
      self->close_when_drained_ = true;
      self->reason_ = why;
      self->reason_set_ = true;
      bool idle;
      {
        std::lock_guard<std::mutex> guard{self->mutex_};
        idle = !self->writing_;
      }
      if (idle)
        self->start_close(why);
      return;
    }
    self->start_close(why);
  });
}

void websocket_session::start_close(close_reason why) {
  if (close_started_ || finished_)
    return;
  close_started_ = true;
  if (!reason_set_ || why != close_reason::shutdown) {
    reason_ = why;
    reason_set_ = true;
  }
  std::deque<outgoing> dropped;
  {
    // Drop what was not written yet; keep the in-flight front alive.
    std::lock_guard<std::mutex> guard{mutex_};
    closed_ = true;
    while (queue_.size() > (writing_ ? 1u : 0u)) {
      queued_bytes_ -= queue_.back().frame->size();
      dropped.push_front(std::move(queue_.back()));
      queue_.pop_back();
    }
  }
  report_dropped(dropped);
  ping_timer_.cancel();
  websocket::close_reason cr{static_cast<websocket::close_code>(close_code(why)), std::string{to_string(why)}};
  ws_.async_close(cr, [self = shared_from_this()](beast::error_code) {
    // The read loop (or finish below) ends the session.
    beast::error_code ignored;
    beast::get_lowest_layer(self->ws_).socket().shutdown(
      boost::asio::ip::tcp::socket::shutdown_both, ignored);
    self->finish(self->reason_);
  });
}

void websocket_session::finish(close_reason why) {
  if (finished_)
    return;
  finished_ = true;
  if (reason_set_)
    why = reason_;
  {
    std::lock_guard<std::mutex> guard{mutex_};
    closed_ = true;
  }
  ping_timer_.cancel();
  beast::error_code ignored;
  beast::get_lowest_layer(ws_).socket().close(ignored);
  auto& mx = metrics::global();
  mx.connections--;
  mx.count_close(why);
  mx.connection_duration.observe(seconds_since(opened_));
  spdlog::debug("connection of {} closed: {}", who_.user, to_string(why));
  if (inbound_) {
    inbound_->on_closed(why);
    inbound_.reset();
  }
}

// -- liveness -----------------------------------------------------------------------

void websocket_session::arm_ping_timer() {
  ping_timer_.expires_after(ctx_->cfg.limits.ping_interval);
  ping_timer_.async_wait(
    beast::bind_front_handler(&websocket_session::on_ping_timer, shared_from_this()));
}

void websocket_session::on_ping_timer(beast::error_code ec) {
  if (ec || close_started_ || finished_)
    return;
  if (missed_pongs_ >= ctx_->cfg.limits.max_missed_pongs) {
    start_close(close_reason::ping_timeout);
    return;
  }
  ++missed_pongs_;
  if (!ping_in_flight_) {
    ping_in_flight_ = true;
    ws_.async_ping({}, [self = shared_from_this()](beast::error_code) {
      self->ping_in_flight_ = false;
    });
  }
  arm_ping_timer();
}

} // namespace rc::net
