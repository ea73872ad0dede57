#pragma once

#include <memory>

#include "net/io_pool.hpp"
#include "net/server_context.hpp"

namespace rc::net {

class listener;

/// The node's HTTP/WebSocket front: a pool of I/O workers (one thread and
/// io_context each) and one listener. Start and stop are symmetric: `start` binds and runs the
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
  std::unique_ptr<io_pool> pool_;
  std::shared_ptr<listener> listener_;
};

} // namespace rc::net
