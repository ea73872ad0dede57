#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>

#include <memory>

#include "net/io_pool.hpp"
#include "net/server_context.hpp"

namespace rc::net {

/// Accepts TCP connections on the one HTTP port and starts an http_session
/// for each on the next I/O worker, which keeps the connection for life.
class listener : public std::enable_shared_from_this<listener> {
public:
  /// Binds and listens; throws boost::system::system_error when it cannot.
  listener(io_pool& pool, boost::asio::ip::tcp::endpoint endpoint,
           server_context_ptr ctx);

  void run();
  /// Stops accepting; open connections are not touched.
  void stop();
  std::uint16_t port() const;

private:
  void do_accept();
  void on_accept(io_worker& worker, boost::beast::error_code ec,
                 boost::asio::ip::tcp::socket socket);

  io_pool& pool_;
  boost::asio::ip::tcp::acceptor acceptor_;
  server_context_ptr ctx_;
};

} // namespace rc::net
