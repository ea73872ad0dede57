#include "cluster/amqp_consumer.hpp"

#include <caf/after.hpp>
#include <caf/others.hpp>
#include <spdlog/spdlog.h>

#include "cluster/amqp_inbound.hpp"

namespace rc {

namespace {

/// How long one wait for a delivery blocks before the mailbox is read again.
constexpr auto consume_poll = std::chrono::milliseconds{50};

/// How often the consumer checks that the exchange still exists. A deleted
/// exchange takes the queue's bindings with it and the broker tells no
/// consumer: everything published afterwards would be routed nowhere.
constexpr auto topology_check = std::chrono::seconds{5};

} // namespace

void amqp_consumer(caf::blocking_actor* self, amqp_consumer_config cfg) {
  auto inbound = self->spawn<caf::linked>(amqp_inbound, cfg.router, cfg.publisher);
  auto amqp = cfg.amqp;
  amqp_link link{"consumer", cfg.endpoint, cfg.amqp, cfg.health, [amqp](amqp_connection& c) {
                   return c.declare_topology(amqp)
                          && c.consume(amqp.queue, static_cast<std::uint16_t>(amqp.prefetch));
                 }};
  bool running = true;
  // Deliveries handed on and not yet answered, on the connection counted.
  // Once they fill the prefetch window no delivery can come, so the loop
  // waits for verdicts instead of polling the socket, which held them (and
  // so the whole queue) for up to `consume_poll`.
  std::uint64_t unanswered = 0;
  std::uint64_t counted_on = link.tag(0);
  auto next_check = std::chrono::steady_clock::now() + topology_check;
  auto handle = [&](auto&&... extra) {
    self->receive(
      [&](verdict_atom, std::uint64_t tag, bool ack) {
        // Verdicts for a lost connection are void: the broker redelivers.
        auto t = link.current(tag);
        if (!t)
          return;
        if (unanswered > 0)
          --unanswered;
        if (!(ack ? link.conn().ack(*t) : link.conn().reject(*t, true)))
          link.lost();
      },
      [&](caf::exit_msg&) { running = false; },
      caf::others >> [](caf::message_view& x) -> caf::result<caf::message> {
        spdlog::warn("amqp consumer: dropped unexpected message {}", caf::to_string(x.content()));
        return caf::message{};
      },
      std::forward<decltype(extra)>(extra)...);
  };
  while (running) {
    if (!link.ensure()) {
      handle(caf::after(link.until_next_attempt()) >> [] {});
      continue;
    }
    if (link.tag(0) != counted_on) { // a new connection: nothing is unanswered on it
      counted_on = link.tag(0);
      unanswered = 0;
      next_check = std::chrono::steady_clock::now() + topology_check;
    }
    if (std::chrono::steady_clock::now() >= next_check) {
      next_check = std::chrono::steady_clock::now() + topology_check;
      if (!link.conn().check_exchange(amqp.exchange)) {
        link.lost();
        continue;
      }
    }
    while (running && self->has_next_message())
      handle();
    if (!running)
      break;
    if (unanswered >= amqp.prefetch) {
      bool quiet = false;
      handle(caf::after(consume_poll) >> [&] { quiet = true; });
      if (!quiet)
        continue;
      // No verdict for a while: read the socket too, for the heartbeats.
    }
    auto d = link.conn().next_delivery(consume_poll);
    if (!d) {
      if (!link.is_open())
        link.lost();
      continue;
    }
    ++unanswered;
    std::string from, from_type;
    if (auto f = d->headers.find("from"); f != d->headers.end())
      from = f->second, from_type = "string";
    else if (auto o = d->other_headers.find("from"); o != d->other_headers.end())
      from_type = o->second;
    self->send(inbound, inbound_atom::value, link.tag(d->delivery_tag), std::move(d->routing_key),
               std::move(d->body), std::move(from), std::move(from_type),
               std::move(d->message_id));
  }
  link.conn().close();
  self->send_exit(inbound, caf::exit_reason::user_shutdown);
}

} // namespace rc
