#include "actors/protocol.hpp"

#include <nlohmann/json.hpp>

#include <charconv>
#include <cmath>
#include <cstdlib>

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

/// A decimal number reduced to sign, significant digits (no leading or
/// trailing zeros) and the power of ten of the last digit; zero is {}.
struct decimal {
  bool negative = false;
  std::string digits;
  long exponent = 0;
  bool operator==(const decimal& o) const {
    return negative == o.negative && digits == o.digits && exponent == o.exponent;
  }
};

/// `text` is a JSON number (or what std::to_chars prints).
decimal reduce(std::string_view text) {
  decimal d;
  size_t i = 0;
  if (i < text.size() && text[i] == '-') {
    d.negative = true;
    ++i;
  }
  bool fraction = false;
  for (; i < text.size() && text[i] != 'e' && text[i] != 'E'; ++i) {
    if (text[i] == '.') {
      fraction = true;
      continue;
    }
    if (!d.digits.empty() || text[i] != '0')
      d.digits += text[i];
    if (fraction)
      --d.exponent;
  }
  if (i < text.size()) // the exponent: in range, as the double parsed
    d.exponent += std::strtol(std::string{text.substr(i + 1)}.c_str(), nullptr, 10);
  while (!d.digits.empty() && d.digits.back() == '0') {
    d.digits.pop_back();
    ++d.exponent;
  }
  if (d.digits.empty())
    return {}; // zero, whatever its sign and exponent
  return d;
}

/// Whether a double holds the number `text` (with a fraction or an exponent)
/// as written: nlohmann::json parses it into one, and members get the
/// double's shortest digits.
bool double_holds(std::string_view text) {
  std::string s{text};
  double v = std::strtod(s.c_str(), nullptr);
  if (!std::isfinite(v))
    return false;
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  if (ec != std::errc{})
    return false;
  return reduce(s) == reduce(std::string_view{buf, static_cast<size_t>(end - buf)});
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
      if (!integer) {
        auto stop = end;
        while (stop < text.size()
               && std::string_view{"0123456789.eE+-"}.find(text[stop]) != std::string_view::npos)
          ++stop;
        if (!double_holds(text.substr(i, stop - i)))
          return json_flaw::inexact_number;
      }
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
    case json_flaw::inexact_number:
      return "a number has more digits than a double holds, or is out of its range, and would "
             "not arrive unchanged; send it as a string";
    default:
      return {};
  }
}

// -- raw members ------------------------------------------------------------------
// The scanners below run on text nlohmann::json has accepted, so they need
// not validate; they still never read past the end.

namespace {

bool json_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/// After a UTF-8 byte order mark, which the parser accepts and skips too.
size_t skip_bom(std::string_view t) {
  return t.substr(0, 3) == "\xEF\xBB\xBF" ? 3 : 0;
}

size_t skip_space(std::string_view t, size_t i) {
  while (i < t.size() && json_space(t[i]))
    ++i;
  return i;
}

/// The end of the string that starts at `i` (its opening quote).
size_t skip_string(std::string_view t, size_t i) {
  for (++i; i < t.size() && t[i] != '"'; ++i)
    if (t[i] == '\\')
      ++i;
  return std::min(i + 1, t.size());
}

/// The end of the value that starts at `i`.
size_t skip_value(std::string_view t, size_t i) {
  if (i >= t.size())
    return t.size();
  if (t[i] == '"')
    return skip_string(t, i);
  if (t[i] == '{' || t[i] == '[') {
    int depth = 0;
    while (i < t.size()) {
      char c = t[i];
      if (c == '"') {
        i = skip_string(t, i);
        continue;
      }
      if (c == '{' || c == '[')
        ++depth;
      else if ((c == '}' || c == ']') && --depth == 0)
        return i + 1;
      ++i;
    }
    return t.size();
  }
  while (i < t.size() && t[i] != ',' && t[i] != '}' && t[i] != ']' && !json_space(t[i]))
    ++i; // a number, true, false or null
  return i;
}

} // namespace

std::optional<std::string_view> raw_object::find(std::string_view name) const {
  for (auto it = members.rbegin(); it != members.rend(); ++it)
    if (it->first == name)
      return it->second;
  return std::nullopt;
}

raw_object split_object(std::string_view t) {
  raw_object out;
  out.members.reserve(8); // a request has a few fields: one allocation
  size_t i = skip_space(t, skip_bom(t));
  if (i >= t.size() || t[i] != '{')
    return out;
  i = skip_space(t, i + 1);
  while (i < t.size() && t[i] == '"') {
    auto key_end = skip_string(t, i);
    auto token = t.substr(i, key_end - i);
    std::string key{token.size() >= 2 ? token.substr(1, token.size() - 2) : std::string_view{}};
    if (token.find('\\') != std::string_view::npos) { // escapes in a name
      auto decoded = json::parse(token.begin(), token.end(), nullptr, false);
      if (decoded.is_string())
        key = decoded.get<std::string>();
    }
    i = skip_space(t, key_end);
    if (i < t.size() && t[i] == ':')
      i = skip_space(t, i + 1);
    auto value_end = skip_value(t, i);
    auto value = t.substr(i, value_end - i);
    out.members.emplace_back(std::move(key), value);
    i = skip_space(t, value_end);
    if (i < t.size() && t[i] == ',')
      i = skip_space(t, i + 1);
  }
  return out;
}

std::string request_id(std::string_view text) {
  // split_object trusts its input to be JSON; here it may not be, but the
  // scan stays within the text and the id's own text is parsed.
  auto raw = split_object(text);
  auto token = raw.find("id");
  if (!token)
    return {};
  auto id = json::parse(token->begin(), token->end(), nullptr, false);
  if (!id.is_string() && !id.is_number())
    return {};
  return id.dump();
}

std::string_view trim_json(std::string_view text) {
  size_t b = skip_space(text, skip_bom(text)), e = text.size();
  while (e > b && json_space(text[e - 1]))
    --e;
  return text.substr(b, e - b);
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
  bool number_flaw = flaw == json_flaw::wide_integer || flaw == json_flaw::inexact_number;
  auto doc = json::parse(text.begin(), text.end(), nullptr, false);
  if (doc.is_discarded()) // 1e400 too: the parser refuses what a double cannot hold
    return number_flaw ? fail(error_code::bad_request, describe(flaw))
                       : fail(error_code::bad_json, "frame is not valid JSON");
  if (!doc.is_object())
    return fail(error_code::bad_json, "frame must be a JSON object");
  request req;
  if (auto it = doc.find("id"); it != doc.end()) {
    if (!it->is_string() && !it->is_number())
      return fail(error_code::bad_request, "field 'id' must be a string or a number");
    // With a flawed number about, a fractional id may be that number, changed.
    if (!number_flaw || !it->is_number_float())
      req.id = it->dump();
  }
  if (number_flaw)
    return fail(error_code::bad_request, describe(flaw), req.id);
  auto raw = split_object(text);
  if (raw.members.size() != doc.size())
    return fail(error_code::bad_request, "a field is given more than once", req.id);
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
    auto data = raw.find("data");
    if (!data)
      return fail(error_code::bad_request, "missing field 'data'", req.id);
    req.data = std::string{*data}; // as written: PROTOCOL.md delivers it unchanged
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

std::string renumber_message(std::string_view frame, std::uint64_t seq) {
  // The first `,"seq":` is the field: in the quoted room and sender before
  // it, a quote is always escaped.
  constexpr std::string_view key = R"(,"seq":)";
  auto at = frame.find(key);
  if (at == std::string_view::npos)
    return std::string{frame};
  auto digits = at + key.size();
  auto end = frame.find_first_not_of("0123456789", digits);
  std::string out{frame.substr(0, digits)};
  out += std::to_string(seq);
  out += frame.substr(end);
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
