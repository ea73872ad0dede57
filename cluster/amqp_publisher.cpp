#include "cluster/amqp_publisher.hpp"

#include <caf/response_promise.hpp>
#include <spdlog/spdlog.h>

#include <vector>

#include "actors/messages.hpp"

namespace rc {

namespace {

constexpr auto confirm_timeout = std::chrono::seconds{5};

struct pending_publish {
  amqp_outgoing msg;
  /// Empty for events (nobody waits for them).
  std::optional<caf::response_promise> rp;
};

} // namespace

void amqp_publisher(caf::blocking_actor* self, amqp_publisher_config cfg) {
  amqp_link link{"publisher", cfg.endpoint, cfg.amqp, cfg.health,
                 [](amqp_connection& c) { return c.confirm_select(); }};
  std::vector<pending_publish> pending;
  std::uint64_t events_dropped = 0;

  auto flush = [&] {
    if (pending.empty())
      return;
    auto batch = std::move(pending);
    pending.clear();
    std::vector<bool> ok(batch.size(), false);
    if (link.ensure()) {
      std::vector<amqp_outgoing> msgs;
      for (auto& p : batch)
        msgs.push_back(p.msg);
      publish_redeclaring(link, msgs, ok, confirm_timeout);
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      if (batch[i].rp) {
        if (ok[i])
          batch[i].rp->deliver(caf::ok_atom::value);
        else
          batch[i].rp->deliver(make_error(error_code::unavailable));
      } else if (!link.is_open() && events_dropped++ == 0) {
        spdlog::warn("amqp publisher: dropping room events while the broker is unavailable");
      }
    }
    if (link.is_open() && events_dropped > 0) {
      spdlog::info("amqp publisher: {} room events were dropped while the broker was unavailable",
                   events_dropped);
      events_dropped = 0;
    }
  };

  auto handlers = [&](auto&& receive_fn) {
    receive_fn(
      [&](caf::publish_atom, std::string& exchange, std::string& key, std::string& body,
          std::map<std::string, std::string>& headers) {
        pending.push_back(pending_publish{
          amqp_outgoing{std::move(exchange), std::move(key), std::move(body), std::move(headers)},
          self->make_response_promise()});
      },
      [&](caf::publish_atom, const std::string& room, std::string& from, std::string& text) {
        pending.push_back(pending_publish{amqp_outgoing{cfg.amqp.exchange, "event.room." + room,
                                                        std::move(text), {{"from", std::move(from)}}},
                                          std::nullopt});
      });
  };

  run_bridge_loop(self, link, "amqp publisher", handlers, flush);
}

} // namespace rc
