#define CAF_SUITE protocol

#include "actors/protocol.hpp"

#include <caf/test/unit_test.hpp>
#include <nlohmann/json.hpp>

using namespace rc;
using nlohmann::json;

namespace {

request_error error_of(std::string_view text) {
  auto r = parse_request(text);
  CAF_REQUIRE(std::holds_alternative<request_error>(r));
  return std::get<request_error>(r);
}

request request_of(std::string_view text) {
  auto r = parse_request(text);
  CAF_REQUIRE(std::holds_alternative<request>(r));
  return std::get<request>(r);
}

} // namespace

CAF_TEST(every request type parses with its fields) {
  auto j = request_of(R"({"type":"join","room":"r1","id":7})");
  CAF_CHECK(j.type == request::kind::join);
  CAF_CHECK_EQUAL(j.room, "r1");
  CAF_CHECK_EQUAL(j.id, "7");
  auto p = request_of(R"({"type":"publish","room":"r1","data":{"a":[1,2]},"echo":true,"id":"x"})");
  CAF_CHECK(p.type == request::kind::publish);
  CAF_CHECK_EQUAL(json::parse(p.data), json::parse(R"({"a":[1,2]})"));
  CAF_CHECK(p.echo);
  CAF_CHECK_EQUAL(p.id, "\"x\"");
  auto s = request_of(R"({"type":"send","to":"bob","data":null})");
  CAF_CHECK(s.type == request::kind::send);
  CAF_CHECK_EQUAL(s.to, "bob");
  CAF_CHECK_EQUAL(s.data, "null");
  CAF_CHECK(request_of(R"({"type":"broadcast","data":1})").type == request::kind::broadcast);
  CAF_CHECK(request_of(R"({"type":"leave","room":"r"})").type == request::kind::leave);
  CAF_CHECK(request_of(R"({"type":"ping"})").type == request::kind::ping);
}

CAF_TEST(malformed requests map to the protocol error codes) {
  CAF_CHECK(error_of("not json").code == error_code::bad_json);
  CAF_CHECK(error_of("[1,2]").code == error_code::bad_json);
  CAF_CHECK(error_of(std::string(100, '[') + std::string(100, ']')).code == error_code::bad_json);
  CAF_CHECK(error_of(R"({"room":"r"})").code == error_code::bad_request);
  CAF_CHECK(error_of(R"({"type":5})").code == error_code::bad_request);
  CAF_CHECK(error_of(R"({"type":"join"})").code == error_code::bad_request);
  CAF_CHECK(error_of(R"({"type":"join","room":5})").code == error_code::bad_request);
  CAF_CHECK(error_of(R"({"type":"publish","room":"r"})").code == error_code::bad_request);
  CAF_CHECK(error_of(R"({"type":"publish","room":"r","data":1,"echo":"yes"})").code
            == error_code::bad_request);
  CAF_CHECK(error_of(R"({"type":"send","data":1})").code == error_code::bad_request);
  CAF_CHECK(error_of(R"({"type":"ping","id":{}})").code == error_code::bad_request);
  CAF_CHECK(error_of(R"({"type":"dance"})").code == error_code::unknown_type);
  CAF_CHECK(error_of(R"({"type":"join","room":"no spaces"})").code == error_code::bad_name);
  CAF_CHECK(error_of(R"({"type":"send","to":"","data":1})").code == error_code::bad_name);
}

CAF_TEST(errors echo the request id when it could be read) {
  CAF_CHECK_EQUAL(error_of(R"({"type":"dance","id":"r-1"})").id, "\"r-1\"");
  CAF_CHECK_EQUAL(error_of(R"({"type":"join","id":3})").id, "3");
  CAF_CHECK_EQUAL(error_of("nope").id, "");
}

CAF_TEST(server frames have the shapes of the protocol) {
  CAF_CHECK_EQUAL(json::parse(encode_welcome("u", "n")),
                  json::parse(R"({"type":"welcome","user":"u","node":"n"})"));
  CAF_CHECK_EQUAL(json::parse(encode_joined("r", 4, "e1", "9")),
                  json::parse(R"({"type":"joined","room":"r","seq":4,"epoch":"e1","id":9})"));
  CAF_CHECK_EQUAL(json::parse(encode_left("r", "")), json::parse(R"({"type":"left","room":"r"})"));
  CAF_CHECK_EQUAL(json::parse(encode_ack("\"a\"", 3)),
                  json::parse(R"({"type":"ack","id":"a","seq":3})"));
  CAF_CHECK_EQUAL(json::parse(encode_pong("")), json::parse(R"({"type":"pong"})"));
  CAF_CHECK_EQUAL(json::parse(encode_error("1", error_code::not_member, "say \"why\"")),
                  json::parse(R"({"type":"error","id":1,"code":"not_member","message":"say \"why\""})"));
  CAF_CHECK_EQUAL(json::parse(encode_message("r", "u", 2, R"({"x":[1]})")),
                  json::parse(R"({"type":"message","room":"r","from":"u","seq":2,"data":{"x":[1]}})"));
  CAF_CHECK_EQUAL(json::parse(encode_private("u", "\"hi\"")),
                  json::parse(R"({"type":"private","from":"u","data":"hi"})"));
  CAF_CHECK_EQUAL(json::parse(encode_broadcast("u", "1")),
                  json::parse(R"({"type":"broadcast","from":"u","data":1})"));
}

CAF_TEST(integers arrive unchanged or are refused) {
  // Every 64-bit integer keeps its digits.
  for (auto n : {"18446744073709551615", "-9223372036854775808", "0", "-1"}) {
    std::string text = std::string{R"({"type":"publish","room":"r","data":[)"} + n + "]}";
    CAF_CHECK_EQUAL(request_of(text).data, std::string{"["} + n + "]");
  }
  // Beyond 64 bits the parser would deliver a double's digits instead.
  for (auto n : {"18446744073709551616", "-9223372036854775809", "123456789012345678901234567890"}) {
    auto e = error_of(std::string{R"({"type":"publish","room":"r","data":)"} + n + "}");
    CAF_CHECK(e.code == error_code::bad_request);
    CAF_CHECK(e.message.find("64 bits") != std::string::npos);
  }
  auto id = error_of(R"({"type":"ping","id":12345678901234567890123})");
  CAF_CHECK(id.code == error_code::bad_request);
  // Digits in strings, fractions and exponents are not integers.
  CAF_CHECK_EQUAL(request_of(R"({"type":"publish","room":"r","data":["123456789012345678901234567890",1.5e300,-0.25]})").data,
                  R"(["123456789012345678901234567890",1.5e300,-0.25])");
  CAF_CHECK(json_precheck(R"({"a":"-99999999999999999999999"})") == json_flaw::none);
  CAF_CHECK(json_precheck("[[[1]]]", 2) == json_flaw::too_deep);
}

// PROTOCOL.md: D is delivered unchanged. Before, data was re-encoded from
// the parsed document: keys sorted, duplicates dropped, 1e2 spelled 100.0.
CAF_TEST(data is passed on as written) {
  for (auto d : {R"({"z":1,"a":2})", R"({"a":1,"a":2})", R"([1e2, 2.50 ,{"b":[true,null]}])",
                 R"("s\"}{,")", R"({"k\u0061":{"x":"}"},"y":[]})", "-0", "null"}) {
    std::string text = std::string{R"({"type":"publish", "room":"r", "data": )"} + d
                       + R"( , "echo":true})";
    CAF_CHECK_EQUAL(request_of(text).data, d);
  }
  // A name escaped in the frame still names the field.
  CAF_CHECK_EQUAL(request_of(R"({"type":"send","to":"u","d\u0061ta":[1]})").data, "[1]");
}

CAF_TEST(request_id finds the id without parsing the frame) {
  CAF_CHECK_EQUAL(request_id(R"({"type":"ping","id":7})"), "7");
  CAF_CHECK_EQUAL(request_id(R"( { "data" : {"id":1}, "id" : "a\"b" } )"), R"("a\"b")");
  CAF_CHECK_EQUAL(request_id(R"({"data":"\"id\":3"})"), "");
  CAF_CHECK_EQUAL(request_id(R"({"id":[1]})"), "");
  CAF_CHECK_EQUAL(request_id(R"({"id":1,"data":[1,2,{)"), "1"); // broken after the id
  for (auto junk : {"", "[", "{", R"({")", R"({"id")", R"({"id":)", "not json", R"("id":1)",
                    R"({"\)", R"({"\u00)", R"({"a\":1)"})
    CAF_CHECK_EQUAL(request_id(junk), "");
}

CAF_TEST(a byte order mark before a request is skipped as the parser skips it) {
  auto r = request_of("\xEF\xBB\xBF{\"type\":\"publish\",\"room\":\"r\",\"data\":[1]}");
  CAF_CHECK_EQUAL(r.data, "[1]");
  CAF_CHECK_EQUAL(trim_json("\xEF\xBB\xBF {\"a\":1} "), "{\"a\":1}");
}

CAF_TEST(a request field given twice is refused) {
  for (auto text : {R"({"type":"bogus","type":"ping"})", R"({"type":"ping","id":1,"id":2})",
                    R"({"type":"publish","room":"r","data":1,"data":2})",
                    R"({"type":"ping","t\u0079pe":"ping"})"}) {
    auto e = error_of(text);
    CAF_CHECK(e.code == error_code::bad_request);
    CAF_CHECK_EQUAL(e.message, "a field is given more than once");
  }
}

CAF_TEST(fractions and exponents arrive unchanged or are refused) {
  // What a double holds as written keeps its value (in the double's shortest digits).
  for (auto n : {"0.1", "-0.25", "3.141592653589793", "1e-300", "2.5E+3", "0.0", "-0.0",
                 "123.456", "1.7976931348623157e308", "0.000001"}) {
    std::string text = std::string{R"({"type":"publish","room":"r","data":)"} + n + "}";
    auto data = request_of(text).data;
    CAF_CHECK_EQUAL(json::parse(data).get<double>(), std::strtod(n, nullptr));
  }
  // More digits than a double holds, or beyond its range: refused, not rounded.
  for (auto n : {"3.141592653589793238462643383279", "1.00000000000000000001", "1e400", "-1e400",
                 "1e-400", "0.12345678901234567890"}) {
    auto e = error_of(std::string{R"({"type":"publish","room":"r","id":"x","data":[)"} + n + "]}");
    CAF_CHECK(e.code == error_code::bad_request);
    CAF_CHECK(e.message.find("double") != std::string::npos);
  }
  // The id is echoed when it can be: not when it may be the refused number.
  auto with_id = error_of(R"({"type":"publish","room":"r","id":"x","data":1.00000000000000000001})");
  CAF_CHECK_EQUAL(with_id.id, R"("x")");
  auto huge_id = error_of(R"({"type":"ping","id":1e400})");
  CAF_CHECK(huge_id.code == error_code::bad_request);
  CAF_CHECK(huge_id.id.empty());
  CAF_CHECK(json_precheck(R"({"a":"1.00000000000000000001"})") == json_flaw::none);
}

CAF_TEST(valid_utf8 accepts what a JSON string can hold and nothing else) {
  for (auto s : {"", "plain", "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\xF4\x8F\xBF\xBF",
                 "\x01\x7F"})
    CAF_CHECK(valid_utf8(s));
  for (auto s : {"\xFF\xFE", "\x80", "\xC3", "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80",
                 "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "a\xE4\xB8", "\xC3\x28"})
    CAF_CHECK(!valid_utf8(s));
}

CAF_TEST(a renumbered message differs only in its seq) {
  // A sender whose name holds what the field looks like, and data too.
  auto frame = encode_message("r", R"(a,"seq":9)", 41, R"({"seq":7,"s":",\"seq\":8"})");
  auto again = json::parse(renumber_message(frame, 1234));
  auto want = json::parse(frame);
  want["seq"] = 1234;
  CAF_CHECK_EQUAL(again, want);
}
