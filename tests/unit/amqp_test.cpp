// The actor side of the RabbitMQ bridge, without a broker: the user actor
// with a durable store (a fake implementing actors/inbox_store.hpp), and
// the inbound logic that routes or dead-letters messages from the queue.

#define CAF_SUITE amqp

#include <map>
#include <optional>

#include "actors/user.hpp"
#include "cluster/amqp_inbound.hpp"
#include "fake_store.hpp"

#include "fixture.hpp"

using namespace rc;
using namespace rc::test;
using nlohmann::json;

namespace {

struct durable_fixture : store_holder, node_fixture {
  durable_fixture()
    : node_fixture({}, [this](caf::actor_system& s) {
        store = s.spawn(fake_store);
        return core_services{store, nullptr};
      }) {
  }

  ~durable_fixture() {
    caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
    sched.run();
  }

  fake_store_state& store_state() {
    return deref<caf::stateful_actor<fake_store_state>>(store).state;
  }

  std::size_t ready(const std::string& user) { return store_state().ready[user].size(); }

  /// Answers the fetches and confirms the stores held so far, and runs
  /// until idle.
  void release_held() {
    caf::anon_send(store, release_atom::value);
    sched.run();
  }

  /// Alice, and the link of frank's tab: its reader is behind with "slow"
  /// on its way, then the tab closes. What a newer message to frank meets.
  std::pair<client, std::shared_ptr<recording_link>> slow_reader_gone() {
    auto a = connect("alice");
    auto link = holding_link();
    auto f = connect("frank", {}, link);
    frame(a, send_to("frank", "slow"));
    CAF_REQUIRE_EQUAL(link->held.size(), 1u); // its reader is behind
    link->begin_closing();
    close(f);
    return {a, link};
  }
};

} // namespace

/// The `data` of each private frame in `texts`.
std::vector<std::string> data_of(const std::vector<std::string>& texts) {
  std::vector<std::string> out;
  for (auto& t : texts)
    out.push_back(json::parse(t)["data"].get<std::string>());
  return out;
}

CAF_TEST_FIXTURE_SCOPE(durable_user_tests, durable_fixture)

CAF_TEST(a send to an offline user is acked once stored and carries an id) {
  auto a = connect("alice");
  frame(a, send_to("carol", {{"n", 1}}, 7));
  auto ack = a.link->pop();
  CAF_CHECK_EQUAL(ack, json::parse(R"({"type":"ack","id":7})"));
  CAF_REQUIRE_EQUAL(ready("carol"), 1u);
  auto stored = json::parse(store_state().ready["carol"].front().text);
  CAF_CHECK_EQUAL(stored["type"], "private");
  CAF_CHECK_EQUAL(stored["from"], "alice");
  CAF_CHECK(stored["id"].is_string());
}

CAF_TEST(a send to an offline user is refused when the store is unavailable) {
  auto a = connect("alice");
  store_state().down = true;
  frame(a, send_to("carol", 1, 3));
  auto err = a.link->pop();
  CAF_CHECK_EQUAL(err["type"], "error");
  CAF_CHECK_EQUAL(err["code"], "unavailable");
  CAF_CHECK_EQUAL(err["id"], 3);
}

CAF_TEST(stored messages are written in order on the next connection then removed) {
  auto a = connect("alice");
  for (int i = 1; i <= 150; ++i) // more than one fetch batch
    frame(a, send_to("carol", i));
  CAF_CHECK_EQUAL(ready("carol"), 150u);
  auto c = connect("carol");
  std::set<std::string> ids;
  for (int i = 1; i <= 150; ++i) {
    auto f = c.link->pop();
    CAF_CHECK_EQUAL(f["data"], i);
    ids.insert(f["id"].get<std::string>());
  }
  CAF_CHECK_EQUAL(ids.size(), 150u);
  CAF_CHECK_EQUAL(ready("carol"), 0u);
  CAF_CHECK(store_state().unacked.empty());
  CAF_CHECK_EQUAL(store_state().acked.size(), 150u);
  // Newer messages go straight to the connection now.
  frame(a, send_to("carol", 151));
  auto newer = c.link->pop();
  CAF_CHECK_EQUAL(newer["data"], 151);
  CAF_CHECK_EQUAL(ready("carol"), 0u);
}

CAF_TEST(a stored message that could not be written stays for the next connection) {
  auto a = connect("alice");
  for (int i = 1; i <= 3; ++i)
    frame(a, send_to("dave", i));
  auto link = std::make_shared<recording_link>();
  link->refuse = true;
  identity who;
  who.user = "dave";
  auto conn = sys.spawn(connection, client_link_ptr{link}, who, core.context_for("n", cfg));
  sched.run();
  CAF_CHECK_EQUAL(ready("dave"), 3u);
  CAF_CHECK(store_state().unacked.empty());
  CAF_CHECK(store_state().acked.empty());
  caf::anon_send(conn, ws_closed_atom::value);
  sched.run();
  sched.trigger_timeouts(); // the user actor's pending retry finds no connection
  sched.run();
  auto d = connect("dave");
  for (int i = 1; i <= 3; ++i) {
    auto f = d.link->pop();
    CAF_CHECK_EQUAL(f["data"], i);
  }
  CAF_CHECK_EQUAL(ready("dave"), 0u);
}

// Probe: a message that only reached a closing tab was stored, but the user
// was known to have nothing stored, so a new tab never fetched it (it stayed
// in the broker), and newer messages went live around it.
CAF_TEST(a message no closing connection took is stored and reaches the next one in order) {
  auto a = connect("alice");
  auto f1 = connect("frank"); // drains: nothing stored
  CAF_CHECK_EQUAL(ready("frank"), 0u);
  f1.link->closing = true; // its session closes; the actors do not know yet
  frame(a, send_to("frank", "bounced", 1));
  CAF_CHECK_EQUAL(ready("frank"), 1u);
  frame(a, send_to("frank", "newer", 2)); // behind it, not around it
  CAF_CHECK_EQUAL(ready("frank"), 2u);
  auto f2 = connect("frank");
  auto got = f2.link->of_type("private");
  CAF_REQUIRE_EQUAL(got.size(), 2u);
  CAF_CHECK_EQUAL(got[0]["data"], "bounced");
  CAF_CHECK_EQUAL(got[1]["data"], "newer");
  CAF_CHECK_EQUAL(ready("frank"), 0u);
  CAF_CHECK(f1.link->frames.empty());
}

CAF_TEST(a message stored for a user whose last tab closed comes behind live ones the tab did not write) {
  auto a = connect("alice");
  auto link = holding_link();
  auto f = connect("frank", {}, link);
  frame(a, send_to("frank", "one"));
  frame(a, send_to("frank", "two"));
  CAF_REQUIRE_EQUAL(link->held.size(), 2u);
  link->begin_closing();
  close(f); // gone before its session reports one and two
  frame(a, send_to("frank", "three", 3));
  CAF_CHECK_EQUAL(a.link->of_type("ack").size(), 0u); // acked once stored, behind them
  link->settle_oldest(false);
  link->settle_oldest(false);
  sched.run();
  CAF_CHECK_EQUAL(a.link->of_type("ack").size(), 1u);
  CAF_CHECK_EQUAL(ready("frank"), 3u);
  auto again = connect("frank");
  CAF_CHECK_EQUAL(data_of(again.link->frames), (std::vector<std::string>{"one", "two", "three"}));
}

// Before, a message to store waited behind live frames however long their
// reader took: after 10 s its sender was told `unavailable`, and the
// message was stored and delivered later all the same.
CAF_TEST(a message to store waits behind slow live frames at most 5 s) {
  auto [a, link] = slow_reader_gone();
  frame(a, send_to("frank", "newer", 2));
  for (int i = 0; i < 6; ++i) {
    sched.advance_time(std::chrono::seconds{1});
    sched.run();
  }
  CAF_CHECK_EQUAL(a.link->of_type("ack").size(), 1u); // stored at 5 s
  CAF_CHECK(a.link->of_type("error").empty());
  CAF_CHECK_EQUAL(ready("frank"), 1u);
  // The slow frame is not written after all: it comes after the newer one.
  link->settle_oldest(false);
  sched.run();
  auto again = connect("frank");
  CAF_CHECK_EQUAL(data_of(again.link->frames), (std::vector<std::string>{"newer", "slow"}));
  CAF_CHECK_EQUAL(ready("frank"), 0u);
}

// A message that waited 5 s behind a slow reader's frame, then a broker
// slow to confirm: the sender's `send` waits for the user's answer (at most
// 5 + 10 s) instead of answering `unavailable` itself after 10 s for a
// message that is then stored and delivered.
CAF_TEST(a sender hears whether its message was stored even when that takes over 10 s) {
  auto [a, link] = slow_reader_gone();
  store_state().hold_stores = true;
  frame(a, send_to("frank", "newer", 2));
  for (int i = 0; i < 11; ++i) { // stored at 5 s, confirmed at 11 s
    sched.advance_time(std::chrono::seconds{1});
    sched.run();
  }
  CAF_CHECK_EQUAL(ready("frank"), 1u);
  release_held();
  CAF_CHECK(a.link->of_type("error").empty());
  auto acks = a.link->of_type("ack");
  CAF_REQUIRE_EQUAL(acks.size(), 1u);
  CAF_CHECK_EQUAL(acks[0]["id"], 2);
  link->settle_oldest(false);
  sched.run();
}

// Probe (a rolling restart under traffic, 2 of 50 rounds): a message that
// bounced off a closing tab while its user moved was stored by the old
// owner after the new one had fetched and found nothing; it stayed in the
// store, skipped by the user's later tabs, until the user moved again.
CAF_TEST(a message stored by a moving owner is fetched by its successor) {
  auto setup = std::make_shared<const user_setup>(user_setup{
    duration{std::chrono::minutes{1}}, 100, store, core.node_watch, drain_window{}, nullptr});
  auto written = std::make_shared<std::vector<std::string>>();
  auto closing = sys.spawn(played_node, written, node_mode::closing);
  auto open = sys.spawn(played_node, written, node_mode::writes);
  auto old_owner = sys.spawn(user, "hal", caf::actor{}, setup);
  auto successor = sys.spawn(user, "hal", caf::actor{}, setup);
  caf::anon_send(old_owner, attach_atom::value, closing);
  sched.run();
  // The message goes out to the closing tab; the move starts before the tab
  // refuses it, and the successor fetches (nothing) before it is stored.
  envelope env;
  env.from = "alice";
  env.data = R"("in between")";
  caf::anon_send(old_owner, caf::publish_atom::value, env);
  caf::anon_send(old_owner, handoff_atom::value, successor);
  sched.run();
  // Either it went along in the move or it is stored; in both cases a new
  // tab of the user, attached to the successor, gets it.
  caf::anon_send(successor, attach_atom::value, open);
  sched.run();
  CAF_REQUIRE_EQUAL(written->size(), 1u);
  CAF_CHECK(written->front().find("in between") != std::string::npos);
  CAF_CHECK_EQUAL(ready("hal"), 0u);
  CAF_CHECK(store_state().unacked.empty());
  for (auto& a : std::vector<caf::actor>{old_owner, successor, closing, open})
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(stored frames keep their order when the user moves while they are being written) {
  auto setup = std::make_shared<const user_setup>(user_setup{
    duration{std::chrono::minutes{1}}, 100, store, core.node_watch, drain_window{2, 1 << 20},
    nullptr});
  auto& st = store_state();
  for (auto text : {"S1", "S2", "S3"}) {
    json f{{"type", "private"}, {"from", "x"}, {"id", text}, {"data", text}};
    st.ready["ivy"].push_back({++st.next_tag, f.dump()});
  }
  auto written = std::make_shared<std::vector<std::string>>();
  auto node = sys.spawn(played_node, written, node_mode::holding);
  auto old_owner = sys.spawn(user, "ivy", caf::actor{}, setup);
  auto successor = sys.spawn(user, "ivy", caf::actor{}, setup);
  caf::anon_send(old_owner, attach_atom::value, node);
  sched.run();
  CAF_REQUIRE_EQUAL(data_of(*written), (std::vector<std::string>{"S1", "S2"})); // the window
  // S4 is stored behind them; then the user moves, S1 and S2 still in flight.
  envelope env;
  env.from = "x";
  env.data = R"("S4")";
  caf::anon_send(old_owner, caf::publish_atom::value, env);
  sched.run();
  CAF_REQUIRE_EQUAL(ready("ivy"), 1u); // S1-S3 were fetched together
  caf::anon_send(old_owner, handoff_atom::value, successor);
  sched.run();
  // S1 and S2 are written; S3 and S4 follow, in that order, whoever sends them.
  for (int round = 0; round < 4 && written->size() < 4; ++round) {
    caf::anon_send(node, caf::ok_atom::value, std::uint64_t{1});
    sched.run();
  }
  CAF_CHECK_EQUAL(data_of(*written), (std::vector<std::string>{"S1", "S2", "S3", "S4"}));
  caf::anon_send(node, caf::ok_atom::value, std::uint64_t{1});
  sched.run();
  CAF_CHECK_EQUAL(ready("ivy"), 0u);
  CAF_CHECK(store_state().unacked.empty());
  for (auto& a : std::vector<caf::actor>{old_owner, successor, node})
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(a message stored after bouncing goes out at once to a connection that is there) {
  auto a = connect("alice");
  auto g1 = connect("gina");
  auto g2 = connect("gina");
  g1.link->closing = true;
  g2.link->closing = true;
  // The frame bounces off both; before its store is confirmed, a new tab
  // attaches (it finds the flag "nothing stored" cleared and drains).
  caf::anon_send(a.conn, ws_frame_atom::value, send_to("gina", "late", 1).dump());
  auto g3 = connect("gina"); // runs everything
  auto got = g3.link->of_type("private");
  CAF_REQUIRE_EQUAL(got.size(), 1u);
  CAF_CHECK_EQUAL(got[0]["data"], "late");
  CAF_CHECK_EQUAL(ready("gina"), 0u);
}

CAF_TEST(stored messages are written a window at a time) {
  // The default queue limit of 4 MiB gives a window of 1 MiB: two messages
  // of 400 KB are in flight at once, not the whole fetch of ten.
  auto& st = store_state();
  for (int i = 1; i <= 10; ++i) {
    json f{{"type", "private"}, {"from", "x"}, {"id", std::to_string(i)},
           {"data", {{"n", i}, {"pad", std::string(400 * 1000, 'x')}}}};
    st.ready["erin"].push_back({++st.next_tag, f.dump()});
  }
  auto link = holding_link();
  connect("erin", {}, link);
  CAF_CHECK_EQUAL(link->held.size(), 2u);
  for (int written = 1; written <= 10; ++written) {
    link->settle_oldest(true);
    sched.run();
    CAF_CHECK_EQUAL(store_state().acked.size(), static_cast<size_t>(written));
    CAF_CHECK_LESS_OR_EQUAL(link->held.size(), 2u);
  }
  CAF_REQUIRE_EQUAL(link->frames.size(), 10u);
  for (int i = 1; i <= 10; ++i) {
    auto popped = link->pop();
    CAF_CHECK_EQUAL(popped["data"]["n"], i);
  }
  CAF_CHECK_EQUAL(ready("erin"), 0u);
}

CAF_TEST(a message stored after the last fetch of a drain is drained too and in order) {
  auto a = connect("alice");
  frame(a, send_to("fay", 1));
  store_state().hold_fetches = true;
  auto f = connect("fay"); // its drain's first fetch (message 1) is held
  release_held();       // 1 is written; the second fetch (empty) is held
  auto first = f.link->pop();
  CAF_CHECK_EQUAL(first["data"], 1);
  CAF_REQUIRE_EQUAL(store_state().held.size(), 1u);
  // While that fetch is on its way back, message 2 comes: stored behind.
  frame(a, send_to("fay", 2, 2));
  auto ack = a.link->pop();
  CAF_CHECK_EQUAL(ack["type"], "ack");
  store_state().hold_fetches = false;
  release_held(); // empty, but 2 was stored after it was asked for
  CAF_REQUIRE_EQUAL(f.link->frames.size(), 1u);
  auto second = f.link->pop();
  CAF_CHECK_EQUAL(second["data"], 2);
  CAF_CHECK_EQUAL(ready("fay"), 0u);
  // Later messages go straight to the connection, after 2.
  frame(a, send_to("fay", 3));
  CAF_REQUIRE_EQUAL(f.link->frames.size(), 1u);
  auto third = f.link->pop();
  CAF_CHECK_EQUAL(third["data"], 3);
}

CAF_TEST(a user whose stored messages were delivered gets private messages while the store is down) {
  auto a = connect("alice");
  auto g1 = connect("gus"); // its drain finds nothing stored
  store_state().down = true;
  auto g2 = connect("gus"); // a second tab: nothing to drain, so nothing to wait for
  frame(a, send_to("gus", "live", 4));
  auto ack = a.link->pop(); // delivered, not refused
  CAF_CHECK_EQUAL(ack, json::parse(R"({"type":"ack","id":4})"));
  for (auto* g : {&g1, &g2}) {
    auto f = g->link->pop();
    CAF_CHECK_EQUAL(f["data"], "live");
  }
}

CAF_TEST(a user who connects while the store is down gets newer messages refused until stored ones are delivered) {
  auto a = connect("alice");
  frame(a, send_to("hal", 1));
  store_state().down = true;
  auto h = connect("hal"); // cannot fetch 1
  frame(a, send_to("hal", 2, 2));
  auto err = a.link->pop();
  CAF_CHECK_EQUAL(err["code"], "unavailable");
  CAF_CHECK_EQUAL(err["id"], 2);
  CAF_CHECK(h.link->frames.empty());
  store_state().down = false;
  sched.trigger_timeouts(); // the drain's retry
  sched.run();
  auto first = h.link->pop();
  CAF_CHECK_EQUAL(first["data"], 1);
  frame(a, send_to("hal", 3));
  auto third = h.link->pop();
  CAF_CHECK_EQUAL(third["data"], 3);
}

CAF_TEST(a message stored while a user was away is drained on the next connection) {
  auto a = connect("alice");
  auto i1 = connect("ida"); // nothing stored
  close(i1);
  frame(a, send_to("ida", "while away")); // stored: the user actor must fetch again
  CAF_CHECK_EQUAL(ready("ida"), 1u);
  auto i2 = connect("ida");
  auto f = i2.link->pop();
  CAF_CHECK_EQUAL(f["data"], "while away");
  CAF_CHECK_EQUAL(ready("ida"), 0u);
}

CAF_TEST(an amqp message_id becomes the private message id so redeliveries keep it) {
  auto inbound = sys.spawn(amqp_inbound, core.router, caf::actor{});
  sched.run();
  for (int copy = 0; copy < 2; ++copy) // the broker redelivered it
    self->send(inbound, inbound_atom::value, std::uint64_t{1}, std::string{"user.erin"},
               std::string{"\"hello\""}, std::string{}, std::string{}, std::string{"order-42"});
  sched.run();
  auto e = connect("erin");
  for (int copy = 0; copy < 2; ++copy) {
    auto f = e.link->pop();
    CAF_CHECK_EQUAL(f["id"], "order-42");
    CAF_CHECK_EQUAL(f["data"], "hello");
  }
  caf::anon_send_exit(inbound, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(private messages to a connected user carry an id too) {
  auto a = connect("alice");
  auto b = connect("bob");
  frame(a, send_to("bob", "hi"));
  auto f = b.link->pop();
  CAF_CHECK_EQUAL(f["data"], "hi");
  CAF_CHECK(f["id"].is_string());
}

CAF_TEST_FIXTURE_SCOPE_END()

// -- inbound -------------------------------------------------------------------------

namespace {

struct fake_publisher_state {
  std::vector<std::tuple<std::string, std::string, std::string, std::map<std::string, std::string>>>
    published;
  bool down = false;
  static inline const char* name = "fake_publisher";
};

caf::behavior fake_publisher(caf::stateful_actor<fake_publisher_state>* self) {
  return {
    [self](caf::publish_atom, std::string& exchange, std::string& key, std::string& body,
           std::map<std::string, std::string>& headers) -> caf::result<caf::ok_atom> {
      if (self->state.down)
        return make_error(error_code::unavailable);
      self->state.published.emplace_back(exchange, key, body, headers);
      return caf::ok_atom::value;
    },
  };
}

struct inbound_fixture : node_fixture {
  caf::actor publisher;
  caf::actor inbound;

  inbound_fixture() {
    publisher = sys.spawn(fake_publisher);
    inbound = sys.spawn(amqp_inbound, core.router, publisher);
    sched.run();
  }

  ~inbound_fixture() {
    for (auto& a : {inbound, publisher})
      caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
    sched.run();
  }

  fake_publisher_state& published() {
    return deref<caf::stateful_actor<fake_publisher_state>>(publisher).state;
  }

  /// Hands one message to the inbound actor; returns its verdict (ack?).
  /// `from_type` is the `from` header's type: by default `string` when
  /// `from` is set, absent otherwise.
  bool handle(const std::string& key, const std::string& body, const std::string& from = "",
              std::uint64_t tag = 1, const std::string& message_id = "",
              std::optional<std::string> from_type = std::nullopt) {
    if (!from_type)
      from_type = from.empty() ? "" : "string";
    self->send(inbound, inbound_atom::value, tag, key, body, from, *from_type, message_id);
    sched.run();
    sched.trigger_timeouts(); // a negative verdict comes after a pause
    sched.run();
    bool ack = false;
    bool got = false;
    self->receive(
      [&](verdict_atom, std::uint64_t t, bool a) {
        CAF_CHECK_EQUAL(t, tag);
        ack = a;
        got = true;
      },
      caf::after(std::chrono::seconds{0}) >> [] {});
    CAF_REQUIRE(got);
    return ack;
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(amqp_inbound_tests, inbound_fixture)

CAF_TEST(room keys reach the room members from the from header and are acked) {
  auto m = connect("mia");
  frame(m, R"({"type":"join","room":"r1"})");
  m.link->pop(); // joined
  CAF_CHECK(handle("room.r1", R"( {"price": 3} )", "billing"));
  auto got = m.link->pop();
  CAF_CHECK_EQUAL(got, json::parse(R"({"type":"message","room":"r1","from":"billing","seq":1,"data":{"price":3}})"));
  // The body as published, but for the whitespace around it.
  CAF_CHECK(handle("room.r1", "\n {\"z\": 1, \"a\": 2.50}\t", "billing"));
  CAF_REQUIRE(!m.link->frames.empty());
  CAF_CHECK(m.link->frames.front().find(R"("data":{"z": 1, "a": 2.50}})") != std::string::npos);
}

CAF_TEST(user keys reach the user and default the sender to amqp) {
  auto u = connect("ulla");
  CAF_CHECK(handle("user.ulla", "[1,2]"));
  auto got = u.link->pop();
  CAF_CHECK(got.value("id", "").size() > 0); // the user actor's, none was given
  got.erase("id");
  CAF_CHECK_EQUAL(got, json::parse(R"({"type":"private","from":"amqp","data":[1,2]})"));
}

CAF_TEST(the broadcast key reaches everyone) {
  auto a = connect("a1");
  auto b = connect("b1");
  CAF_CHECK(handle("broadcast", "\"all\""));
  for (auto* c : {&a, &b}) {
    auto got = c->link->pop();
    CAF_CHECK_EQUAL(got, json::parse(R"({"type":"broadcast","from":"amqp","data":"all"})"));
  }
}

CAF_TEST(a body that is not JSON goes to the dead letter queue with the reason) {
  CAF_CHECK(handle("room.r1", "not json {", "svc"));
  CAF_REQUIRE_EQUAL(published().published.size(), 1u);
  auto& [exchange, key, body, headers] = published().published[0];
  CAF_CHECK_EQUAL(exchange, "");
  CAF_CHECK_EQUAL(key, "roomcast.dead");
  CAF_CHECK_EQUAL(body, "not json {");
  CAF_CHECK_EQUAL(headers["x-roomcast-reason"], "body is not JSON");
  CAF_CHECK_EQUAL(headers["x-roomcast-routing-key"], "room.r1");
  CAF_CHECK_EQUAL(headers["from"], "svc");
}

// The parser stops at a NUL: {"a":1}\0,"evil":true reached members as is.
CAF_TEST(a body with a NUL byte is dead lettered and a byte order mark is dropped) {
  auto m = connect("nia");
  frame(m, R"({"type":"join","room":"r1"})");
  m.link->pop(); // joined
  CAF_CHECK(handle("room.r1", std::string{"{\"a\":1}\0,\"evil\":true", 20}, "svc"));
  CAF_REQUIRE_EQUAL(published().published.size(), 1u);
  auto& headers = std::get<3>(published().published[0]);
  CAF_CHECK_EQUAL(headers["x-roomcast-reason"], "body is not JSON: it contains a NUL byte");
  CAF_CHECK(m.link->frames.empty());
  CAF_CHECK(handle("room.r1", "\xEF\xBB\xBF{\"a\":1}", "svc"));
  CAF_REQUIRE_EQUAL(m.link->frames.size(), 1u);
  auto got = m.link->pop(); // valid JSON: the mark is gone
  CAF_CHECK_EQUAL(got["data"], json::parse(R"({"a":1})"));
}

CAF_TEST(unknown keys and bad names are dead lettered) {
  CAF_CHECK(handle("orders.created", "1"));
  CAF_CHECK(handle("room.bad name", "1"));
  CAF_CHECK(handle("room.ok", "1", "bad sender!"));
  CAF_REQUIRE_EQUAL(published().published.size(), 3u);
  for (auto& p : published().published)
    CAF_CHECK_EQUAL(std::get<1>(p), "roomcast.dead");
}

CAF_TEST(a message_id that is not UTF-8 is dead lettered instead of failing the user) {
  auto u = connect("ulla");
  CAF_CHECK(handle("user.ulla", "\"x\"", "", 1, "\xff\xfe"));
  CAF_REQUIRE_EQUAL(published().published.size(), 1u);
  auto& dead = published().published[0];
  CAF_CHECK_EQUAL(std::get<1>(dead), "roomcast.dead");
  CAF_CHECK_EQUAL(std::get<3>(dead)["x-roomcast-reason"], "message_id is not UTF-8");
  CAF_CHECK(handle("user.ulla", "\"y\"", "", 2, "ok-1"));
  auto got = u.link->pop();
  CAF_CHECK_EQUAL(got["data"], "y");
}

CAF_TEST(an empty or non-string from header is dead lettered and only an absent one means amqp) {
  auto m = connect("mia");
  frame(m, R"({"type":"join","room":"r1"})");
  m.link->pop(); // joined
  CAF_CHECK(handle("room.r1", "1", "", 1, "", std::string{"string"}));
  for (auto type : {"number", "table", "boolean", "array"})
    CAF_CHECK(handle("room.r1", "2", "", 2, "", std::string{type}));
  CAF_REQUIRE_EQUAL(published().published.size(), 5u);
  auto reason = [&](std::size_t i) { return std::get<3>(published().published[i])["x-roomcast-reason"]; };
  CAF_CHECK_EQUAL(reason(0), "header 'from' is not 1 to 128 characters of [A-Za-z0-9_.:@-]");
  CAF_CHECK_EQUAL(reason(1), "header 'from' is not a string (type: number)");
  CAF_CHECK_EQUAL(reason(4), "header 'from' is not a string (type: array)");
  CAF_CHECK(handle("room.r1", "3"));
  auto got = m.link->pop();
  CAF_CHECK_EQUAL(got["from"], "amqp");
  CAF_CHECK_EQUAL(published().published.size(), 5u);
}

CAF_TEST(a dead letter that cannot be published is requeued) {
  published().down = true;
  CAF_CHECK(!handle("room.r1", "nope"));
}

CAF_TEST_FIXTURE_SCOPE_END()
