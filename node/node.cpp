#include "node/node.hpp"

#include <caf/atom.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <spdlog/spdlog.h>

#include <thread>

#include "actors/connection.hpp"
#include "net/server.hpp"
#include "node/publish_api.hpp"

namespace rc {

namespace {

/// Forwards one session's events to its connection actor.
class actor_inbound : public inbound_handler {
public:
  explicit actor_inbound(caf::actor conn) : conn_(std::move(conn)) {}
  void on_frame(std::string text) override {
    caf::anon_send(conn_, ws_frame_atom::value, std::move(text));
  }
  void on_closed(close_reason) override { caf::anon_send(conn_, ws_closed_atom::value); }

private:
  caf::actor conn_;
};

std::unique_ptr<caf::actor_system_config> make_caf_config(const settings& cfg) {
  auto caf_cfg = std::make_unique<caf::actor_system_config>();
  auto threads = cfg.actor_threads != 0 ? cfg.actor_threads
                                        : std::max(1u, std::thread::hardware_concurrency());
  caf_cfg->set("scheduler.max-threads", static_cast<size_t>(threads));
  // Measured in the feasibility study: work-sharing fans out ~2x faster than
  // the default work-stealing on two cores.
  caf_cfg->set("scheduler.policy", caf::atom("sharing"));
  add_wire_types(*caf_cfg);
  return caf_cfg;
}

} // namespace

node::node(settings cfg)
  : cfg_(std::move(cfg)), node_name_(cfg_.effective_node_name()),
    caf_cfg_(make_caf_config(cfg_)),
    system_(std::make_unique<caf::actor_system>(*caf_cfg_)) {
}

node::~node() {
  shutdown();
}

std::uint16_t node::start() {
  core_ = spawn_core_actors(*system_, cfg_);
  auto ctx = core_.context_for(node_name_, cfg_);
  net::server_hooks hooks;
  hooks.open = [this, ctx](client_link_ptr link, const identity& who) {
    auto conn = system_->spawn(connection, std::move(link), who, ctx);
    return std::make_shared<actor_inbound>(std::move(conn));
  };
  hooks.publish = [this](std::string body, std::function<void(unsigned, std::string)> reply) {
    handle_publish(*system_, core_.router, body, std::move(reply));
  };
  hooks.not_ready_reason = [this]() -> std::string {
    return started_ ? "" : "starting";
  };
  server_ = std::make_unique<net::server>(cfg_, std::move(hooks));
  auto port = server_->start();
  started_ = true;
  return port;
}

void node::shutdown() {
  if (stopped_)
    return;
  stopped_ = true;
  if (server_) {
    server_->stop_accepting();
    core_.close_connections();
    auto deadline = std::chrono::steady_clock::now() + cfg_.drain_timeout;
    while (server_->websockets() > 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    if (auto left = server_->websockets(); left > 0)
      spdlog::warn("drain timeout: closing {} connections without waiting", left);
    server_->stop();
  }
  core_.stop();
}

} // namespace rc
