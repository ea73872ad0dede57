#include "node/node.hpp"

#include <csignal>
#include <unistd.h>

#include <caf/atom.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>
#include <nlohmann/json.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <spdlog/spdlog.h>

#include <thread>

#include "actors/connection.hpp"
#include "cluster/amqp_bridge.hpp"
#include "cluster/membership.hpp"
#include "common/host_port.hpp"
#include "common/metrics.hpp"
#include "net/listener.hpp"
#include "net/server.hpp"
#include "node/hand_off_policy.hpp"
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
  if (cfg.cluster_port != 0) {
    caf_cfg->load<caf::io::middleman>();
    add_cluster_types(*caf_cfg);
    // Both on every node (a timeout without peers' heartbeats would cut
    // healthy nodes): a frozen node is dropped after failure-timeout.
    caf_cfg->set("middleman.heartbeat-interval", caf::timespan{cfg.failure_timeout / 4});
    caf_cfg->set("middleman.connection-timeout", caf::timespan{cfg.failure_timeout});
  }
  auto threads = cfg.effective_actor_threads();
  caf_cfg->set("scheduler.max-threads", static_cast<size_t>(threads));
  // Work sharing (measured in the feasibility study: ~2x the fan-out of the
  // default work stealing on two cores) without waking a worker per hop.
  use_hand_off_scheduler(*caf_cfg);
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
  await_actors();
}

static std::vector<host_port> parse_seeds(const std::vector<std::string>& seeds) {
  std::vector<host_port> out;
  for (auto& s : seeds) {
    auto hp = split_host_port(s); // checked by settings::validate
    out.emplace_back(hp->host, static_cast<std::uint16_t>(std::stoul(hp->port)));
  }
  return out;
}

std::uint16_t node::start() {
  joined_ = std::make_shared<std::atomic<bool>>(cfg_.cluster_port == 0);
  locator_factory make_locator;
  if (cfg_.cluster_port != 0) {
    make_locator = [this](const core_actors& core) {
      membership_config mc;
      mc.self = node_info{node_name_,       make_incarnation(), cfg_.effective_cluster_advertise(),
                          cfg_.cluster_port, nullptr,           core.rooms,
                          core.users,        core.everyone};
      mc.seeds = parse_seeds(cfg_.seeds);
      mc.failure_timeout = cfg_.failure_timeout;
      mc.joined = joined_;
      mc.fatal = [code = exit_code_](const std::string& why) {
        spdlog::critical("{}", why);
        if (code->exchange(1) == 0)
          ::kill(::getpid(), SIGTERM);
      };
      return system_->spawn(membership, std::move(mc));
    };
  }
  core_services services;
  if (!cfg_.amqp.url.empty()) {
    amqp_ = std::make_unique<amqp_bridge>(*system_, cfg_);
    services = amqp_->services();
  }
  core_ = spawn_core_actors(*system_, cfg_, make_locator, kinds_, services);
  if (amqp_)
    amqp_->start_consuming(core_.router);
  if (cfg_.cluster_port != 0) {
    auto& bind = cfg_.effective_cluster_bind();
    auto port = system_->middleman().publish(core_.locator, cfg_.cluster_port, bind.c_str(), true);
    if (!port) {
      // CAF says only that it failed ("tcp socket creation failed"); a bind
      // of our own says why.
      auto why = net::bind_failure(bind, cfg_.cluster_port);
      throw std::runtime_error("cannot listen on cluster port "
                               + join_host_port(bind, cfg_.cluster_port) + ": "
                               + (why.empty() ? system_->render(port.error()) : why));
    }
    std::string seeds;
    for (auto& seed : cfg_.seeds)
      seeds += (seeds.empty() ? "" : ",") + seed;
    spdlog::info("cluster port {} (advertised as {}), seeds: {}",
                 join_host_port(bind, *port), cfg_.effective_cluster_advertise(),
                 seeds.empty() ? "none" : seeds);
  }
  auto ctx = core_.context_for(node_name_, cfg_);
  net::server_hooks hooks;
  hooks.open = [this, ctx](client_link_ptr link, identity who) {
    auto conn = system_->spawn(connection, std::move(link), std::move(who), ctx);
    return std::make_shared<actor_inbound>(std::move(conn));
  };
  hooks.publish = [this](std::string body, std::function<void(unsigned, std::string)> reply) {
    handle_publish(*system_, core_.router, body, std::move(reply));
  };
  hooks.not_ready_reason = [this]() -> std::string {
    if (!started_)
      return "starting";
    if (!joined_->load())
      return "joining the cluster";
    return amqp_ ? amqp_->not_ready_reason() : "";
  };
  hooks.cluster_info = [this](std::function<void(unsigned, std::string)> reply) {
    if (cfg_.cluster_port == 0) {
      auto& mx = metrics::global();
      nlohmann::json doc{{"node", node_name_},
                         {"members",
                          {{{"name", node_name_},
                            {"state", "up"},
                            {"connections", mx.connections.load()},
                            {"rooms", mx.rooms.load()},
                            {"users", mx.users.load()}}}}};
      return reply(200, doc.dump());
    }
    auto locator = core_.locator;
    system_->spawn([locator, reply](caf::event_based_actor* self) {
      self->request(locator, std::chrono::seconds{3}, caf::get_atom::value)
        .then([reply](const std::string& json) { reply(200, json); },
              [reply](caf::error&) {
                reply(503, R"({"error":{"code":"unavailable","message":"membership did not answer"}})");
              });
    });
  };
  hooks.node_metrics = [this] {
    // Every actor of the node counts, so one that outlives its purpose shows
    // here (connections, users and rooms have gauges of their own).
    return metrics::gauge("roomcast_actors",
                          "CAF actors alive on this node: one per connection, user and room, "
                          "a relay per room with members here, and the node's own.",
                          static_cast<long long>(system_->registry().running()));
  };
  server_ = std::make_unique<net::server>(cfg_, std::move(hooks));
  auto port = server_->start();
  started_ = true;
  return port;
}

void node::leave_cluster() {
  // Tell the others, then wait (bounded) until this node's rooms and users
  // live elsewhere and their old actors are done (they forward what was on
  // its way to them, and finish writes they started), so nothing published
  // meanwhile is lost.
  if (metrics::global().cluster_members.load() <= 1)
    return; // nobody to hand over to
  caf::anon_send(core_.locator, caf::leave_atom::value);
  auto deadline = std::chrono::steady_clock::now() + std::min<duration>(cfg_.drain_timeout / 2, duration{5000});
  caf::scoped_actor self{*system_};
  std::uint64_t here = 0;
  std::uint64_t moved = 0;
  auto ask = [&](const caf::actor& dir, auto... what) {
    std::uint64_t n = 0;
    self->request(dir, std::chrono::milliseconds{500}, caf::get_atom::value, what...)
      .receive([&](std::uint64_t x) { n = x; }, [&](caf::error&) {});
    return n;
  };
  while (std::chrono::steady_clock::now() < deadline && !hurry_) {
    here = ask(core_.rooms) + ask(core_.users);
    moved = ask(core_.rooms, moved_atom::value) + ask(core_.users, moved_atom::value);
    if (here + moved == 0) {
      spdlog::info("cluster: rooms and users handed over");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{50});
  }
  if (here > 0)
    spdlog::warn("cluster: leaving before every room and user was handed over ({} left)", here);
  else
    spdlog::warn("cluster: leaving while {} moved rooms and users still finish (frames on their "
                 "way to readers that are behind)",
                 moved);
}

void node::shutdown() {
  if (stopped_)
    return;
  stopped_ = true;
  if (amqp_)
    amqp_->stop_consuming();
  if (server_) {
    server_->stop_accepting();
    if (cfg_.cluster_port != 0)
      leave_cluster();
    core_.close_connections();
    auto deadline = std::chrono::steady_clock::now() + cfg_.drain_timeout;
    while (server_->websockets() > 0 && std::chrono::steady_clock::now() < deadline && !hurry_)
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    if (auto left = server_->websockets(); left > 0)
      spdlog::warn("{}: closing {} connections without waiting",
                   hurry_ ? "asked to hurry" : "drain timeout", left);
    server_->stop();
  }
  core_.stop();
  if (amqp_)
    amqp_->stop();
}

void node::await_actors() {
  shutdown();
  if (actors_ended_)
    return;
  actors_ended_ = true;
  // The order the members' destructors had: handles first, the server
  // (its sessions) before the actors that write to them are awaited.
  kinds_.reset();
  core_ = core_actors{};
  amqp_.reset();
  server_.reset();
  system_->await_all_actors_done();
}

} // namespace rc
