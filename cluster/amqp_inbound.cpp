#include "cluster/amqp_inbound.hpp"

#include <nlohmann/json.hpp>

#include <map>
#include <variant>

#include "actors/hardening.hpp"
#include "actors/names.hpp"
#include "actors/protocol.hpp"

namespace rc {

namespace {

constexpr auto route_timeout = std::chrono::seconds{10};
/// Pause before a message that could not be handed on goes back to the broker.
constexpr auto requeue_delay = std::chrono::seconds{1};
/// Longest `message_id` taken as a private message's id.
constexpr std::size_t max_message_id = 128;

/// The router request for a routing key and envelope, or a reason to refuse.
std::variant<caf::message, std::string> to_request(const std::string& key, envelope env) {
  auto name_after = [&](const std::string& prefix, std::string& name) {
    if (key.compare(0, prefix.size(), prefix) != 0)
      return false;
    name = key.substr(prefix.size());
    return true;
  };
  std::string name;
  if (key == "broadcast")
    return caf::make_message(route_atom::value, all_atom::value, std::move(env));
  bool room = name_after("room.", name);
  if (!room && !name_after("user.", name))
    return "unknown routing key '" + key + "' (expected room.<R>, user.<U> or broadcast)";
  if (!valid_name(name))
    return "'" + name + "' in routing key '" + key
           + "' is not 1 to 128 characters of [A-Za-z0-9_.:@-]";
  if (room)
    return caf::make_message(route_atom::value, room_atom::value, name, std::move(env));
  return caf::make_message(route_atom::value, user_atom::value, name, std::move(env));
}

/// Publishes a message to the dead letter queue with `reason`; `done(true)`
/// (acknowledge) once published, `done(false)` (requeue) if that failed.
template <class Done>
void dead_letter(caf::event_based_actor* self, const caf::actor& publisher, Done done,
                 const std::string& key, const std::string& body, const std::string& from,
                 const std::string& reason) {
  spdlog::info("amqp: dead-lettering a message with key '{}': {}", key, reason);
  std::map<std::string, std::string> headers{{"x-roomcast-reason", reason},
                                             {"x-roomcast-routing-key", key}};
  if (!from.empty())
    headers["from"] = from;
  self->request(publisher, route_timeout, caf::publish_atom::value, std::string{},
                dead_letter_queue, body, std::move(headers))
    .then([done](caf::ok_atom) { done(true); }, [done](caf::error&) { done(false); });
}

} // namespace

caf::behavior amqp_inbound(caf::event_based_actor* self, caf::actor router, caf::actor publisher) {
  harden(self, "amqp_inbound");
  return {
    [self, router, publisher](inbound_atom, std::uint64_t tag, const std::string& key,
                              std::string& body, const std::string& from,
                              const std::string& from_type, const std::string& message_id) {
      auto consumer = caf::actor_cast<caf::actor>(self->current_sender());
      auto done = [self, consumer, tag](bool ack) {
        if (ack)
          self->send(consumer, verdict_atom::value, tag, true);
        else
          self->delayed_send(consumer, requeue_delay, verdict_atom::value, tag, false);
      };
      auto dead = [&](const std::string& reason) {
        dead_letter(self, publisher, done, key, body, from, reason);
      };
      // Only an absent `from` means the default: a sender that sets one
      // wrongly would otherwise be shown as `amqp` without noticing.
      if (!from_type.empty() && from_type != "string")
        return dead("header 'from' is not a string (type: " + from_type + ")");
      if (!from_type.empty() && !valid_name(from))
        return dead("header 'from' is not 1 to 128 characters of [A-Za-z0-9_.:@-]");
      if (auto flaw = json_precheck(body); flaw != json_flaw::none)
        return dead("body: " + describe(flaw));
      auto doc = nlohmann::json::parse(body, nullptr, false);
      if (doc.is_discarded())
        return dead("body is not JSON");
      // The parser stops at a NUL byte; what follows would reach clients
      // inside their frames, since the body is passed on as written.
      if (body.find('\0') != std::string::npos)
        return dead("body is not JSON: it contains a NUL byte");
      if (message_id.size() > max_message_id)
        return dead("message_id is longer than " + std::to_string(max_message_id) + " bytes");
      // The id goes into the private message's JSON, which cannot hold it.
      if (!valid_utf8(message_id))
        return dead("message_id is not UTF-8");
      // The body as published (only its surrounding whitespace goes): D is
      // delivered unchanged.
      auto req = to_request(key, envelope{from_type.empty() ? "amqp" : from,
                                          std::string{trim_json(body)}, false, {}, message_id});
      if (auto reason = std::get_if<std::string>(&req))
        return dead(*reason);
      self->request(router, route_timeout, std::get<caf::message>(req))
        .then([done](std::uint64_t) { done(true); },
              [self, publisher, done, key, body = std::move(body), from](caf::error& err) {
                auto [code, message] = describe_failure(err, "the room");
                // Only what may pass later is tried again; a room logic's
                // refusal would be refused again every second, forever.
                if (code != error_code::unavailable && code != error_code::rate_limited)
                  return dead_letter(self, publisher, done, key, body, from,
                                     "refused: " + std::string{to_string(code)} + ": " + message);
                spdlog::warn("amqp: cannot hand on a message with key '{}' ({}); it is requeued",
                             key, log_text(err));
                done(false);
              });
    },
  };
}

} // namespace rc
