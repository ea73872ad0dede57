#include "actors/router.hpp"

#include <caf/response_promise.hpp>

#include <map>
#include <memory>
#include <optional>

#include "actors/hardening.hpp"
#include "actors/locator.hpp"

namespace rc {

namespace {

using kind = metrics::cluster_kind;
/// The locator answers at once from its own state; a CAF request timeout
/// would sit in the clock for its whole duration, once per message.
const auto locate_timeout = caf::infinite;

/// Requests the router has passed to another node's directory, by that
/// directory: when its node fails, the answer will never come, and they are
/// answered `unavailable` at once (the AMQP bridge then requeues at once,
/// the HTTP API answers 503) instead of after a timeout.
struct remote_routes {
  std::map<caf::actor_addr, std::map<std::uint64_t, caf::response_promise>> by_dir;
  std::uint64_t next = 0;

  /// Removes and returns the promise of `key`, if still pending.
  std::optional<caf::response_promise> take(const caf::actor_addr& dir, std::uint64_t key) {
    auto it = by_dir.find(dir);
    if (it == by_dir.end())
      return std::nullopt;
    auto p = it->second.find(key);
    if (p == it->second.end())
      return std::nullopt;
    auto rp = std::move(p->second);
    it->second.erase(p);
    return rp;
  }
};

/// Finds the owner's directory of `name` and passes the publish to it.
template <class Target>
caf::response_promise route_named(caf::event_based_actor* self, const caf::actor& locator,
                                  const std::shared_ptr<remote_routes>& routes, Target target,
                                  const std::string& name, envelope env) {
  auto rp = self->make_response_promise();
  self->request(locator, locate_timeout, locate_atom::value, target, name)
    .then(
      [self, rp, name, env, routes](caf::actor dir) mutable {
        if (dir.node() == self->node()) {
          rp.delegate(dir, caf::publish_atom::value, name, std::move(env));
          return;
        }
        count_if_remote(self, dir, kind::request);
        auto addr = dir.address();
        // One monitor per directory for as long as it lives (an entry,
        // even empty, means monitored): its DOWN comes when its node fails.
        auto [entry, fresh] = routes->by_dir.try_emplace(addr);
        if (fresh)
          self->monitor(dir);
        auto key = ++routes->next;
        entry->second.emplace(key, rp);
        self->request(dir, caf::infinite, caf::publish_atom::value, name, std::move(env))
          .then(
            [routes, addr, key](std::uint64_t n) {
              if (auto p = routes->take(addr, key))
                p->deliver(n);
            },
            [routes, addr, key](caf::error& err) {
              if (auto p = routes->take(addr, key))
                p->deliver(std::move(err));
            });
      },
      [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
  return rp;
}

} // namespace

caf::behavior router(caf::event_based_actor* self, caf::actor locator) {
  harden(self, "router");
  auto routes = std::make_shared<remote_routes>();
  self->set_down_handler([routes](caf::down_msg& dm) {
    auto it = routes->by_dir.find(dm.source);
    if (it == routes->by_dir.end())
      return;
    auto pending = std::move(it->second);
    routes->by_dir.erase(it);
    for (auto& [_, rp] : pending)
      rp.deliver(make_error(error_code::unavailable, "the target's node failed"));
  });
  return {
    [self, locator, routes](route_atom, room_atom, const std::string& name, envelope& env) {
      return route_named(self, locator, routes, room_atom::value, name, std::move(env));
    },
    [self, locator, routes](route_atom, user_atom, const std::string& name, envelope& env) {
      return route_named(self, locator, routes, user_atom::value, name, std::move(env));
    },
    [self, locator](route_atom, all_atom, envelope& env) {
      auto rp = self->make_response_promise();
      self->request(locator, locate_timeout, locate_atom::value, all_atom::value)
        .then(
          [self, rp, env](std::vector<caf::actor>& everyone) mutable {
            // One message per node; each node's broadcaster fans out locally.
            auto msg = caf::make_message(caf::publish_atom::value, std::move(env));
            for (auto& b : everyone) {
              count_if_remote(self, b, kind::broadcast);
              self->send(b, msg);
            }
            rp.deliver(static_cast<std::uint64_t>(everyone.size()));
          },
          [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
  };
}

} // namespace rc
