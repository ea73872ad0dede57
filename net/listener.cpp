#include "net/listener.hpp"

#include <boost/asio/post.hpp>
#include <boost/beast/core.hpp>
#include <spdlog/spdlog.h>

#include "net/http_session.hpp"

namespace rc::net {

listener::listener(io_pool& pool, boost::asio::ip::tcp::endpoint endpoint,
                   server_context_ptr ctx)
  : pool_(pool), acceptor_(pool.first().context()), ctx_(std::move(ctx)) {
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
    // Typically EMFILE: log, and keep accepting rather than going deaf.
    spdlog::warn("accept failed: {}", ec.message());
  } else {
    socket.set_option(boost::asio::ip::tcp::no_delay(true), ec);
    std::make_shared<http_session>(std::move(socket), worker, ctx_)->run();
  }
  do_accept();
}

} // namespace rc::net
