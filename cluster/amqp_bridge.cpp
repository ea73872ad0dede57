#include "cluster/amqp_bridge.hpp"

#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include "cluster/amqp_consumer.hpp"
#include "cluster/amqp_publisher.hpp"
#include "cluster/durable_inbox.hpp"

namespace rc {

amqp_bridge::amqp_bridge(caf::actor_system& sys, const settings& cfg)
  : sys_(sys), amqp_(cfg.amqp), health_(std::make_shared<amqp_health>()) {
  std::string err;
  if (!parse_amqp_url(cfg.amqp.url, endpoint_, err)) // validated at load time
    throw std::runtime_error("amqp-url: " + err);
  publisher_ = sys_.spawn<caf::detached>(amqp_publisher,
                                         amqp_publisher_config{endpoint_, amqp_, health_});
  inbox_ = sys_.spawn<caf::detached>(durable_inbox, durable_inbox_config{endpoint_, amqp_, health_});
}

core_services amqp_bridge::services() const {
  return core_services{inbox_, amqp_.events ? publisher_ : caf::actor{}};
}

void amqp_bridge::start_consuming(const caf::actor& router) {
  consumer_ = sys_.spawn<caf::detached>(
    amqp_consumer, amqp_consumer_config{endpoint_, amqp_, health_, router, publisher_});
}

void amqp_bridge::stop_consuming() {
  if (consumer_)
    caf::anon_send_exit(consumer_, caf::exit_reason::user_shutdown);
}

void amqp_bridge::stop() {
  stop_consuming();
  for (auto& a : {inbox_, publisher_})
    if (a)
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
}

} // namespace rc
