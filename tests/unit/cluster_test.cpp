#define CAF_SUITE cluster

// Membership changes, handoff and re-registration on two simulated nodes in
// one deterministic actor system: each "node" has its own core actors and a
// locator that places names over a shared member list, as the membership
// actor does over the network.

#include "actors/directory.hpp"
#include "fixture.hpp"


using namespace rc;
using namespace rc::test;
using nlohmann::json;

namespace {

/// Hands `c`'s connection publishes to `room` with data and id `first` to
/// `last`, without running them: they wait in its mailbox.
void queue_publishes(const node_fixture::client& c, const std::string& room, int first, int last) {
  for (int i = first; i <= last; ++i)
    caf::anon_send(c.conn, ws_frame_atom::value,
                   json{{"type", "publish"}, {"room", room}, {"data", i}, {"id", i}}.dump());
}

/// A name that `b` owns once both nodes are live.
std::string name_owned_by_b() {
  for (int i = 0;; ++i) {
    auto name = "room-" + std::to_string(i);
    if (owner_of(name, {"a", "b"}) == "b")
      return name;
  }
}

/// x, on b, in `room` (b owns it) with one message; then b leaves, and
/// only a has heard so far: what a request on a meets before b's handoff.
/// Returns x and the room's epoch.
std::pair<node_fixture::client, json> member_as_b_leaves(two_nodes& f, const std::string& room) {
  f.set_live({"a", "b"});
  auto x = f.connect(f.b, "x");
  f.frame(x, {{"type", "join"}, {"room", room}}); // the room lives on b
  auto epoch = x.link->pop()["epoch"];
  f.frame(x, {{"type", "publish"}, {"room", room}, {"data", 1}});
  f.view->live = {"a"};
  f.tell_view("a", {"a"});
  f.sched.run();
  return {x, epoch};
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(cluster_tests, two_nodes)

CAF_TEST(a room moves to a joining owner with its members seq and epoch) {
  auto room = name_owned_by_b();
  auto [x, y] = x_and_y_in(room);
  auto epoch = x.link->pop()["epoch"];
  for (int i = 1; i <= 3; ++i)
    frame(x, {{"type", "publish"}, {"room", room}, {"data", i}});
  CAF_CHECK_EQUAL(count(a.rooms), 1u);
  set_live({"a", "b"}); // b joins: the room belongs to b now
  CAF_CHECK_EQUAL(count(a.rooms), 0u);
  CAF_CHECK_EQUAL(count(b.rooms), 1u);
  y.link->frames.clear();
  frame(x, {{"type", "publish"}, {"room", room}, {"data", 4}, {"id", 1}});
  auto msgs = y.link->of_type("message");
  CAF_REQUIRE_EQUAL(msgs.size(), 1u);
  CAF_CHECK_EQUAL(msgs[0]["seq"], 4);
  CAF_CHECK(y.link->of_type("joined").empty()); // same epoch: no fresh joined
  frame(y, {{"type", "join"}, {"room", room}, {"id", 2}});
  auto again = y.link->of_type("joined");
  CAF_REQUIRE_EQUAL(again.size(), 1u);
  CAF_CHECK_EQUAL(again[0]["epoch"], epoch);
  CAF_CHECK_EQUAL(again[0]["seq"], 4);
}

CAF_TEST(publishes sent during a move keep their order) {
  auto room = name_owned_by_b();
  auto [x, y] = x_and_y_in(room);
  y.link->frames.clear();
  // Queue publishes, then the view change, then more publishes, all before
  // any of them runs.
  x.link->frames.clear();
  queue_publishes(x, room, 1, 5);
  view->live = {"a", "b"};
  std::map<std::string, caf::actor> rooms{{"a", a.rooms}, {"b", b.rooms}};
  caf::anon_send(a.rooms, view_atom::value, rooms, std::string{"a"});
  caf::anon_send(b.rooms, view_atom::value, rooms, std::string{"b"});
  queue_publishes(x, room, 6, 10);
  sched.run();
  auto msgs = y.link->of_type("message");
  CAF_REQUIRE_EQUAL(msgs.size(), 10u);
  // Acks too, including for publishes the old room passed to the new one.
  auto acks = x.link->of_type("ack");
  CAF_REQUIRE_EQUAL(acks.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    auto& m = msgs[static_cast<size_t>(i)];
    CAF_CHECK_EQUAL(m["data"], i + 1);
    CAF_CHECK_EQUAL(m["seq"], i + 1);
    CAF_CHECK_EQUAL(acks[static_cast<size_t>(i)]["id"], i + 1);
    CAF_CHECK_EQUAL(acks[static_cast<size_t>(i)]["seq"], i + 1);
  }
  CAF_CHECK_EQUAL(count(b.rooms), 1u);
}

CAF_TEST(relays re-register their members when the owner dies) {
  auto room = name_owned_by_b();
  set_live({"a", "b"});
  auto [x, y] = x_and_y_in(room);
  auto epoch = x.link->pop()["epoch"];
  y.link->frames.clear();
  CAF_CHECK_EQUAL(count(b.rooms), 1u);
  // Node b fails: its directory and rooms die; the membership drops it.
  fail_rooms_of_b();
  for (auto* c : {&x, &y}) {
    auto fresh = c->link->of_type("joined");
    CAF_REQUIRE_EQUAL(fresh.size(), 1u);
    CAF_CHECK_NOT_EQUAL(fresh[0]["epoch"], epoch);
    CAF_CHECK_EQUAL(fresh[0]["seq"], 0);
  }
  CAF_CHECK_EQUAL(count(a.rooms), 1u);
  y.link->frames.clear();
  frame(x, {{"type", "publish"}, {"room", room}, {"data", "after"}});
  auto msgs = y.link->of_type("message");
  CAF_REQUIRE_EQUAL(msgs.size(), 1u);
  CAF_CHECK_EQUAL(msgs[0]["seq"], 1);
}

CAF_TEST(every publish sent as the room node fails is answered) {
  auto room = name_owned_by_b();
  set_live({"a", "b"});
  auto [x, y] = x_and_y_in(room);
  x.link->frames.clear();
  y.link->frames.clear();
  // The publishes are on their way (in mailboxes) when b's rooms die.
  queue_publishes(x, room, 1, 5);
  fail_rooms_of_b();
  auto acks = x.link->of_type("ack");
  auto errors = x.link->of_type("error");
  CAF_CHECK_EQUAL(acks.size() + errors.size(), 5u);
  for (auto& e : errors)
    CAF_CHECK_EQUAL(e["code"], "unavailable");
  // What was acked was delivered, before the new room's fresh `joined`.
  auto msgs = y.link->of_type("message");
  CAF_CHECK_EQUAL(msgs.size(), acks.size());
  CAF_MESSAGE(acks.size() << " acked, " << errors.size() << " unavailable");
  // The room works again on its new owner.
  x.link->frames.clear();
  frame(x, {{"type", "publish"}, {"room", room}, {"data", "after"}, {"id", "after"}});
  auto after = x.link->of_type("ack");
  CAF_REQUIRE_EQUAL(after.size(), 1u);
  CAF_CHECK_EQUAL(after[0]["seq"], 1);
}

CAF_TEST(a directory forwards requests for names another node owns) {
  auto room = name_owned_by_b();
  set_live({"a", "b"});
  // Ask a's room directory directly, as a stale router might.
  self->send(a.rooms, caf::publish_atom::value, room, envelope{"api", "1", false, {}});
  sched.run();
  self->receive([](std::uint64_t seq) { CAF_CHECK_EQUAL(seq, 0u); }); // no room anywhere yet
  auto x = connect(a, "x");
  frame(x, {{"type", "join"}, {"room", room}});
  CAF_CHECK_EQUAL(count(a.rooms), 0u);
  CAF_CHECK_EQUAL(count(b.rooms), 1u);
  self->send(a.rooms, caf::publish_atom::value, room, envelope{"api", "1", false, {}});
  sched.run();
  self->receive([](std::uint64_t seq) { CAF_CHECK_EQUAL(seq, 1u); });
  CAF_CHECK_EQUAL(x.link->of_type("message").size(), 1u);
}

CAF_TEST(a user moves with its inbox and privates reach it on any node) {
  std::string name;
  for (int i = 0;; ++i) {
    name = "user-" + std::to_string(i);
    if (owner_of(name, {"a", "b"}) == "b")
      break;
  }
  auto x = connect(a, "x");
  frame(x, send_to(name, 1));
  frame(x, send_to(name, 2));
  CAF_CHECK_EQUAL(count(a.users), 2u); // x and the offline user
  set_live({"a", "b"}); // the offline user's inbox moves to b (x may too)
  auto x_moves = owner_of("x", {"a", "b"}) == "b";
  CAF_CHECK_EQUAL(count(b.users), x_moves ? 2u : 1u);
  CAF_CHECK_EQUAL(count(a.users), x_moves ? 0u : 1u);
  frame(x, send_to(name, 3));
  auto u = connect(a, name);
  auto got = u.link->of_type("private");
  CAF_REQUIRE_EQUAL(got.size(), 3u);
  for (int i = 0; i < 3; ++i)
    CAF_CHECK_EQUAL(got[static_cast<size_t>(i)]["data"], i + 1);
}

CAF_TEST(a tab that connects on another node while a live private message is on its way gets it first) {
  auto x = connect(a, "x");
  auto slow = holding_link();
  auto tab1 = connect(a, "bob", slow);
  frame(x, send_to("bob", 1));
  CAF_REQUIRE_EQUAL(slow->held.size(), 1u);
  auto tab2 = connect(b, "bob"); // node b attaches while 1 waits for tab1
  frame(x, send_to("bob", 2));
  // tab1 closes without writing 1 or 2: tab2 has them, in order.
  slow->begin_closing();
  slow->settle_oldest(false);
  slow->settle_oldest(false);
  sched.run();
  CAF_CHECK_EQUAL(tab2.link->private_data(), nlohmann::json::parse("[1,2]"));
  // Written on node b, neither is kept for a later connection.
  for (auto* tab : {&tab1, &tab2})
    caf::anon_send(tab->conn, ws_closed_atom::value);
  sched.run();
  auto tab3 = connect(a, "bob");
  CAF_CHECK(tab3.link->of_type("private").empty());
}

CAF_TEST(a node that attaches again while its old tab holds a frame gets no newer one first) {
  auto x = connect(a, "x");
  auto old_tab = holding_link();
  auto other = holding_link();
  auto tab0 = connect(a, "bob", old_tab);
  auto tab1 = connect(b, "bob", other);
  frame(x, send_to("bob", 1));
  old_tab->closing = true;
  caf::anon_send(tab0.conn, ws_closed_atom::value); // node a detaches; tab0 still holds 1
  sched.run();
  frame(x, send_to("bob", 2)); // to node b only
  auto tab2 = connect(a, "bob"); // node a attaches again
  // Neither old tab writes: 1 and 2 reach tab2 in order.
  old_tab->settle_oldest(false);
  sched.run();
  other->begin_closing();
  other->settle_oldest(false);
  other->settle_oldest(false);
  sched.run();
  CAF_CHECK_EQUAL(tab2.link->private_data(), nlohmann::json::parse("[1,2]"));
}

CAF_TEST(a user moving while its inbox is written keeps what was not written and the order) {
  auto name = name_owned_by("b", "user-");
  auto x = connect(a, "x");
  for (int i = 1; i <= 6; ++i)
    frame(x, send_to(name, i));
  auto link = holding_link();
  auto u = connect(a, name, link); // the inbox is on its way: 6 frames in flight
  CAF_REQUIRE_EQUAL(link->held.size(), 6u);
  set_live({"a", "b"}); // the move waits for those frames (at most a second)
  for (int i = 0; i < 3; ++i) { // 1-3 written
    link->settle_oldest(true);
    sched.run();
  }
  link->closing = true; // then the tab closes: 4-6 are not written,
  link->hold_writes = false; // and it refuses what comes next at once
  for (int i = 0; i < 3; ++i) {
    link->settle_oldest(false);
    sched.run();
  }
  CAF_CHECK_EQUAL(count(b.users), owner_of("x", {"a", "b"}) == "b" ? 2u : 1u);
  frame(x, send_to(name, 7)); // refused by the closing tab too
  caf::anon_send(u.conn, ws_closed_atom::value); // the tab is gone
  sched.run();
  // The next connection gets 4-6 from the old owner, before 7.
  auto u2 = connect(a, name);
  auto first = link->of_type("private");
  CAF_REQUIRE_EQUAL(first.size(), 3u);
  for (int i = 0; i < 3; ++i)
    CAF_CHECK_EQUAL(first[static_cast<size_t>(i)]["data"], i + 1);
  auto got = u2.link->of_type("private");
  CAF_REQUIRE_EQUAL(got.size(), 4u);
  for (int i = 0; i < 4; ++i)
    CAF_CHECK_EQUAL(got[static_cast<size_t>(i)]["data"], i + 4);
}

CAF_TEST(a user moving while a slow reader is behind goes after a second with what was not sent yet) {
  auto name = name_owned_by("b", "user-");
  auto x = connect(a, "x");
  // 150 frames of 20 KB: a batch is 100 frames, and the drain window (a
  // quarter of the 4 MiB queue limit) lets about 50 of them go at once.
  std::string pad(20000, 'p');
  for (int i = 1; i <= 150; ++i)
    frame(x, send_to(name, {{"i", i}, {"pad", pad}}));
  CAF_REQUIRE_EQUAL(x.link->of_type("ack").size(), 0u); // sends carry no id: no acks
  CAF_REQUIRE_EQUAL(x.link->of_type("error").size(), 0u);
  auto link = holding_link();
  auto u = connect(a, name, link);
  auto in_flight = link->held.size();
  CAF_REQUIRE(in_flight > 10u && in_flight < 100u);
  set_live({"a", "b"});
  CAF_CHECK_EQUAL(count(b.users), owner_of("x", {"a", "b"}) == "b" ? 1u : 0u);
  // The reader is behind: after a second the move goes without the frames
  // on their way, and those not sent yet go along with the user.
  sched.advance_time(std::chrono::seconds{1});
  sched.run();
  CAF_CHECK_EQUAL(count(b.users), owner_of("x", {"a", "b"}) == "b" ? 2u : 1u);
  // The new owner writes them behind the frames in flight, in order.
  for (int i = 0; i < 1000 && !link->held.empty(); ++i) {
    link->settle_oldest(true);
    sched.run();
  }
  auto got = link->of_type("private");
  CAF_REQUIRE_EQUAL(got.size(), 150u);
  for (int i = 0; i < 150; ++i)
    CAF_CHECK_EQUAL(got[static_cast<size_t>(i)]["data"]["i"], i + 1);
  caf::anon_send(u.conn, ws_closed_atom::value);
  sched.run();
}

CAF_TEST(two moves of a user that cross end at once with one owner and no copies) {
  auto name = name_owned_by("b", "user-");
  auto x = connect(a, name_owned_by("a", "x-"));
  frame(x, send_to(name, 1, 1));
  frame(x, send_to(name, 2, 2));
  auto link = holding_link();
  auto on_a = connect(a, name, link); // 1 and 2 on their way to it
  CAF_REQUIRE_EQUAL(link->held.size(), 2u);
  set_live({"a", "b"}); // b joins: the user's move to b waits for 1 and 2
  auto on_b = connect(b, name); // b owns the user now and starts one afresh
  frame(x, send_to(name, 3, 3));
  // b leaves before the move is done: b hands its user to a as a hands
  // its own to b, and neither waits for the other.
  set_live({"a"});
  frame(x, send_to(name, 4, 4));
  while (!link->held.empty()) {
    link->settle_oldest(true);
    sched.run();
  }
  link->hold_writes = false; // it writes what comes next at once
  sched.advance_time(std::chrono::seconds{1});
  sched.run();
  // Within a second (not move_timeout): one owner, on a, every send
  // acknowledged, and each tab got each message once.
  CAF_CHECK_EQUAL(count(a.users), 2u); // x and the user
  CAF_CHECK_EQUAL(count(b.users), 0u);
  CAF_CHECK_EQUAL(x.link->of_type("ack").size(), 4u);
  CAF_CHECK_EQUAL(x.link->of_type("error").size(), 0u);
  CAF_CHECK_EQUAL(link->private_data(), json::array({1, 2, 4}));
  CAF_CHECK_EQUAL(on_b.link->private_data(), json::array({3, 4}));
  frame(x, send_to(name, 5, 5));
  CAF_CHECK_EQUAL(link->private_data(), json::array({1, 2, 4, 5}));
  CAF_CHECK_EQUAL(on_b.link->private_data(), json::array({3, 4, 5}));
}

CAF_TEST(two moves of a room that cross end at once with one room of both members) {
  auto room = name_owned_by_b();
  auto x = connect(a, "x");
  frame(x, {{"type", "join"}, {"room", room}}); // the room starts on a
  // b joins, and only b has heard so far: y's join starts the room afresh
  // on b.
  view->live = {"a", "b"};
  tell_view("b", {"a", "b"});
  sched.run();
  auto y = connect(b, "y");
  frame(y, {{"type", "join"}, {"room", room}});
  CAF_REQUIRE_EQUAL(count(a.rooms), 1u);
  CAF_REQUIRE_EQUAL(count(b.rooms), 1u);
  // Then a hears that b joined as b leaves: each hands its room to the other.
  view->live = {"a"};
  tell_view("a", {"a", "b"});
  tell_view("b", {"a"});
  sched.run();
  set_live({"a"}); // the views agree again
  sched.advance_time(std::chrono::seconds{1});
  sched.run();
  CAF_CHECK_EQUAL(count(a.rooms), 1u);
  CAF_CHECK_EQUAL(count(b.rooms), 0u);
  x.link->frames.clear();
  y.link->frames.clear();
  frame(x, {{"type", "publish"}, {"room", room}, {"data", "from x"}, {"id", 1}});
  frame(y, {{"type", "publish"}, {"room", room}, {"data", "from y"}, {"id", 2}});
  // Each gets the other's message once (not its own) and its ack.
  for (auto [c, other] : {std::pair{&x, "from y"}, std::pair{&y, "from x"}}) {
    auto msgs = c->link->of_type("message");
    CAF_REQUIRE_EQUAL(msgs.size(), 1u);
    CAF_CHECK_EQUAL(msgs[0]["data"], other);
    CAF_CHECK_EQUAL(c->link->of_type("ack").size(), 1u);
    CAF_CHECK_EQUAL(c->link->of_type("error").size(), 0u);
  }
}

CAF_TEST(publishes that wait out a failed move keep their order) {
  // A's room is handed to a new owner that holds the adopt until the test
  // fails it. x's publishes 1-5 wait for the move; 6 reaches the room right
  // behind the failure. Before, what waited was sent to the room again when
  // the move failed, behind 6, which then took seq 1.
  auto adopt = std::make_shared<caf::response_promise>();
  auto new_owner = sys.spawn([adopt](caf::event_based_actor* self) -> caf::behavior {
    self->set_default_handler(caf::drop);
    return {
      [self, adopt](adopt_atom, const std::string&, room_snapshot&) {
        *adopt = self->make_response_promise();
        return *adopt;
      },
      [adopt](caf::close_atom) {
        adopt->deliver(make_error(error_code::unavailable, "the new owner failed"));
      },
    };
  });
  auto room = name_owned_by("b", "failed-");
  auto x = connect(a, "x");
  frame(x, {{"type", "join"}, {"room", room}}); // the room starts on a
  x.link->frames.clear();
  view->live = {"a", "b"};
  std::map<std::string, caf::actor> rooms{{"a", a.rooms}, {"b", new_owner}};
  caf::anon_send(a.rooms, view_atom::value, rooms, std::string{"a"});
  sched.run();
  CAF_REQUIRE(adopt->pending());
  queue_publishes(x, room, 1, 5);
  sched.run();
  CAF_CHECK(x.link->of_type("ack").empty()); // waiting for the move
  queue_publishes(x, room, 6, 6);
  caf::anon_send(new_owner, caf::close_atom::value);
  sched.run_once(); // x's connection hands 6 to the relay
  sched.run_once(); // the move fails
  sched.run();      // the relay hands 6 to the room, behind the failure
  auto acks = x.link->of_type("ack");
  CAF_REQUIRE_EQUAL(acks.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    CAF_CHECK_EQUAL(acks[static_cast<size_t>(i)]["id"], i + 1);
    CAF_CHECK_EQUAL(acks[static_cast<size_t>(i)]["seq"], i + 1);
  }
  caf::anon_send_exit(new_owner, caf::exit_reason::kill);
}

CAF_TEST(a room that dies while it moves leaves no move behind) {
  // Before, the directory kept the move of an actor that died before it
  // answered the handoff, and refused every later move of the name that
  // crossed it.
  auto room_of_adopt = std::make_shared<caf::actor>();
  auto new_owner = sys.spawn([room_of_adopt](caf::event_based_actor* self) -> caf::behavior {
    self->set_default_handler(caf::drop);
    return {
      [self, room_of_adopt](adopt_atom, const std::string&, room_snapshot&) {
        *room_of_adopt = caf::actor_cast<caf::actor>(self->current_sender());
        return self->make_response_promise(); // never answered
      },
    };
  });
  auto room = name_owned_by("b", "dies-");
  auto x = connect(a, "x");
  frame(x, {{"type", "join"}, {"room", room}});
  view->live = {"a", "b"};
  std::map<std::string, caf::actor> rooms{{"a", a.rooms}, {"b", new_owner}};
  caf::anon_send(a.rooms, view_atom::value, rooms, std::string{"a"});
  sched.run();
  CAF_REQUIRE(*room_of_adopt);
  auto& moving = deref<caf::stateful_actor<directory_state>>(a.rooms).state.moving;
  CAF_CHECK_EQUAL(moving.count(room), 1u);
  caf::anon_send_exit(*room_of_adopt, caf::exit_reason::kill);
  sched.run();
  CAF_CHECK_EQUAL(moving.count(room), 0u);
  CAF_CHECK_EQUAL(count(a.rooms), 0u);
  caf::anon_send_exit(new_owner, caf::exit_reason::kill);
}

CAF_TEST(a room that refuses to stop while the view changes moves to its owner) {
  // An idle room reports itself idle (step j) as a member's relay attaches,
  // so it refuses the stop its directory asks for; b joins the view (step
  // k) before that answer. Before,
  // a view that came during the stop skipped the room, which then refused to
  // stop and stayed on a while b started a second room of that name.
  int iterations = 0;
  for (int j = 0; j < 16; ++j)
    for (int k = j; k < j + 12; ++k) {
      ++iterations;
      set_live({"a"});
      auto room = name_owned_by("b", "idle-" + std::to_string(j) + "-" + std::to_string(k) + "-");
      auto x = connect(a, "x");
      frame(x, {{"type", "join"}, {"room", room}});
      frame(x, {{"type", "leave"}, {"room", room}});
      sched.advance_time(cfg.room_idle_timeout); // the relay ends
      sched.run();
      // The room's idle timer is due in a second: y's requests, started
      // now, time out much later.
      sched.advance_time(cfg.room_idle_timeout - std::chrono::seconds{1});
      sched.run();
      auto link = std::make_shared<recording_link>();
      identity who;
      who.user = "y";
      auto y = sys.spawn(connection, client_link_ptr{link}, who, a.context_for("n", cfg));
      caf::anon_send(y, ws_frame_atom::value, json{{"type", "join"}, {"room", room}}.dump());
      for (int i = 0; i <= k; ++i) {
        if (i == j)
          sched.advance_time(std::chrono::seconds{1}); // the room reports itself idle
        if (i == k) {
          view->live = {"a", "b"};
          tell_view("a", {"a", "b"});
          tell_view("b", {"a", "b"});
        }
        sched.try_run_once();
      }
      sched.run();
      sched.advance_time(std::chrono::seconds{1}); // a crossed or failed move looks again
      sched.run();
      if (count(a.rooms) != 0 || count(b.rooms) != 1)
        CAF_FAIL("with j = " << j << ", k = " << k << ": " << count(a.rooms) << " rooms on a, "
                             << count(b.rooms) << " on b");
      caf::anon_send(y, ws_frame_atom::value, json{{"type", "leave"}, {"room", room}}.dump());
      sched.run();
      for (int i = 0; i < 3; ++i) {
        sched.advance_time(cfg.room_idle_timeout);
        sched.run();
      }
    }
  CAF_CHECK_EQUAL(iterations, 192);
}

CAF_TEST(a join that reaches the new owner before the room does keeps the epoch) {
  auto room = name_owned_by_b();
  auto [x, epoch] = member_as_b_leaves(*this, room);
  // y's join on a (which has no relay for the room yet) starts the room
  // there before b's handoff comes.
  auto y = connect(a, "y");
  frame(y, {{"type", "join"}, {"room", room}});
  tell_view("b", {"a"});
  sched.run();
  CAF_CHECK_EQUAL(count(a.rooms), 1u);
  CAF_CHECK_EQUAL(count(b.rooms), 0u);
  CAF_CHECK(x.link->of_type("joined").empty()); // no new epoch for the room's members
  // y gets the young room's joined, then the room's own.
  auto joined = y.link->of_type("joined");
  CAF_REQUIRE_EQUAL(joined.size(), 2u);
  CAF_CHECK_EQUAL(joined[1]["epoch"], epoch);
  CAF_CHECK_EQUAL(joined[1]["seq"], 1);
  frame(y, {{"type", "publish"}, {"room", room}, {"data", 2}});
  auto msgs = x.link->of_type("message");
  CAF_REQUIRE_EQUAL(msgs.size(), 1u);
  CAF_CHECK_EQUAL(msgs[0]["seq"], 2);
}

CAF_TEST(a publish of a service that reaches the new owner before the room does reaches the members) {
  auto room = name_owned_by_b();
  auto [x, epoch] = member_as_b_leaves(*this, room);
  // y's join and a service's publish on a come before b's handoff, and
  // start the room there (takeover_window).
  auto y = connect(a, "y");
  frame(y, {{"type", "join"}, {"room", room}});
  self->send(a.rooms, caf::publish_atom::value, room, envelope{"api", "2", false, {}});
  sched.run();
  self->receive([](std::uint64_t seq) { CAF_CHECK_EQUAL(seq, 1u); }); // accepted
  tell_view("b", {"a"});
  sched.run();
  CAF_CHECK_EQUAL(count(a.rooms), 1u);
  CAF_CHECK_EQUAL(count(b.rooms), 0u);
  // x, in the moved room, gets it next in its epoch; y had it, and is told
  // the room it is in now.
  CAF_CHECK(x.link->of_type("joined").empty());
  auto msgs = x.link->of_type("message");
  CAF_REQUIRE_EQUAL(msgs.size(), 1u);
  CAF_CHECK_EQUAL(msgs[0]["data"], 2);
  CAF_CHECK_EQUAL(msgs[0]["seq"], 2);
  CAF_CHECK_EQUAL(y.link->of_type("message").size(), 1u);
  auto joined = y.link->of_type("joined");
  CAF_REQUIRE_EQUAL(joined.size(), 2u);
  CAF_CHECK_EQUAL(joined[1]["epoch"], epoch);
  CAF_CHECK_EQUAL(joined[1]["seq"], 2);
  x.link->frames.clear();
  y.link->frames.clear();
  frame(x, {{"type", "publish"}, {"room", room}, {"data", 3}});
  auto next = y.link->of_type("message");
  CAF_REQUIRE_EQUAL(next.size(), 1u);
  CAF_CHECK_EQUAL(next[0]["seq"], 3);
}

CAF_TEST(a user forgets a node whose registry ended and keeps its privates) {
  set_live({"a", "b"});
  auto name = name_owned_by("a", "user-");
  auto u = connect(b, name);
  CAF_CHECK_EQUAL(count(a.users), 1u);
  // Node b's registry ends (its node failed): a's node watch tells the
  // user, which then has no node left and goes idle.
  caf::anon_send_exit(b.local_users, caf::exit_reason::kill);
  sched.run();
  sched.trigger_timeouts();
  sched.run();
  CAF_CHECK_EQUAL(count(a.users), 0u);
  // A private for the user now waits in a fresh user's inbox for its next
  // connection.
  self->send(a.users, caf::publish_atom::value, name, envelope{"api", "1", false, {}});
  sched.run();
  self->receive([](std::uint64_t nodes) { CAF_CHECK_EQUAL(nodes, 0u); });
  auto again = connect(a, name);
  CAF_CHECK_EQUAL(again.link->of_type("private").size(), 1u);
  CAF_CHECK_EQUAL(u.link->of_type("private").size(), 0u);
}

CAF_TEST(a registry re-attaches every user whose owner failed) {
  set_live({"a", "b"});
  std::vector<std::string> names;
  std::vector<node_fixture::client> clients;
  for (int i = 0; names.size() < 3; ++i) {
    auto name = "user-" + std::to_string(i);
    if (owner_of(name, {"a", "b"}) == "a") {
      names.push_back(name);
      clients.push_back(connect(b, name));
    }
  }
  CAF_CHECK_EQUAL(count(a.users), 3u);
  // Node a fails with its users; b's registry gets three DOWNs and attaches
  // each user to b, its owner now.
  view->live = {"b"};
  caf::anon_send_exit(a.users, caf::exit_reason::kill);
  set_live({"b"});
  sched.trigger_timeouts(); // re-attaches that reached a's dead directory
  sched.run();
  CAF_REQUIRE_EQUAL(count(b.users), 3u);
  for (std::size_t i = 0; i < names.size(); ++i) {
    self->send(b.users, caf::publish_atom::value, names[i], envelope{"api", "1", false, {}});
    sched.run();
    self->receive([](std::uint64_t nodes) { CAF_CHECK_EQUAL(nodes, 1u); });
    CAF_CHECK_EQUAL(clients[i].link->of_type("private").size(), 1u);
  }
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST_FIXTURE_SCOPE(directory_view_tests, test_coordinator_fixture<test_config>)

// A node that has just started must not own every name: in a cluster its
// directories hold requests until the membership's first view.
CAF_TEST(a clustered directory holds requests until its first view) {
  auto spawned = std::make_shared<int>(0);
  auto dir = sys.spawn(directory, directory_config{
    [spawned](caf::local_actor* d, const std::string&, bool) {
      ++*spawned;
      return d->spawn([]() -> caf::behavior {
        return {[](caf::publish_atom, envelope&) { return std::uint64_t{7}; }};
      });
    },
    true, "test", std::chrono::milliseconds{0}, true});
  self->send(dir, caf::publish_atom::value, std::string{"r"}, envelope{});
  sched.run();
  CAF_CHECK_EQUAL(*spawned, 0);
  self->send(dir, view_atom::value, std::map<std::string, caf::actor>{{"me", dir}},
             std::string{"me"});
  sched.run();
  CAF_CHECK_EQUAL(*spawned, 1);
  bool answered = false;
  self->receive([&](std::uint64_t n) { answered = n == 7; },
                caf::after(std::chrono::seconds(0)) >> [] {});
  CAF_CHECK(answered);
  caf::anon_send_exit(dir, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST_FIXTURE_SCOPE_END()
