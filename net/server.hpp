#pragma once

#include <boost/asio/io_context.hpp>

#include <memory>
#include <thread>
#include <vector>

#include "net/server_context.hpp"

namespace rc::net {

class listener;

/// The node's HTTP/WebSocket front: an io_context with its own threads and
/// one listener. Start and stop are symmetric: `start` binds and runs the
/// threads, `stop_accepting` closes the port (and marks the node draining),
/// `stop` ends all I/O and joins the threads.
class server {
public:
  server(settings cfg, server_hooks hooks);
  ~server();

  /// Binds `bind:http-port` and starts the I/O threads; returns the bound
  /// port (useful with port 0). Throws std::runtime_error when it cannot bind.
  std::uint16_t start();
  void stop_accepting();
  void stop();

  /// WebSocket connections reserved or open.
  std::uint64_t websockets() const { return ctx_->websockets; }

private:
  server_context_ptr ctx_;
  boost::asio::io_context ioc_;
  std::shared_ptr<listener> listener_;
  std::vector<std::thread> threads_;
};

} // namespace rc::net
