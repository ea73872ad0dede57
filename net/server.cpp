#include "net/server.hpp"

#include <boost/asio/ip/address.hpp>
#include <stdexcept>

#include "common/host_port.hpp"
#include "net/listener.hpp"

namespace rc::net {

server::server(settings cfg, server_hooks hooks)
  : ctx_(std::make_shared<server_context>(std::move(cfg), std::move(hooks))) {
}

server::~server() {
  stop();
}

std::uint16_t server::start() {
  auto& cfg = ctx_->cfg;
  boost::system::error_code ec;
  auto address = boost::asio::ip::make_address(cfg.bind, ec);
  if (ec)
    throw std::runtime_error("invalid bind address '" + cfg.bind + "'");
  try {
    auto n = cfg.effective_threads();
    pool_ = std::make_unique<io_pool>(n, cfg.limits.ping_interval, cfg.write_delay,
                                     std::chrono::microseconds{cfg.write_delay_min_lag_us});
    listener_ = std::make_shared<listener>(*pool_, boost::asio::ip::tcp::endpoint{address, cfg.http_port},
                                           ctx_);
  } catch (const boost::system::system_error& e) {
    throw std::runtime_error("cannot listen on " + join_host_port(cfg.bind, cfg.http_port) + ": "
                             + e.code().message());
  }
  listener_->run();
  pool_->start();
  return listener_->port();
}

void server::stop_accepting() {
  ctx_->draining = true;
  if (listener_)
    listener_->stop();
}

void server::stop() {
  if (pool_)
    pool_->stop();
}

} // namespace rc::net
