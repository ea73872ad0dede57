#include "actors/protocol.hpp"

#include <nlohmann/json.hpp>

#include "actors/names.hpp"

namespace rc {

using nlohmann::json;

namespace {

/// Whether the digits of an integer literal (no sign) fit 64 bits: up to
/// 2^64-1, or 2^63 when negative.
bool fits_64_bits(std::string_view digits, bool negative) {
  std::string_view max = negative ? "9223372036854775808" : "18446744073709551615";
  return digits.size() < max.size() || (digits.size() == max.size() && digits <= max);
}

} // namespace

json_flaw json_precheck(std::string_view text, int limit) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > limit)
        return json_flaw::too_deep;
    } else if (c == ']' || c == '}') {
      --depth;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      bool negative = c == '-';
      size_t start = negative ? i + 1 : i, end = start;
      while (end < text.size() && text[end] >= '0' && text[end] <= '9')
        ++end;
      bool integer = end == text.size() || (text[end] != '.' && text[end] != 'e' && text[end] != 'E');
      if (integer && !fits_64_bits(text.substr(start, end - start), negative))
        return json_flaw::wide_integer;
      // The rest of a number (fraction, exponent) holds no brackets or quotes.
      while (end < text.size() && text[end] != ',' && text[end] != ']' && text[end] != '}'
             && text[end] != '"' && text[end] != '[' && text[end] != '{')
        ++end;
      i = end - 1;
    }
  }
  return json_flaw::none;
}

std::string describe(json_flaw flaw) {
  switch (flaw) {
    case json_flaw::too_deep:
      return "JSON nests deeper than " + std::to_string(max_json_depth) + " levels";
    case json_flaw::wide_integer:
      return "an integer does not fit in 64 bits and would not arrive unchanged; send it as a "
             "string";
    default:
      return {};
  }
}

namespace {

std::variant<request, request_error> fail(error_code code, std::string message,
                                          std::string id = {}) {
  return request_error{code, std::move(message), std::move(id)};
}

} // namespace

std::variant<request, request_error> parse_request(std::string_view text) {
  auto flaw = json_precheck(text);
  if (flaw == json_flaw::too_deep)
    return fail(error_code::bad_json, describe(flaw));
  auto doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded())
    return fail(error_code::bad_json, "frame is not valid JSON");
  if (!doc.is_object())
    return fail(error_code::bad_json, "frame must be a JSON object");
  request req;
  if (auto it = doc.find("id"); it != doc.end()) {
    if (!it->is_string() && !it->is_number())
      return fail(error_code::bad_request, "field 'id' must be a string or a number");
    // With a wide integer about, a fractional id may be that integer, changed.
    if (flaw != json_flaw::wide_integer || !it->is_number_float())
      req.id = it->dump();
  }
  if (flaw == json_flaw::wide_integer)
    return fail(error_code::bad_request, describe(flaw), req.id);
  auto type_it = doc.find("type");
  if (type_it == doc.end())
    return fail(error_code::bad_request, "missing field 'type'", req.id);
  if (!type_it->is_string())
    return fail(error_code::bad_request, "field 'type' must be a string", req.id);
  const auto& type = type_it->get_ref<const std::string&>();
  bool needs_room = false, needs_data = false;
  if (type == "join") {
    req.type = request::kind::join;
    needs_room = true;
  } else if (type == "leave") {
    req.type = request::kind::leave;
    needs_room = true;
  } else if (type == "publish") {
    req.type = request::kind::publish;
    needs_room = needs_data = true;
  } else if (type == "send") {
    req.type = request::kind::send;
    needs_data = true;
  } else if (type == "broadcast") {
    req.type = request::kind::broadcast;
    needs_data = true;
  } else if (type == "ping") {
    req.type = request::kind::ping;
  } else {
    return fail(error_code::unknown_type, "unknown request type '" + type + "'", req.id);
  }
  auto name_field = [&](const char* field, std::string& out) -> std::optional<request_error> {
    auto it = doc.find(field);
    if (it == doc.end())
      return request_error{error_code::bad_request, std::string{"missing field '"} + field + "'",
                           req.id};
    if (!it->is_string())
      return request_error{error_code::bad_request,
                           std::string{"field '"} + field + "' must be a string", req.id};
    out = it->get<std::string>();
    if (!valid_name(out))
      return request_error{error_code::bad_name,
                           std::string{"field '"} + field
                             + "' must be 1 to 128 characters of [A-Za-z0-9_.:@-]",
                           req.id};
    return std::nullopt;
  };
  if (needs_room)
    if (auto err = name_field("room", req.room))
      return *err;
  if (req.type == request::kind::send)
    if (auto err = name_field("to", req.to))
      return *err;
  if (needs_data) {
    auto it = doc.find("data");
    if (it == doc.end())
      return fail(error_code::bad_request, "missing field 'data'", req.id);
    req.data = it->dump();
  }
  if (req.type == request::kind::publish) {
    if (auto it = doc.find("echo"); it != doc.end()) {
      if (!it->is_boolean())
        return fail(error_code::bad_request, "field 'echo' must be a boolean", req.id);
      req.echo = it->get<bool>();
    }
  }
  return req;
}

// -- encoders -------------------------------------------------------------------
// Frames are assembled as text: names are validated and data is already JSON,
// so only free-form strings (error messages) need escaping.

namespace {

void add_id(std::string& out, std::string_view id) {
  if (!id.empty()) {
    out += R"(,"id":)";
    out += id;
  }
}

std::string quoted(std::string_view s) {
  return json(std::string{s}).dump();
}

} // namespace

std::string encode_welcome(std::string_view user, std::string_view node) {
  return R"({"type":"welcome","user":)" + quoted(user) + R"(,"node":)" + quoted(node) + "}";
}

std::string encode_joined(std::string_view room, std::uint64_t seq, std::string_view epoch,
                          std::string_view id) {
  auto out = R"({"type":"joined","room":)" + quoted(room) + R"(,"seq":)"
             + std::to_string(seq) + R"(,"epoch":)" + quoted(epoch);
  add_id(out, id);
  return out + "}";
}

std::string encode_left(std::string_view room, std::string_view id) {
  auto out = R"({"type":"left","room":)" + quoted(room);
  add_id(out, id);
  return out + "}";
}

std::string encode_ack(std::string_view id, std::optional<std::uint64_t> seq) {
  std::string out = R"({"type":"ack")";
  add_id(out, id);
  if (seq)
    out += R"(,"seq":)" + std::to_string(*seq);
  return out + "}";
}

std::string encode_pong(std::string_view id) {
  std::string out = R"({"type":"pong")";
  add_id(out, id);
  return out + "}";
}

std::string encode_error(std::string_view id, error_code code, std::string_view message) {
  std::string out = R"({"type":"error")";
  add_id(out, id);
  out += R"(,"code":")";
  out += to_string(code);
  out += R"(","message":)" + quoted(message) + "}";
  return out;
}

std::string encode_message(std::string_view room, std::string_view from, std::uint64_t seq,
                           std::string_view data) {
  std::string out;
  out.reserve(64 + room.size() + from.size() + data.size());
  out += R"({"type":"message","room":)";
  out += quoted(room);
  out += R"(,"from":)";
  out += quoted(from);
  out += R"(,"seq":)";
  out += std::to_string(seq);
  out += R"(,"data":)";
  out += data;
  out += '}';
  return out;
}

std::string encode_private(std::string_view from, std::string_view data, std::string_view id) {
  std::string out = R"({"type":"private",)";
  if (!id.empty())
    out += R"("id":)" + quoted(id) + ",";
  return out + R"("from":)" + quoted(from) + R"(,"data":)" + std::string{data} + "}";
}

std::string encode_broadcast(std::string_view from, std::string_view data) {
  return R"({"type":"broadcast","from":)" + quoted(from) + R"(,"data":)" + std::string{data}
         + "}";
}

bool valid_utf8(std::string_view text) {
  // nlohmann's own check: exactly the text its dump accepts.
  try {
    (void)json(std::string{text}).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

} // namespace rc
