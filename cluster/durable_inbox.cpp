#include "cluster/durable_inbox.hpp"

#include <caf/response_promise.hpp>
#include <spdlog/spdlog.h>

#include <set>
#include <vector>

#include "actors/inbox_store.hpp"

namespace rc {

namespace {

constexpr auto confirm_timeout = std::chrono::seconds{5};

struct pending_store {
  std::string user;
  std::string text;
  caf::response_promise rp;
};

} // namespace

std::string inbox_queue(const amqp_settings& cfg, const std::string& user) {
  return cfg.exchange + ".user." + user;
}

void durable_inbox(caf::blocking_actor* self, durable_inbox_config cfg) {
  amqp_link link{"inbox", cfg.endpoint, cfg.amqp, cfg.health,
                 [](amqp_connection& c) { return c.confirm_select(); }};
  std::set<std::string> declared; // per-user queues declared on this connection
  std::vector<pending_store> stores;

  auto unavailable = [] { return make_error(error_code::unavailable); };

  // Publishes the collected stores with one wait for confirms.
  auto flush = [&] {
    if (stores.empty())
      return;
    auto batch = std::move(stores);
    stores.clear();
    std::vector<bool> ok(batch.size(), false);
    if (link.ensure()) {
      std::vector<amqp_outgoing> msgs;
      for (auto& s : batch) {
        auto queue = inbox_queue(cfg.amqp, s.user);
        if (declared.count(queue) == 0 && link.conn().declare_queue(queue))
          declared.insert(queue);
        msgs.push_back(amqp_outgoing{"", queue, s.text, {}});
      }
      publish_redeclaring(link, msgs, ok, confirm_timeout);
      if (!link.is_open())
        declared.clear();
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      if (ok[i])
        batch[i].rp.deliver(caf::ok_atom::value);
      else
        batch[i].rp.deliver(unavailable());
    }
  };

  auto fetch = [&](const std::string& user, std::uint32_t max) -> caf::result<stored_frames> {
    if (!link.ensure())
      return unavailable();
    auto queue = inbox_queue(cfg.amqp, user);
    stored_frames out;
    auto ready = link.conn().probe_queue(queue);
    if (!ready) {
      if (!link.is_open()) {
        link.lost();
        return unavailable();
      }
      return out; // no queue: nothing was ever stored for the user
    }
    while (out.tags.size() < max) {
      auto m = link.conn().get(queue);
      if (!m) {
        if (!link.is_open()) {
          // What we took is returned to the queue with the connection.
          link.lost();
          return unavailable();
        }
        break;
      }
      out.tags.push_back(link.tag(m->delivery_tag));
      out.texts.push_back(std::move(m->body));
    }
    return out;
  };

  auto handlers = [&](auto&& receive_fn) {
    receive_fn(
      [&](store_atom, std::string& user, std::string& text) {
        stores.push_back(pending_store{std::move(user), std::move(text),
                                       self->make_response_promise()});
      },
      [&](fetch_atom, const std::string& user, std::uint32_t max) {
        flush();
        return fetch(user, max);
      },
      [&](ack_atom, const std::string&, std::uint64_t tag) {
        flush();
        if (auto t = link.current(tag); t && !link.conn().ack(*t))
          link.lost();
      },
      [&](requeue_atom, const std::string&, const std::vector<std::uint64_t>& tags) {
        flush();
        for (auto tag : tags)
          if (auto t = link.current(tag); t && !link.conn().reject(*t, true)) {
            link.lost();
            break;
          }
      });
  };

  run_bridge_loop(self, link, "durable_inbox", handlers, flush);
}

} // namespace rc
