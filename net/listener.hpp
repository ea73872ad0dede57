#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/error.hpp>

#include <memory>
#include <string>

#include "net/io_pool.hpp"
#include "net/server_context.hpp"

namespace rc::net {

/// Accepts TCP connections on the one HTTP port and starts an http_session
/// for each on the next I/O worker, which keeps the connection for life.
/// A failed accept (typically EMFILE: out of file descriptors) pauses
/// accepting for a moment, as nginx does: the connection waits in the
/// backlog, and the node neither spins nor floods its log.
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
  boost::asio::steady_timer pause_;
  server_context_ptr ctx_;
  /// Failed accepts not logged yet (one line per log_every), and in all
  /// since the last success.
  std::uint64_t unlogged_failures_ = 0;
  std::uint64_t failures_ = 0;
  std::chrono::steady_clock::time_point last_log_{};
};

/// Why `host` (an address or a name) and `port` cannot be bound for
/// listening, in the system's words ("Address already in use"), or "" if
/// they can: the reason for a listener that reports only that it failed
/// (CAF's publish).
std::string bind_failure(const std::string& host, std::uint16_t port);

} // namespace rc::net
