#include "actors/router.hpp"

#include <caf/response_promise.hpp>

#include "actors/hardening.hpp"
#include "actors/locator.hpp"

namespace rc {

namespace {

using kind = metrics::cluster_kind;
/// The locator answers at once from its own state; a CAF request timeout
/// would sit in the clock for its whole duration, once per message.
const auto locate_timeout = caf::infinite;

/// Finds the owner's directory of `name` and delegates the publish to it.
template <class Target>
caf::response_promise route_named(caf::event_based_actor* self, const caf::actor& locator,
                                  Target target, const std::string& name, envelope env) {
  auto rp = self->make_response_promise();
  self->request(locator, locate_timeout, locate_atom::value, target, name)
    .then(
      [self, rp, name, env](caf::actor dir) mutable {
        count_if_remote(self, dir, kind::request);
        rp.delegate(dir, caf::publish_atom::value, name, std::move(env));
      },
      [rp](caf::error& err) mutable { rp.deliver(std::move(err)); });
  return rp;
}

} // namespace

caf::behavior router(caf::event_based_actor* self, caf::actor locator) {
  harden(self, "router");
  return {
    [self, locator](route_atom, room_atom, const std::string& name, envelope& env) {
      return route_named(self, locator, room_atom::value, name, std::move(env));
    },
    [self, locator](route_atom, user_atom, const std::string& name, envelope& env) {
      return route_named(self, locator, user_atom::value, name, std::move(env));
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
