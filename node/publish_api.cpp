#include "node/publish_api.hpp"

#include <caf/event_based_actor.hpp>
#include <nlohmann/json.hpp>

#include "actors/messages.hpp"
#include "actors/names.hpp"
#include "actors/protocol.hpp"
#include "common/metrics.hpp"

namespace rc {

namespace {

std::string error_body(error_code code, std::string_view message) {
  return nlohmann::json{{"error", {{"code", to_string(code)}, {"message", message}}}}.dump();
}

} // namespace

void handle_publish(caf::actor_system& sys, const caf::actor& router, const std::string& body,
                    std::function<void(unsigned, std::string)> reply) {
  auto fail = [&](error_code code, std::string_view message) {
    metrics::global().count_error(code);
    reply(http_status(code), error_body(code, message));
  };
  if (auto flaw = json_precheck(body); flaw != json_flaw::none)
    return fail(flaw == json_flaw::too_deep ? error_code::bad_json : error_code::bad_request,
                describe(flaw));
  auto doc = nlohmann::json::parse(body, nullptr, false);
  if (doc.is_discarded())
    return fail(error_code::bad_json, "body is not valid JSON");
  if (!doc.is_object())
    return fail(error_code::bad_json, "body must be a JSON object");
  auto raw = split_object(body);
  if (raw.members.size() != doc.size())
    return fail(error_code::bad_request, "a field is given more than once");
  auto data = raw.find("data");
  if (!data)
    return fail(error_code::bad_request, "missing field 'data'");
  envelope env{"api", std::string{*data}, false, {}}; // as written, like a client's
  auto name_of = [&](const char* field, std::string& out) {
    auto& v = doc[field];
    if (!v.is_string()) {
      fail(error_code::bad_request, std::string{"field '"} + field + "' must be a string");
      return false;
    }
    out = v.get<std::string>();
    if (!valid_name(out)) {
      fail(error_code::bad_name, std::string{"field '"} + field
                                   + "' must be 1 to 128 characters of [A-Za-z0-9_.:@-]");
      return false;
    }
    return true;
  };
  if (doc.contains("from") && !name_of("from", env.from))
    return;
  int targets = doc.contains("room") + doc.contains("user") + doc.contains("broadcast");
  if (targets != 1)
    return fail(error_code::bad_request, "give exactly one of 'room', 'user' or 'broadcast'");
  caf::message msg;
  std::string name;
  if (doc.contains("room")) {
    if (!name_of("room", name))
      return;
    msg = caf::make_message(route_atom::value, room_atom::value, name, std::move(env));
  } else if (doc.contains("user")) {
    if (!name_of("user", name))
      return;
    msg = caf::make_message(route_atom::value, user_atom::value, name, std::move(env));
  } else {
    if (doc["broadcast"] != true)
      return fail(error_code::bad_request, "field 'broadcast' must be true");
    msg = caf::make_message(route_atom::value, all_atom::value, std::move(env));
  }
  // A short-lived actor per request: it lives until the router answers.
  sys.spawn([router, msg, reply](caf::event_based_actor* self) {
    self->request(router, std::chrono::seconds{10}, msg)
      .then(
        [reply](std::uint64_t) { reply(202, R"({"ok":true})"); },
        [reply](caf::error& err) {
          auto code = to_error_code(err);
          metrics::global().count_error(code);
          // The refusal's own message when it has one ("this node's inboxes are full").
          auto message = error_text(err);
          if (message.empty())
            message = code == error_code::unavailable ? "target cannot take messages now, try again"
                                                      : "publish failed";
          reply(http_status(code), error_body(code, message));
        });
  });
}

} // namespace rc
