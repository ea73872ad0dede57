#pragma once

// The client protocol of PROTOCOL.md, section 1: parsing requests and
// encoding server frames. Pure functions; no actors, no sockets.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/error_code.hpp"

namespace rc {

/// A validated client request.
struct request {
  enum class kind { join, leave, publish, send, broadcast, ping };
  kind type = kind::ping;
  /// The request's `id` re-encoded as JSON text; empty when absent.
  std::string id;
  std::string room; ///< join, leave, publish
  std::string to;   ///< send
  std::string data; ///< publish, send, broadcast: JSON text
  bool echo = false;
};

/// Why a frame is not a valid request; `id` is set when it could be read.
struct request_error {
  error_code code;
  std::string message;
  std::string id;
};

/// Nesting deeper than this is refused as `bad_json` before parsing.
inline constexpr int max_json_depth = 64;

std::variant<request, request_error> parse_request(std::string_view text);

// -- server frames ----------------------------------------------------------------

std::string encode_welcome(std::string_view user, std::string_view node);
std::string encode_joined(std::string_view room, std::uint64_t seq, std::string_view epoch,
                          std::string_view id);
std::string encode_left(std::string_view room, std::string_view id);
/// `seq` is a roomcast addition: the room sequence number a publish got.
std::string encode_ack(std::string_view id, std::optional<std::uint64_t> seq = std::nullopt);
std::string encode_pong(std::string_view id);
std::string encode_error(std::string_view id, error_code code, std::string_view message);
std::string encode_message(std::string_view room, std::string_view from, std::uint64_t seq,
                           std::string_view data);
/// A frame made by `encode_message` with `seq` instead of its own.
std::string renumber_message(std::string_view frame, std::uint64_t seq);
/// `id` (an addition, set when private messages are stored durably) names
/// the message so that a client can drop a redelivered copy.
std::string encode_private(std::string_view from, std::string_view data,
                           std::string_view id = {});
std::string encode_broadcast(std::string_view from, std::string_view data);

/// What a scan of JSON text finds wrong with it before it is parsed.
enum class json_flaw {
  none,
  too_deep,     ///< arrays/objects nest deeper than the limit (`bad_json`)
  wide_integer, ///< an integer outside 64 bits (`bad_request`): the parser
                ///< would make it a double, and members would get other digits
  inexact_number, ///< a fraction or exponent no double holds as written: more
                  ///< than 17 significant digits, or out of range (`bad_request`)
};

/// The first flaw of `text` (which may still be invalid JSON otherwise).
json_flaw json_precheck(std::string_view text, int limit = max_json_depth);

/// A sentence for an error frame or body.
std::string describe(json_flaw flaw);

/// The members of a JSON object as written: PROTOCOL.md delivers `data`
/// unchanged, so it is passed on as its original text (key order, duplicate
/// keys and number spelling kept), not re-encoded from the parsed document.
struct raw_object {
  /// Each top-level member, in order: its name and the text of its value.
  /// More members than the parsed object has means a name is given twice.
  std::vector<std::pair<std::string, std::string_view>> members;

  /// The text of `name`'s value (the last one, as the parser keeps), or none.
  std::optional<std::string_view> find(std::string_view name) const;
};

/// Splits `text`, which must be a JSON object that nlohmann::json has
/// already accepted, into its top-level members.
raw_object split_object(std::string_view text);

/// The `id` of a request as an error frame echoes it (JSON text, "" when
/// the frame has none or is not an object), found without parsing the
/// rest: a rate-limited flood of large frames costs a scan, not a parse.
std::string request_id(std::string_view text);

/// `text` (valid JSON) without surrounding whitespace or a leading byte
/// order mark.
std::string_view trim_json(std::string_view text);

/// True when `text` is well-formed UTF-8 (no overlong forms, surrogates or
/// code points past U+10FFFF): only such text can go into a JSON string,
/// nlohmann::json's dump throws (type_error 316) on anything else.
bool valid_utf8(std::string_view text);

} // namespace rc
