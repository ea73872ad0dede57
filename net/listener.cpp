#include "net/listener.hpp"

#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <spdlog/spdlog.h>

#include "net/http_session.hpp"

namespace rc::net {

namespace {

/// How long accepting pauses after a failed accept.
constexpr auto accept_pause = std::chrono::milliseconds{100};
/// At most one log line per this interval while accepts keep failing.
constexpr auto log_every = std::chrono::seconds{5};

} // namespace

listener::listener(io_pool& pool, boost::asio::ip::tcp::endpoint endpoint,
                   server_context_ptr ctx)
  : pool_(pool), acceptor_(pool.first().context()), pause_(pool.first().context()),
    ctx_(std::move(ctx)) {
  acceptor_.open(endpoint.protocol());
  acceptor_.set_option(boost::asio::socket_base::reuse_address(true));
  acceptor_.bind(endpoint);
  acceptor_.listen(boost::asio::socket_base::max_listen_connections);
}

void listener::run() {
  do_accept();
}

void listener::stop() {
  boost::asio::post(acceptor_.get_executor(), [self = shared_from_this()] {
    boost::beast::error_code ignored;
    self->acceptor_.close(ignored);
    self->pause_.cancel();
  });
}

std::uint16_t listener::port() const {
  return acceptor_.local_endpoint().port();
}

void listener::do_accept() {
  auto& worker = pool_.next();
  acceptor_.async_accept(worker.context(), [self = shared_from_this(), &worker](
                                             boost::beast::error_code ec,
                                             boost::asio::ip::tcp::socket socket) {
    self->on_accept(worker, ec, std::move(socket));
  });
}

void listener::on_accept(io_worker& worker, boost::beast::error_code ec,
                         boost::asio::ip::tcp::socket socket) {
  if (ec == boost::asio::error::operation_aborted)
    return;
  if (ec) {
    // Typically EMFILE. Accepting again at once would fail again at once
    // (a busy loop); going deaf would be worse. So: pause, then retry.
    ++failures_;
    ++unlogged_failures_;
    auto now = std::chrono::steady_clock::now();
    if (now - last_log_ >= log_every) {
      spdlog::warn("accept failed ({} time{} since the last report): {}; pausing {} ms between "
                   "tries", unlogged_failures_, unlogged_failures_ == 1 ? "" : "s", ec.message(),
                   accept_pause.count());
      unlogged_failures_ = 0;
      last_log_ = now;
    }
    pause_.expires_after(accept_pause);
    pause_.async_wait([self = shared_from_this()](boost::beast::error_code wait_ec) {
      if (!wait_ec && self->acceptor_.is_open())
        self->do_accept();
    });
    return;
  }
  if (failures_ > 0) {
    spdlog::info("accepting again after {} failed accept{}", failures_, failures_ == 1 ? "" : "s");
    failures_ = unlogged_failures_ = 0;
    last_log_ = {};
  }
  socket.set_option(boost::asio::ip::tcp::no_delay(true), ec);
  std::make_shared<http_session>(std::move(socket), worker, ctx_)->run();
  do_accept();
}

std::string bind_failure(const std::string& host, std::uint16_t port) {
  namespace ip = boost::asio::ip;
  boost::asio::io_context io;
  boost::system::error_code ec;
  auto endpoints = ip::tcp::resolver{io}.resolve(host, std::to_string(port),
                                                 ip::tcp::resolver::passive, ec);
  if (ec)
    return ec.message();
  if (endpoints.empty())
    return "no address";
  // As the listeners bind: SO_REUSEADDR, so only a socket listening there
  // (not one in TIME_WAIT) makes it fail.
  auto endpoint = endpoints.begin()->endpoint();
  ip::tcp::acceptor probe{io};
  probe.open(endpoint.protocol(), ec);
  if (!ec)
    probe.set_option(boost::asio::socket_base::reuse_address(true), ec);
  if (!ec)
    probe.bind(endpoint, ec);
  return ec ? ec.message() : std::string{};
}

} // namespace rc::net
