#define CAF_SUITE room

#include "fixture.hpp"

#include "actors/relay.hpp"
#include "actors/room.hpp"
#include "common/metrics.hpp"

using namespace rc;
using namespace rc::test;
using nlohmann::json;

namespace {

json join(const std::string& room, int id) {
  return {{"type", "join"}, {"room", room}, {"id", id}};
}
json publish(const std::string& room, json data, bool echo = false) {
  json j{{"type", "publish"}, {"room", room}, {"data", data}};
  if (echo)
    j["echo"] = true;
  return j;
}

/// Stands in for a relay: records the seq of every message the room sends it.
struct seq_recorder_state {
  std::vector<std::uint64_t> seqs;
  std::vector<std::uint64_t> restarts; ///< the seq of each `restart_atom`
  static inline const char* name = "seq_recorder";
};

caf::behavior seq_recorder(caf::stateful_actor<seq_recorder_state>* self) {
  return {
    [self](fanout_atom, std::uint64_t seq, const std::string&, const caf::actor_addr&, bool) {
      self->state.seqs.push_back(seq);
    },
    [](deliver_atom, const std::string&) {},
    [self](restart_atom, const std::string&, std::uint64_t seq) {
      self->state.restarts.push_back(seq);
    },
  };
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(room_tests, node_fixture)

CAF_TEST(after a failover a relay that attaches late gets the new epoch from seq 1) {
  auto room = sys.spawn(rc::room, std::string{"failed-over"}, caf::actor{}, room_setup{});
  auto early = sys.spawn(seq_recorder);
  auto late = sys.spawn(seq_recorder);
  auto newcomer = sys.spawn(seq_recorder);
  auto attach = [&](const caf::actor& relay, std::vector<member_info> members) {
    std::uint64_t seq = 99;
    self->send(room, attach_atom::value, relay_members{relay, std::move(members)});
    sched.run();
    self->receive([&](std::uint64_t s, const std::string&, const caf::actor&) { seq = s; },
                  caf::after(std::chrono::seconds{0}) >> [] { CAF_FAIL("no answer to attach"); });
    return seq;
  };
  auto publish_one = [&] {
    caf::anon_send(room, caf::publish_atom::value, envelope{"svc", "1", false, {}});
    sched.run();
  };
  // The old room's members come back: the first relay with members at seq 0.
  CAF_CHECK_EQUAL(attach(early, {{1, "x"}}), 0u);
  publish_one();
  publish_one();
  // Another survivor's relay noticed later: it starts at 0 too, and gets 1, 2.
  CAF_CHECK_EQUAL(attach(late, {{2, "y"}}), 0u);
  publish_one();
  auto seqs = [&](const caf::actor& a) {
    return deref<caf::stateful_actor<seq_recorder_state>>(a).state.seqs;
  };
  CAF_CHECK_EQUAL(seqs(early), (std::vector<std::uint64_t>{1, 2, 3}));
  CAF_CHECK_EQUAL(seqs(late), (std::vector<std::uint64_t>{1, 2, 3}));
  // A relay without members (someone joins now) starts where the room is.
  CAF_CHECK_EQUAL(attach(newcomer, {}), 3u);
  publish_one();
  CAF_CHECK_EQUAL(seqs(newcomer), (std::vector<std::uint64_t>{4}));
  for (auto& a : {room, early, late, newcomer})
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(a late relay is told the current seq when the catch up log ended before its replay) {
  auto room = sys.spawn(rc::room, std::string{"failed-over-busy"}, caf::actor{}, room_setup{});
  auto early = sys.spawn(seq_recorder);
  auto late = sys.spawn(seq_recorder);
  self->send(room, attach_atom::value, relay_members{early, {{1, "x"}}});
  sched.run();
  caf::anon_send(room, caf::publish_atom::value, envelope{"svc", "1", false, {}});
  sched.run();
  self->send(room, attach_atom::value, relay_members{late, {{2, "y"}}});
  // Before the room replays to the late relay, more than the log holds.
  for (int i = 0; i < 1001; ++i)
    caf::anon_send(room, caf::publish_atom::value, envelope{"svc", "1", false, {}});
  sched.run();
  std::uint64_t reply = 99;
  for (int i = 0; i < 2; ++i) // the two attach answers
    self->receive([&](std::uint64_t s, const std::string&, const caf::actor&) { reply = s; },
                  caf::after(std::chrono::seconds{0}) >> [] { CAF_FAIL("no answer to attach"); });
  CAF_CHECK_EQUAL(reply, 0u); // a replay was due
  auto& st = deref<caf::stateful_actor<seq_recorder_state>>(late).state;
  CAF_CHECK(st.seqs.empty());
  CAF_CHECK_EQUAL(st.restarts, std::vector<std::uint64_t>{1002});
  auto early_seqs = deref<caf::stateful_actor<seq_recorder_state>>(early).state.seqs.size();
  CAF_CHECK_EQUAL(early_seqs, 1002u);
  for (auto& a : {room, early, late})
    caf::anon_send_exit(a, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(join answers joined with seq and epoch of the room) {
  auto a = connect("alice");
  frame(a, join("r1", 1));
  auto j = a.link->pop();
  CAF_CHECK_EQUAL(j["type"], "joined");
  CAF_CHECK_EQUAL(j["room"], "r1");
  CAF_CHECK_EQUAL(j["seq"], 0);
  CAF_CHECK_EQUAL(j["id"], 1);
  CAF_CHECK(j["epoch"].is_string() && !j["epoch"].get<std::string>().empty());
}

CAF_TEST(publish reaches every member except the sender unless echo is set) {
  auto a = connect("alice");
  auto b = connect("bob");
  auto c = connect("carol");
  for (auto* cl : {&a, &b, &c}) {
    frame(*cl, join("r1", 1));
    cl->link->pop();
  }
  frame(a, publish("r1", {{"n", 1}}));
  CAF_CHECK(a.link->frames.empty());
  for (auto* cl : {&b, &c}) {
    auto m = cl->link->pop();
    CAF_CHECK_EQUAL(m, json::parse(R"({"type":"message","room":"r1","from":"alice","seq":1,"data":{"n":1}})"));
  }
  frame(a, publish("r1", "again", true));
  {
    auto popped = a.link->pop();
    CAF_CHECK_EQUAL(popped["seq"], 2);
  }
  {
    auto popped = b.link->pop();
    CAF_CHECK_EQUAL(popped["data"], "again");
  }
  {
    auto popped = c.link->pop();
    CAF_CHECK_EQUAL(popped["seq"], 2);
  }
}

CAF_TEST(fan-out shares one encoded frame and seq counts per room) {
  auto a = connect("alice");
  auto b = connect("bob");
  frame(a, join("r1", 1));
  frame(b, join("r1", 1));
  frame(b, join("r2", 2));
  frame(a, join("r2", 2));
  a.link->frames.clear();
  b.link->frames.clear();
  for (int i = 1; i <= 3; ++i)
    frame(a, publish("r1", i));
  frame(a, publish("r2", "x"));
  auto msgs = b.link->of_type("message");
  CAF_REQUIRE_EQUAL(msgs.size(), 4u);
  CAF_CHECK_EQUAL(msgs[0]["seq"], 1);
  CAF_CHECK_EQUAL(msgs[2]["seq"], 3);
  CAF_CHECK_EQUAL(msgs[3]["room"], "r2");
  CAF_CHECK_EQUAL(msgs[3]["seq"], 1);
  // A later joiner learns the room's current seq.
  auto c = connect("carol");
  frame(c, join("r1", 5));
  {
    auto popped = c.link->pop();
    CAF_CHECK_EQUAL(popped["seq"], 3);
  }
}

CAF_TEST(publish with an id is acked with the message seq) {
  auto a = connect("alice");
  frame(a, join("r1", 1));
  a.link->pop();
  auto p = publish("r1", 1);
  p["id"] = "p1";
  frame(a, p);
  {
    auto popped = a.link->pop();
    CAF_CHECK_EQUAL(popped, json::parse(R"({"type":"ack","id":"p1","seq":1})"));
  }
}

CAF_TEST(an echoed publish reaches its sender before the ack) {
  auto a = connect("alice");
  frame(a, join("r1", 1));
  a.link->pop();
  for (int i = 1; i <= 3; ++i) {
    auto p = publish("r1", i, true);
    p["id"] = i;
    caf::anon_send(a.conn, ws_frame_atom::value, p.dump());
  }
  sched.run();
  CAF_REQUIRE_EQUAL(a.link->frames.size(), 6u);
  for (int i = 1; i <= 3; ++i) {
    auto m = a.link->pop();
    CAF_CHECK_EQUAL(m["type"], "message");
    CAF_CHECK_EQUAL(m["seq"], i);
    auto ack = a.link->pop();
    CAF_CHECK_EQUAL(ack, json({{"type", "ack"}, {"id", i}, {"seq", i}}));
  }
}

CAF_TEST(leave stops delivery and answers left) {
  auto a = connect("alice");
  auto b = connect("bob");
  frame(a, join("r1", 1));
  frame(b, join("r1", 1));
  b.link->frames.clear();
  frame(b, json{{"type", "leave"}, {"room", "r1"}, {"id", 9}});
  {
    auto popped = b.link->pop();
    CAF_CHECK_EQUAL(popped, json::parse(R"({"type":"left","room":"r1","id":9})"));
  }
  frame(a, publish("r1", 1));
  CAF_CHECK(b.link->frames.empty());
  frame(b, json{{"type", "leave"}, {"room", "r1"}, {"id", 10}});
  auto e = b.link->pop();
  CAF_CHECK_EQUAL(e["code"], "not_member");
  CAF_CHECK_EQUAL(e["id"], 10);
}

CAF_TEST(a leave right behind a publish waits for its echo and ack) {
  auto a = connect("alice");
  frame(a, join("r1", 1));
  a.link->pop();
  auto p = publish("r1", "last words", true);
  p["id"] = "p";
  caf::anon_send(a.conn, ws_frame_atom::value, p.dump()); // both before anything runs
  caf::anon_send(a.conn, ws_frame_atom::value,
                 json{{"type", "leave"}, {"room", "r1"}, {"id", "l"}}.dump());
  caf::anon_send(a.conn, ws_frame_atom::value, publish("r1", "too late").dump());
  sched.run();
  CAF_REQUIRE_EQUAL(a.link->frames.size(), 4u);
  auto echo = a.link->pop();
  CAF_CHECK_EQUAL(echo["data"], "last words");
  auto ack = a.link->pop();
  CAF_CHECK_EQUAL(ack, json({{"type", "ack"}, {"id", "p"}, {"seq", 1}}));
  auto left = a.link->pop();
  CAF_CHECK_EQUAL(left, json::parse(R"({"type":"left","room":"r1","id":"l"})"));
  auto refused = a.link->pop();
  CAF_CHECK_EQUAL(refused["code"], "not_member");
}

CAF_TEST(a closed connection is removed from its rooms) {
  auto a = connect("alice");
  auto b = connect("bob");
  frame(a, join("r1", 1));
  frame(b, join("r1", 1));
  close(b);
  auto before = b.link->frames.size();
  frame(a, publish("r1", 1));
  CAF_CHECK_EQUAL(b.link->frames.size(), before);
}

CAF_TEST(an empty room stops after the idle timeout and a new one gets a new epoch) {
  auto a = connect("alice");
  frame(a, join("r1", 1));
  auto first = a.link->pop();
  frame(a, publish("r1", 1, true));
  a.link->pop();
  frame(a, json{{"type", "leave"}, {"room", "r1"}});
  a.link->pop();
  CAF_CHECK(metrics::global().rooms.load() >= 1);
  // First the idle relay stops (detaching from the room), then the idle room.
  for (int round = 0; round < 2; ++round) {
    sched.trigger_timeouts();
    sched.run();
  }
  self->send(core.relays, caf::get_atom::value);
  sched.run();
  self->receive([](std::uint64_t n) { CAF_CHECK_EQUAL(n, 0u); });
  self->send(core.rooms, caf::get_atom::value);
  sched.run();
  self->receive([](std::uint64_t n) { CAF_CHECK_EQUAL(n, 0u); });
  frame(a, join("r1", 2));
  auto second = a.link->pop();
  CAF_CHECK_EQUAL(second["seq"], 0);
  CAF_CHECK_NOT_EQUAL(second["epoch"], first["epoch"]);
}

CAF_TEST(a room with members does not stop when its idle timer fires) {
  auto a = connect("alice");
  frame(a, join("r1", 1));
  a.link->pop();
  sched.trigger_timeouts();
  sched.run();
  self->send(core.rooms, caf::get_atom::value);
  sched.run();
  self->receive([](std::uint64_t n) { CAF_CHECK_EQUAL(n, 1u); });
  frame(a, publish("r1", 1, true));
  {
    auto popped = a.link->pop();
    CAF_CHECK_EQUAL(popped["seq"], 1);
  }
}

CAF_TEST(a relay that fails answers its waiting publishes and closes its members) {
  auto a = connect("alice");
  auto b = connect("bob");
  frame(a, join("r1", 1));
  frame(b, join("r1", 1));
  a.link->frames.clear();
  auto relay = deref<caf::stateful_actor<connection_state>>(a.conn).state.rooms.at("r1");
  auto& waiting = deref<caf::stateful_actor<relay_state>>(relay).state.pending;
  // Run until the relay has handed the publish on, not until the room answers.
  auto p = publish("r1", 1);
  p["id"] = "p1";
  caf::anon_send(a.conn, ws_frame_atom::value, p.dump());
  while (waiting.empty() && sched.try_run_once())
    ;
  CAF_REQUIRE_EQUAL(waiting.size(), 1u);
  caf::anon_send_exit(relay, caf::exit_reason::kill);
  sched.run();
  auto errors = a.link->of_type("error");
  CAF_REQUIRE_EQUAL(errors.size(), 1u);
  CAF_CHECK_EQUAL(errors[0]["id"], "p1");
  CAF_CHECK_EQUAL(errors[0]["code"], "unavailable");
  CAF_CHECK(a.link->of_type("ack").empty());
  for (auto* c : {&a, &b})
    CAF_CHECK_EQUAL(c->link->closed, std::vector<close_reason>{close_reason::server_error});
}

CAF_TEST(a relay whose members are gone stops only once their publishes are answered) {
  auto a = connect("alice");
  frame(a, join("r1", 1));
  auto relay = deref<caf::stateful_actor<connection_state>>(a.conn).state.rooms.at("r1");
  auto p = publish("r1", 1);
  p["id"] = "p1";
  caf::anon_send(a.conn, ws_frame_atom::value, p.dump());
  // Closed right behind the publish (a leave would wait for its answer).
  caf::anon_send(a.conn, ws_closed_atom::value);
  auto& st = deref<caf::stateful_actor<relay_state>>(relay).state;
  while (!(st.members.empty() && !st.pending.empty()) && sched.try_run_once())
    ;
  CAF_REQUIRE(st.members.empty() && !st.pending.empty());
  // The directory asks the relay to stop while the room has not answered.
  self->send(relay, stop_atom::value);
  sched.run();
  self->receive([](bool stopped) { CAF_CHECK(!stopped); },
                caf::after(std::chrono::seconds{0}) >> [] { CAF_FAIL("the relay did not answer"); });
  CAF_CHECK(a.link->of_type("ack").size() == 1u);
  self->send(relay, stop_atom::value);
  sched.run();
  self->receive([](bool stopped) { CAF_CHECK(stopped); },
                caf::after(std::chrono::seconds{0}) >> [] { CAF_FAIL("the relay did not answer"); });
  CAF_CHECK(a.link->of_type("error").empty());
}

CAF_TEST(a relay asked to stop while a join waits for the room stays for it) {
  // The directory asks an idle relay to stop at every step k of a new
  // member's join. Before, a relay whose join was on its way to the room
  // stopped all the same, and the joiner never got an answer.
  for (int k = 0; k < 12; ++k) {
    auto room = "s" + std::to_string(k);
    auto a = connect("alice");
    frame(a, join(room, 1));
    auto relay = deref<caf::stateful_actor<connection_state>>(a.conn).state.rooms.at(room);
    frame(a, json{{"type", "leave"}, {"room", room}});
    auto b = connect("bob");
    caf::anon_send(b.conn, ws_frame_atom::value, join(room, 2).dump());
    for (int i = 0; i < k && sched.try_run_once(); ++i)
      ;
    self->send(relay, stop_atom::value);
    sched.run();
    self->receive([](bool) {}, caf::after(std::chrono::seconds{0}) >> [] {});
    auto answers = b.link->of_type("joined").size() + b.link->of_type("error").size();
    if (answers != 1)
      CAF_FAIL("bob's join got " << answers << " answers when the stop came at step " << k);
    if (!b.link->of_type("joined").empty())
      frame(b, json{{"type", "leave"}, {"room", room}});
  }
}

CAF_TEST(a relay told of a move while it attaches releases the room that moved) {
  // The relay's locator never answers, so it is attaching when a room that
  // holds it (an attach that timed out, then carried out) moves. Before, it
  // released only the room it had a handle of, none: that room waited.
  auto releases = std::make_shared<int>(0);
  auto old_room = sys.spawn([releases](caf::event_based_actor* self) -> caf::behavior {
    self->set_default_handler(caf::drop);
    return {[releases](release_atom, const caf::actor&) { ++*releases; }};
  });
  auto never = sys.spawn([](caf::event_based_actor* self) -> caf::behavior {
    return {[self](locate_atom, room_atom, const std::string&) {
      return self->make_response_promise(); // never answered
    }};
  });
  auto r = sys.spawn(relay, std::string{"moving-while-attaching"}, caf::actor{}, never,
                     duration{std::chrono::seconds{30}});
  sched.run();
  auto successor = sys.spawn([](caf::event_based_actor* self) -> caf::behavior {
    self->set_default_handler(caf::drop);
    return {[](caf::ok_atom) {}};
  });
  caf::send_as(old_room, r, moved_atom::value, successor);
  sched.run();
  CAF_CHECK_EQUAL(*releases, 1);
  for (auto& a : {caf::actor{r}, old_room, never, successor})
    caf::anon_send_exit(a, caf::exit_reason::kill);
  sched.run();
}

CAF_TEST_FIXTURE_SCOPE_END()
