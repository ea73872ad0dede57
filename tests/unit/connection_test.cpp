#define CAF_SUITE connection

#include "fixture.hpp"

#include "common/metrics.hpp"

using namespace rc;
using namespace rc::test;
using nlohmann::json;

namespace {

struct restricted_fixture : node_fixture {
  static settings make() {
    settings s;
    s.allow_broadcast = false;
    s.limits.max_rooms_per_connection = 2;
    s.limits.rate_limit = 1;
    s.limits.rate_burst = 5;
    return s;
  }
  restricted_fixture() : node_fixture(make()) {}
};

json error_for(node_fixture& f, node_fixture::client& c, const std::string& text) {
  c.link->frames.clear();
  f.frame(c, text);
  auto errors = c.link->of_type("error");
  CAF_REQUIRE_EQUAL(errors.size(), 1u);
  return errors[0];
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(connection_tests, node_fixture)

CAF_TEST(the first frame is welcome with user and node) {
  auto link = std::make_shared<recording_link>();
  identity who;
  who.user = "zoe";
  sys.spawn(connection, client_link_ptr{link}, who, core.context_for("n7", cfg));
  sched.run();
  CAF_REQUIRE(!link->frames.empty());
  {
    auto popped = link->pop();
    CAF_CHECK_EQUAL(popped, json::parse(R"({"type":"welcome","user":"zoe","node":"n7"})"));
  }
}

CAF_TEST(every malformed request gets its error code and the connection stays open) {
  auto a = connect("alice");
  auto& mx = metrics::global();
  auto bad_json_before = mx.errors(error_code::bad_json);
  {
    auto err = error_for(*this, a, "{oops");
    CAF_CHECK_EQUAL(err["code"], "bad_json");
  }
  CAF_CHECK_EQUAL(mx.errors(error_code::bad_json), bad_json_before + 1);
  {
    auto err = error_for(*this, a, R"({"room":"r"})");
    CAF_CHECK_EQUAL(err["code"], "bad_request");
  }
  {
    auto err = error_for(*this, a, R"({"type":"fly","id":3})");
    CAF_CHECK_EQUAL(err["code"], "unknown_type");
  }
  {
    auto err = error_for(*this, a, R"({"type":"join","room":"a b"})");
    CAF_CHECK_EQUAL(err["code"], "bad_name");
  }
  auto e = error_for(*this, a, R"({"type":"publish","room":"r","data":1,"id":"q"})");
  CAF_CHECK_EQUAL(e["code"], "not_member");
  CAF_CHECK_EQUAL(e["id"], "q");
  CAF_CHECK(a.link->closed.empty());
  a.link->frames.clear();
  frame(a, R"({"type":"ping","id":1})");
  {
    auto popped = a.link->pop();
    CAF_CHECK_EQUAL(popped, json::parse(R"({"type":"pong","id":1})"));
  }
  CAF_CHECK(a.link->done >= 6);
}

CAF_TEST(the token rooms claim limits which rooms may be joined) {
  identity who;
  who.restricted = true;
  who.room_globs = {"chat:*"};
  auto a = connect("alice", who);
  auto e = error_for(*this, a, R"({"type":"join","room":"game:1","id":1})");
  CAF_CHECK_EQUAL(e["code"], "forbidden");
  a.link->frames.clear();
  frame(a, R"({"type":"join","room":"chat:1","id":2})");
  {
    auto popped = a.link->pop();
    CAF_CHECK_EQUAL(popped["type"], "joined");
  }
}

CAF_TEST(a join is complete before the next request is handled) {
  auto a = connect("alice");
  auto b = connect("bob");
  frame(b, R"({"type":"join","room":"r"})");
  // Both frames are queued before the actor runs: publish must see the membership.
  caf::anon_send(a.conn, ws_frame_atom::value, std::string{R"({"type":"join","room":"r"})"});
  caf::anon_send(a.conn, ws_frame_atom::value,
                 std::string{R"({"type":"publish","room":"r","data":1,"id":1})"});
  sched.run();
  CAF_CHECK(a.link->of_type("error").empty());
  CAF_CHECK_EQUAL(a.link->of_type("ack").size(), 1u);
  CAF_CHECK_EQUAL(b.link->of_type("message").size(), 1u);
}

CAF_TEST(broadcast reaches every connection including the sender) {
  auto a = connect("alice");
  auto b = connect("bob");
  frame(a, R"({"type":"broadcast","data":"all","id":1})");
  CAF_CHECK_EQUAL(a.link->of_type("broadcast").size(), 1u);
  CAF_CHECK_EQUAL(a.link->of_type("ack").size(), 1u);
  {
    auto popped = b.link->pop();
    CAF_CHECK_EQUAL(popped, json::parse(R"({"type":"broadcast","from":"alice","data":"all"})"));
  }
}

CAF_TEST(a closed connection no longer gets broadcasts or room messages) {
  auto a = connect("alice");
  auto b = connect("bob");
  auto c = connect("carol");
  for (auto* x : {&a, &b, &c})
    frame(*x, R"({"type":"join","room":"r","id":1})");
  close(b);
  b.link->frames.clear();
  frame(a, R"({"type":"broadcast","data":"all","id":2})");
  frame(a, R"({"type":"publish","room":"r","data":1,"id":3})");
  CAF_CHECK_EQUAL(c.link->of_type("broadcast").size(), 1u);
  CAF_CHECK_EQUAL(c.link->of_type("message").size(), 1u);
  CAF_CHECK(b.link->frames.empty());
}

CAF_TEST(a connection that fails leaves the broadcaster and the user registry) {
  auto a = connect("alice");
  auto b = connect("bob");
  frame(b, R"({"type":"join","room":"r","id":1})");
  caf::anon_send_exit(b.conn, caf::exit_reason::kill);
  sched.run();
  b.link->frames.clear();
  frame(a, R"({"type":"broadcast","data":"all","id":1})");
  frame(a, R"({"type":"send","to":"bob","data":"later","id":2})");
  CAF_CHECK(b.link->frames.empty());
  // Bob has no connection left, so the private waits in his inbox.
  auto b2 = connect("bob");
  auto popped = b2.link->pop();
  CAF_CHECK_EQUAL(popped["data"], "later");
}

CAF_TEST(an expired token closes the connection with auth_expired) {
  identity who;
  who.expires = std::chrono::system_clock::now() + std::chrono::seconds{30};
  auto a = connect("alice", who);
  CAF_CHECK(a.link->closed.empty());
  sched.trigger_timeouts();
  sched.run();
  CAF_REQUIRE_EQUAL(a.link->closed.size(), 1u);
  CAF_CHECK(a.link->closed[0] == close_reason::auth_expired);
}

CAF_TEST(close_connections closes every connection with shutdown and later ones too) {
  auto a = connect("alice");
  auto b = connect("bob");
  core.close_connections();
  sched.run();
  for (auto* c : {&a, &b}) {
    CAF_REQUIRE_EQUAL(c->link->closed.size(), 1u);
    CAF_CHECK(c->link->closed[0] == close_reason::shutdown);
  }
  // A connection whose actor starts while the node stops is closed too.
  auto late = connect("carol");
  CAF_REQUIRE_EQUAL(late.link->closed.size(), 1u);
  CAF_CHECK(late.link->closed[0] == close_reason::shutdown);
}

CAF_TEST(stopping the core actors ends the connection actors with shutdown) {
  auto a = connect("alice");
  core.stop();
  sched.run();
  CAF_REQUIRE_EQUAL(a.link->closed.size(), 1u);
  CAF_CHECK(a.link->closed[0] == close_reason::shutdown);
  CAF_CHECK(a.conn->getf(caf::abstract_actor::is_terminated_flag));
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST_FIXTURE_SCOPE(restricted_connection_tests, restricted_fixture)

CAF_TEST(disabled broadcast is forbidden) {
  auto a = connect("alice");
  {
    auto err = error_for(*this, a, R"({"type":"broadcast","data":1})");
    CAF_CHECK_EQUAL(err["code"], "forbidden");
  }
}

CAF_TEST(joining more rooms than allowed is forbidden) {
  auto a = connect("alice");
  frame(a, R"({"type":"join","room":"r1"})");
  frame(a, R"({"type":"join","room":"r2"})");
  {
    auto err = error_for(*this, a, R"({"type":"join","room":"r3"})");
    CAF_CHECK_EQUAL(err["code"], "forbidden");
  }
}

CAF_TEST(requests over the rate get rate_limited errors and never close) {
  auto a = connect("alice");
  a.link->frames.clear();
  for (int i = 0; i < 20; ++i)
    caf::anon_send(a.conn, ws_frame_atom::value, std::string{R"({"type":"ping","id":1})"});
  sched.run();
  // Burst of 5; at 1/s hardly anything refills while 20 frames are handled.
  auto pongs = a.link->of_type("pong").size();
  auto limited = a.link->of_type("error").size();
  CAF_CHECK(pongs >= 5 && pongs <= 6);
  CAF_CHECK_EQUAL(pongs + limited, 20u);
  for (auto& e : a.link->of_type("error")) {
    CAF_CHECK_EQUAL(e["code"], "rate_limited");
    CAF_CHECK_EQUAL(e["id"], 1);
  }
  CAF_CHECK(a.link->closed.empty());
}

CAF_TEST_FIXTURE_SCOPE_END()
