#define CAF_SUITE user

#include <regex>
#include "fixture.hpp"

#include "actors/user.hpp"

using namespace rc;
using namespace rc::test;
using nlohmann::json;

namespace {

struct small_inbox_fixture : node_fixture {
  static settings make() {
    settings s;
    s.limits.inbox_limit = 3;
    return s;
  }
  small_inbox_fixture() : node_fixture(make()) {}
};

/// Queue limits of 8 frames and 4000 bytes: a drain window of 2 frames and
/// 1000 bytes (a quarter of each).
struct small_queue_fixture : node_fixture {
  static settings make() {
    settings s;
    s.limits.max_queue_frames = 8;
    s.limits.max_queue_bytes = 4000;
    return s;
  }
  small_queue_fixture() : node_fixture(make()) {}
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(user_tests, node_fixture)

CAF_TEST(a private message reaches every connection of the user) {
  auto a = connect("alice");
  auto b1 = connect("bob");
  auto b2 = connect("bob");
  frame(a, send_to("bob", {{"hi", true}}, 1));
  {
    auto popped = a.link->pop();
    CAF_CHECK_EQUAL(popped, json::parse(R"({"type":"ack","id":1})"));
  }
  std::vector<std::string> ids;
  for (auto* b : {&b1, &b2}) {
    auto popped = b->link->pop();
    CAF_REQUIRE(popped.contains("id"));
    ids.push_back(popped["id"].get<std::string>());
    popped.erase("id");
    CAF_CHECK_EQUAL(popped, json::parse(R"({"type":"private","from":"alice","data":{"hi":true}})"));
  }
  // One message, one id on every tab: `<epoch>-<n>`.
  CAF_CHECK_EQUAL(ids[0], ids[1]);
  CAF_CHECK(std::regex_match(ids[0], std::regex{"[0-9a-z]{10}-1"}));
}

CAF_TEST(messages for an offline user are delivered in order when the user connects) {
  auto a = connect("alice");
  for (int i = 1; i <= 5; ++i)
    frame(a, send_to("carol", i, i));
  CAF_CHECK_EQUAL(a.link->of_type("ack").size(), 5u);
  auto c = connect("carol"); // connect() consumed the welcome
  for (int i = 1; i <= 5; ++i)
    {
      auto popped = c.link->pop();
      CAF_CHECK_EQUAL(popped["data"], i);
    }
  // Newer messages come after the inbox, and the inbox is not replayed twice.
  frame(a, send_to("carol", 6));
  {
    auto popped = c.link->pop();
    CAF_CHECK_EQUAL(popped["data"], 6);
  }
  auto c2 = connect("carol");
  CAF_CHECK(c2.link->frames.empty());
}

CAF_TEST(a user who leaves every connection gets later messages in the inbox) {
  auto a = connect("alice");
  auto b = connect("bob");
  close(b);
  frame(a, send_to("bob", "while away"));
  auto b2 = connect("bob");
  {
    auto popped = b2.link->pop();
    CAF_CHECK_EQUAL(popped["data"], "while away");
  }
}

CAF_TEST(the node watch forgets a registry once its users have no connection there) {
  auto a = connect("alice");
  auto a2 = connect("alice");
  auto b = connect("bob");
  CAF_CHECK_EQUAL(watched(), 2u); // one registry, held by two users
  close(a);
  CAF_CHECK_EQUAL(watched(), 2u); // alice still has a connection here
  close(a2);
  close(b);
  CAF_CHECK_EQUAL(watched(), 0u);
}

CAF_TEST(a private message refused by a closing socket waits for the next connection) {
  auto a = connect("alice");
  auto b = connect("bob");
  b.link->closing = true; // its session is closing; the actors do not know yet
  frame(a, send_to("bob", "in between"));
  CAF_CHECK(b.link->frames.empty());
  auto b2 = connect("bob");
  {
    auto popped = b2.link->pop();
    CAF_CHECK_EQUAL(popped["data"], "in between");
  }
}

// Before, a live message counted as delivered once a session queued it:
// the frames a client's close (or a slow consumer's) dropped from the
// queue were lost.
CAF_TEST(live private messages a closing connection did not write wait for the next in order) {
  auto a = connect("alice");
  auto link = holding_link();
  auto b = connect("bob", {}, link);
  for (int i = 1; i <= 4; ++i)
    frame(a, send_to("bob", i));
  CAF_REQUIRE_EQUAL(link->held.size(), 4u);
  link->settle_oldest(true); // 1 written
  sched.run();
  // The session closes while writing 2 (refusing new frames from now on):
  // it reports the queued 3 and 4 first.
  link->begin_closing();
  link->settle_at(1, false);
  link->settle_at(1, false);
  sched.run();
  link->settle_oldest(false); // then 2
  sched.run();
  close(b);
  auto again = connect("bob");
  CAF_CHECK_EQUAL(again.link->private_data(), json::parse("[2,3,4]"));
  CAF_CHECK_EQUAL(link->frames.size(), 1u); // 1 went to the first connection only
}

CAF_TEST(a message for a user whose last tab closed waits behind live ones the tab did not write) {
  auto a = connect("alice");
  auto link = holding_link();
  auto b = connect("bob", {}, link);
  frame(a, send_to("bob", 1));
  frame(a, send_to("bob", 2));
  CAF_REQUIRE_EQUAL(link->held.size(), 2u);
  link->begin_closing();
  close(b); // gone before its session reports 1 and 2
  frame(a, send_to("bob", 3, 3));
  CAF_CHECK_EQUAL(a.link->of_type("ack").size(), 1u);
  link->settle_oldest(false);
  link->settle_oldest(false);
  sched.run();
  auto again = connect("bob");
  CAF_CHECK_EQUAL(again.link->private_data(), json::parse("[1,2,3]"));
}

CAF_TEST(a live private message written by one tab is not kept again for another that failed it) {
  auto a = connect("alice");
  auto slow = holding_link();
  auto b1 = connect("bob", {}, slow);
  auto b2 = connect("bob");
  frame(a, send_to("bob", "once"));
  CAF_CHECK_EQUAL(b2.link->of_type("private").size(), 1u);
  slow->begin_closing();
  slow->settle_oldest(false); // b1 closes without writing it
  sched.run();
  close(b1);
  close(b2);
  auto b3 = connect("bob");
  CAF_CHECK(b3.link->of_type("private").empty());
}

CAF_TEST(a tab that connects while a live private message is on its way gets it before newer ones) {
  auto a = connect("alice");
  auto slow = holding_link();
  auto b1 = connect("bob", {}, slow);
  frame(a, send_to("bob", 1));
  CAF_REQUIRE_EQUAL(slow->held.size(), 1u);
  auto b2 = connect("bob"); // on the same node, while 1 waits for b1
  frame(a, send_to("bob", 2));
  // b1 closes without writing 1 or 2: b2 has them, in order.
  slow->begin_closing();
  slow->settle_oldest(false);
  slow->settle_oldest(false);
  sched.run();
  CAF_CHECK_EQUAL(b2.link->private_data(), json::parse("[1,2]"));
  // Written by b2, neither is kept for a later connection.
  close(b1);
  close(b2);
  auto b3 = connect("bob");
  CAF_CHECK(b3.link->of_type("private").empty());
}

CAF_TEST(a message sent while an older one waits behind live frames does not overtake it) {
  auto a = connect("alice");
  auto slow = holding_link();
  auto b1 = connect("bob", {}, slow);
  frame(a, send_to("bob", 1));
  slow->begin_closing();
  close(b1); // gone before its session reports 1
  frame(a, send_to("bob", 2)); // kept, behind 1
  auto b2 = connect("bob");
  frame(a, send_to("bob", 3)); // behind 2, not live to b2
  slow->settle_oldest(false);
  sched.run();
  CAF_CHECK_EQUAL(b2.link->private_data(), json::parse("[1,2,3]"));
}

CAF_TEST(a joining tab gets no live frame ahead of an older one its node returned) {
  auto a = connect("alice");
  auto slow = holding_link();
  auto b1 = connect("bob", {}, slow);
  frame(a, send_to("bob", 1));
  frame(a, send_to("bob", 2));
  CAF_REQUIRE_EQUAL(slow->held.size(), 2u);
  // b1 begins to close: it fails 1 (which goes back to the inbox, and
  // bounces off b1 again) while it still holds 2.
  slow->begin_closing();
  slow->settle_oldest(false);
  sched.run();
  auto b2 = connect("bob"); // on the same node: 1 comes first, then 2
  slow->settle_oldest(false);
  sched.run();
  CAF_CHECK_EQUAL(b2.link->private_data(), json::parse("[1,2]"));
}

CAF_TEST(a live private message whose write takes long is not sent twice) {
  auto a = connect("alice");
  auto link = holding_link();
  auto b = connect("bob", {}, link);
  frame(a, send_to("bob", "slow"));
  CAF_REQUIRE_EQUAL(link->held.size(), 1u);
  sched.trigger_timeouts(); // the reader is behind: waited for
  sched.run();
  CAF_CHECK(link->frames.empty());
  link->settle_oldest(true); // written at last
  sched.run();
  CAF_CHECK_EQUAL(link->frames.size(), 1u);
  close(b);
  auto again = connect("bob");
  CAF_CHECK(again.link->of_type("private").empty());
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST_FIXTURE_SCOPE(user_inbox_limit_tests, small_inbox_fixture)

CAF_TEST(a full inbox refuses with unavailable and keeps what it accepted) {
  auto a = connect("alice");
  for (int i = 1; i <= 4; ++i)
    frame(a, send_to("dave", i, i));
  auto acks = a.link->of_type("ack");
  auto errors = a.link->of_type("error");
  CAF_CHECK_EQUAL(acks.size(), 3u);
  CAF_REQUIRE_EQUAL(errors.size(), 1u);
  CAF_CHECK_EQUAL(errors[0]["code"], "unavailable");
  CAF_CHECK_EQUAL(errors[0]["id"], 4);
  auto d = connect("dave");
  for (int i = 1; i <= 3; ++i)
    {
      auto popped = d.link->pop();
      CAF_CHECK_EQUAL(popped["data"], i);
    }
  CAF_CHECK(d.link->frames.empty());
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST(logs name our errors instead of printing their number) {
  // "cannot fetch stored messages (retrying): error(7, 'roomcast')" said nothing.
  CAF_CHECK_EQUAL(log_text(make_error(error_code::unavailable, "no broker")),
                  "unavailable: no broker");
  CAF_CHECK_EQUAL(log_text(make_error(error_code::unavailable)), "unavailable");
  auto theirs = caf::make_error(caf::sec::request_timeout);
  CAF_CHECK_EQUAL(log_text(theirs), caf::to_string(theirs));
}

/// Room for two of the messages below in all inboxes of the node.
struct small_inbox_memory_fixture : node_fixture {
  static settings make() {
    settings s;
    s.limits.inbox_memory = 380;
    return s;
  }
  small_inbox_memory_fixture() : node_fixture(make()) {}
};

CAF_TEST_FIXTURE_SCOPE(user_inbox_memory_tests, small_inbox_memory_fixture)

// Before, --inbox-limit bounded each user only: private messages to ever
// new offline users grew the node's memory without end.
CAF_TEST(the inboxes of all users share the inbox memory of the node) {
  auto a = connect("alice");
  std::string text(100, 'x'); // a frame of ~170 bytes, with its id
  frame(a, send_to("u1", text, 1));
  frame(a, send_to("u2", text, 2));
  frame(a, send_to("u3", text, 3)); // another user, but the node is full
  CAF_CHECK_EQUAL(a.link->of_type("ack").size(), 2u);
  auto errors = a.link->of_type("error");
  CAF_REQUIRE_EQUAL(errors.size(), 1u);
  CAF_CHECK_EQUAL(errors[0]["code"], "unavailable");
  CAF_CHECK_EQUAL(errors[0]["id"], 3);
  CAF_CHECK_EQUAL(errors[0]["message"], "this node's inboxes are full");
  // Written messages give their memory back.
  auto u1 = connect("u1");
  auto got = u1.link->of_type("private");
  CAF_CHECK_EQUAL(got.size(), 1u);
  a.link->frames.clear();
  frame(a, send_to("u3", text, 4));
  CAF_CHECK_EQUAL(a.link->of_type("ack").size(), 1u);
  CAF_CHECK(a.link->of_type("error").empty());
}

// Before, messages waiting behind live frames were counted only once kept:
// each one fitted the budget, however many waited.
CAF_TEST(messages waiting behind live frames count against the inbox memory) {
  auto a = connect("alice");
  auto link = holding_link();
  auto b = connect("bob", {}, link);
  std::string text(100, 'x');
  frame(a, send_to("bob", "live " + text));
  CAF_REQUIRE_EQUAL(link->held.size(), 1u);
  link->begin_closing();
  close(b); // the live frame is still on its way
  for (int i = 1; i <= 3; ++i)
    frame(a, send_to("bob", "waits " + text, i));
  CAF_CHECK_EQUAL(a.link->of_type("ack").size(), 2u);
  auto errors = a.link->of_type("error");
  CAF_REQUIRE_EQUAL(errors.size(), 1u);
  CAF_CHECK_EQUAL(errors[0]["id"], 3);
  CAF_CHECK_EQUAL(errors[0]["message"], "this node's inboxes are full");
  // The live frame comes back: accepted before, so kept over the budget.
  link->settle_oldest(false);
  sched.run();
  auto again = connect("bob");
  auto got = again.link->private_data();
  CAF_REQUIRE_EQUAL(got.size(), 3u);
  CAF_CHECK_EQUAL(got[0], "live " + text);
  CAF_CHECK_EQUAL(got[1], "waits " + text);
  CAF_CHECK_EQUAL(got[2], "waits " + text);
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST_FIXTURE_SCOPE(user_drain_window_tests, small_queue_fixture)

// Before, the whole inbox was queued to the socket at once: 200 waiting
// messages of 60 KB closed the new connection as a slow consumer, and the
// frames dropped with its queue were lost.
CAF_TEST(the inbox is written a window at a time and in order) {
  auto a = connect("alice");
  for (int i = 1; i <= 10; ++i)
    frame(a, send_to("bob", i));
  auto link = holding_link();
  auto b = connect("bob", {}, link);
  CAF_CHECK_EQUAL(link->held.size(), 2u); // the window: 2 frames
  frame(a, send_to("bob", 11)); // newer: behind the inbox, not around it
  CAF_CHECK_EQUAL(link->held.size(), 2u);
  for (int written = 1; written <= 11; ++written) {
    link->settle_oldest(true);
    sched.run();
    CAF_CHECK_LESS_OR_EQUAL(link->held.size(), 2u);
  }
  CAF_CHECK(link->held.empty());
  CAF_REQUIRE_EQUAL(link->frames.size(), 11u);
  for (int i = 1; i <= 11; ++i) {
    auto popped = b.link->pop();
    CAF_CHECK_EQUAL(popped["data"], i);
  }
  // The inbox is empty now: newer messages go straight to the socket.
  frame(a, send_to("bob", 12));
  CAF_REQUIRE_EQUAL(link->held.size(), 1u);
  link->settle_oldest(true);
  sched.run();
  auto newer = b.link->pop();
  CAF_CHECK_EQUAL(newer["data"], 12);
}

// Before, a write not confirmed within 30 s counted as failed: the frame
// went back and out again while the session still held it (a duplicate,
// out of order).
CAF_TEST(a slow write of the inbox is waited for and never sent twice) {
  auto a = connect("alice");
  for (int i = 1; i <= 4; ++i)
    frame(a, send_to("bob", i));
  auto link = holding_link();
  connect("bob", {}, link);
  CAF_CHECK_EQUAL(link->held.size(), 2u);
  sched.trigger_timeouts(); // however long the writes take
  sched.run();
  sched.trigger_timeouts();
  sched.run();
  CAF_CHECK_EQUAL(link->held.size(), 2u);
  while (!link->held.empty()) {
    link->settle_oldest(true);
    sched.run();
  }
  CAF_REQUIRE_EQUAL(link->frames.size(), 4u);
  for (int i = 1; i <= 4; ++i) {
    auto popped = link->pop();
    CAF_CHECK_EQUAL(popped["data"], i);
  }
}

CAF_TEST(large waiting messages are written one at a time) {
  auto a = connect("alice");
  std::string big(700, 'x'); // two would exceed the window's 1000 bytes
  for (int i = 1; i <= 3; ++i)
    frame(a, send_to("bob", {{"n", i}, {"pad", big}}));
  auto link = holding_link();
  connect("bob", {}, link);
  for (int i = 1; i <= 3; ++i) {
    CAF_REQUIRE_EQUAL(link->held.size(), 1u);
    link->settle_oldest(true);
    sched.run();
  }
  CAF_CHECK(link->held.empty());
  CAF_CHECK_EQUAL(link->frames.size(), 3u);
}

CAF_TEST(inbox frames a closing connection did not write wait for the next in order) {
  auto a = connect("alice");
  for (int i = 1; i <= 6; ++i)
    frame(a, send_to("bob", i));
  auto link = holding_link();
  auto b = connect("bob", {}, link);
  link->settle_oldest(true); // 1 written
  sched.run();
  link->settle_oldest(true); // 2 written
  sched.run();
  link->settle_oldest(false); // 3 not: the socket is closing
  sched.run();
  CAF_REQUIRE_EQUAL(link->held.size(), 1u);
  link->settle_oldest(false); // 4, sent in the same window, neither
  sched.run();
  CAF_CHECK(link->held.empty()); // nothing more is sent to it
  close(b);
  sched.trigger_timeouts(); // the retry finds no connection
  sched.run();
  auto again = connect("bob");
  CAF_CHECK_EQUAL(again.link->private_data(), json::parse("[3,4,5,6]"));
  CAF_CHECK_EQUAL(link->frames.size(), 2u);
}

CAF_TEST_FIXTURE_SCOPE_END()

namespace {

/// Plays a user's node and its new owner at once: `deliver` is refused (the
/// tab is closing), and `adopt` records the frames handed over, answering
/// with itself as the successor.
caf::behavior closing_node_and_owner(caf::event_based_actor* self,
                                     std::shared_ptr<std::vector<std::string>> adopted) {
  return {
    [](deliver_atom, const std::string&, const std::string&, confirm_atom) {
      return std::uint64_t{0};
    },
    [self, adopted](adopt_atom, const std::string&, user_snapshot& snap) {
      adopted->insert(adopted->end(), snap.inbox.begin(), snap.inbox.end());
      return caf::actor_cast<caf::actor>(self);
    },
  };
}

/// Plays a directory (or a new owner) that takes every snapshot it is
/// handed, recording the frames, and answers with `successor` (itself if
/// none).
caf::behavior adopting(caf::event_based_actor* self,
                       std::shared_ptr<std::vector<std::string>> adopted, caf::actor successor) {
  return {
    [self, adopted, successor](adopt_atom, const std::string&, user_snapshot& snap) {
      adopted->insert(adopted->end(), snap.inbox.begin(), snap.inbox.end());
      return successor ? successor : caf::actor_cast<caf::actor>(self);
    },
  };
}

/// A private message from alice to the user actor, as the router hands it on.
envelope private_from_alice(const char* data) {
  envelope env;
  env.from = "alice";
  env.data = data;
  return env;
}

/// A user actor of its own, "bob" (no directory, no store), for tests that
/// play its nodes and its new owner themselves.
struct lone_user_fixture : node_fixture {
  caf::actor spawn_bob() {
    return spawn_bob(100, nullptr);
  }
  caf::actor spawn_bob(std::uint64_t inbox_limit, std::shared_ptr<inbox_budget> budget) {
    auto setup = std::make_shared<const user_setup>(
      user_setup{duration{std::chrono::minutes{1}}, inbox_limit, caf::actor{}, core.node_watch,
                 drain_window{}, std::move(budget)});
    return sys.spawn(user, "bob", directory, setup);
  }
  /// The directory of bob's node (none unless a test sets one).
  caf::actor directory;
  /// Hands bob the state a predecessor sends in a move, and lets it settle.
  void adopt(const caf::actor& bob, user_snapshot snap) {
    self->send(bob, adopt_atom::value, std::string{"bob"}, std::move(snap));
    sched.run();
  }
  /// A node that answers for its writes only when a test tells it to,
  /// attached to `bob`; `texts` gets what it is asked to write.
  caf::actor attach_answering(const caf::actor& bob,
                              std::shared_ptr<std::vector<std::string>> texts) {
    auto node = sys.spawn(answering_node, std::move(texts));
    self->send(bob, attach_atom::value, node);
    sched.run();
    return node;
  }
  /// A node whose sockets write everything, attached to `bob`: its next
  /// connection; `texts` gets what it writes.
  caf::actor attach_writing(const caf::actor& bob,
                            std::shared_ptr<std::vector<std::string>> texts) {
    auto node = sys.spawn(played_node, std::move(texts), node_mode::writes);
    self->send(bob, attach_atom::value, node);
    sched.run();
    return node;
  }
  void stop(std::initializer_list<caf::actor> actors) {
    for (auto& a : actors)
      self->send_exit(a, caf::exit_reason::user_shutdown);
    sched.run();
  }
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(user_move_tests, lone_user_fixture)

CAF_TEST(a private message that bounces off a closing tab during a move reaches the successor) {
  auto adopted = std::make_shared<std::vector<std::string>>();
  auto other = sys.spawn(closing_node_and_owner, adopted);
  auto bob = spawn_bob();
  self->send(bob, attach_atom::value, other);
  sched.run();
  // The message goes out to the tab; the move starts before the tab refuses it.
  self->send(bob, caf::publish_atom::value, private_from_alice(R"("in between")"));
  self->send(bob, handoff_atom::value, other);
  sched.run();
  CAF_REQUIRE_EQUAL(adopted->size(), 1u);
  CAF_CHECK(adopted->front().find("in between") != std::string::npos);
  stop({bob, other});
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST_FIXTURE_SCOPE(user_adopt_tests, lone_user_fixture)

CAF_TEST(frames a predecessor hands on stay ahead of a batch in flight that fails) {
  auto texts = std::make_shared<std::vector<std::string>>();
  auto node = sys.spawn(played_node, texts, node_mode::holding);
  auto bob = spawn_bob();
  // The move brings S1 and S2, which go out to the tab at once.
  adopt(bob, user_snapshot{"bob", {"S1", "S2"}, {node}});
  CAF_REQUIRE_EQUAL(*texts, (std::vector<std::string>{"S1", "S2"}));
  // The predecessor hands on F1, older: its tab did not write it.
  adopt(bob, user_snapshot{"bob", {"F1"}, {}});
  // The tab closes: S1 and S2 are not written either.
  self->send(node, caf::ok_atom::value, std::uint64_t{0});
  sched.run();
  texts->clear();
  self->send(bob, retry_atom::value); // the drain's retry
  sched.run();
  CAF_CHECK_EQUAL(*texts, (std::vector<std::string>{"F1", "S1", "S2"}));
  self->send(node, caf::ok_atom::value, std::uint64_t{1});
  sched.run();
  stop({bob, node});
}

CAF_TEST(live frames a registry had not confirmed when it ended wait for the next connection in order) {
  auto texts = std::make_shared<std::vector<std::string>>();
  auto node = sys.spawn(played_node, texts, node_mode::holding);
  auto bob = spawn_bob();
  self->send(bob, attach_atom::value, node);
  sched.run();
  for (auto data : {R"("L1")", R"("L2")"})
    self->send(bob, caf::publish_atom::value, private_from_alice(data));
  sched.run();
  CAF_REQUIRE_EQUAL(texts->size(), 2u); // on their way, unconfirmed
  self->send_exit(node, caf::exit_reason::kill); // its node failed
  sched.run();
  auto next = std::make_shared<std::vector<std::string>>();
  auto other = attach_writing(bob, next);
  CAF_REQUIRE_EQUAL(next->size(), 2u);
  CAF_CHECK(next->at(0).find("L1") != std::string::npos);
  CAF_CHECK(next->at(1).find("L2") != std::string::npos);
  // The dead node may have written them: each comes again as it was, its id
  // included, so that a client can drop the copy.
  CAF_CHECK_EQUAL(*next, *texts);
  CAF_CHECK(json::parse(next->at(0))["id"] != json::parse(next->at(1))["id"]);
  stop({bob, other});
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST_FIXTURE_SCOPE(user_late_adopt_tests, lone_user_fixture)

CAF_TEST(frames a predecessor hands on late keep their order ahead of the snapshot) {
  auto texts = std::make_shared<std::vector<std::string>>();
  auto node = sys.spawn(played_node, texts, node_mode::holding);
  auto bob = spawn_bob();
  // The move brings S1 for an offline user; then two tabs refuse L1 and L2,
  // older than S1, one after the other.
  adopt(bob, user_snapshot{"bob", {"S1"}, {}});
  adopt(bob, user_snapshot{"bob", {"L1"}, {}, true});
  adopt(bob, user_snapshot{"bob", {"L2"}, {}, true});
  self->send(bob, attach_atom::value, node);
  sched.run();
  CAF_CHECK_EQUAL(*texts, (std::vector<std::string>{"L1", "L2", "S1"}));
  self->send(node, caf::ok_atom::value, std::uint64_t{1});
  sched.run();
  stop({bob, node});
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST_FIXTURE_SCOPE(user_adopt_limit_tests, lone_user_fixture)

// A move never drops what the old owner accepted, even when the successor's
// inbox limits are smaller; they refuse new messages until it drains.
CAF_TEST(a move hands on the whole inbox over the limits of the successor which then refuses new messages) {
  auto budget = std::make_shared<inbox_budget>(300);
  auto bob = spawn_bob(2, budget);
  std::string big(200, 'x');
  adopt(bob, user_snapshot{"bob", {"A" + big, "B" + big, "C" + big}, {}});
  CAF_CHECK_EQUAL(budget->used.load(), 603);
  bool refused = false;
  self->send(bob, caf::publish_atom::value, envelope{"alice", R"("new")", false, {}});
  sched.run();
  self->receive([&](std::uint64_t) {},
                [&](caf::error& e) { refused = e == error_code::unavailable; },
                caf::after(std::chrono::seconds{0}) >> [] { CAF_FAIL("no answer to publish"); });
  CAF_CHECK(refused);
  auto texts = std::make_shared<std::vector<std::string>>();
  auto node = sys.spawn(played_node, texts, node_mode::holding);
  self->send(bob, attach_atom::value, node);
  sched.run();
  CAF_REQUIRE_EQUAL(texts->size(), 3u);
  CAF_CHECK_EQUAL(texts->at(0).front(), 'A');
  CAF_CHECK_EQUAL(texts->at(2).front(), 'C');
  self->send(node, caf::ok_atom::value, std::uint64_t{1});
  sched.run();
  CAF_CHECK_EQUAL(budget->used.load(), 0);
  stop({bob, node});
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST_FIXTURE_SCOPE(user_answer_tests, lone_user_fixture)

// Before, live frames were numbered from 0 again once none was on its way:
// n2's late answer for L1 then settled L2, which no socket had written, and
// L2 was lost. (A number past the end crashed the node.)
CAF_TEST(a late answer for a settled live frame does not settle a newer one) {
  auto t1 = std::make_shared<std::vector<std::string>>();
  auto t2 = std::make_shared<std::vector<std::string>>();
  auto bob = spawn_bob();
  auto n1 = attach_answering(bob, t1);
  auto n2 = attach_answering(bob, t2);
  caf::anon_send(bob, caf::publish_atom::value, private_from_alice(R"("L1")"));
  sched.run();
  self->send(n1, caf::ok_atom::value, std::uint64_t{0}, true); // n1 wrote L1
  sched.run();
  caf::anon_send(bob, caf::publish_atom::value, private_from_alice(R"("L2")"));
  sched.run();
  CAF_REQUIRE_EQUAL(t2->size(), 2u);
  self->send(n1, caf::ok_atom::value, std::uint64_t{1}, false); // n1's tab closed
  self->send(bob, detach_atom::value, n1);
  self->send(bob, detach_atom::value, n2); // its tab is closing too
  self->send(n2, caf::ok_atom::value, std::uint64_t{0}, true);  // it wrote L1, late
  self->send(n2, caf::ok_atom::value, std::uint64_t{1}, false); // but not L2
  sched.run();
  auto next = std::make_shared<std::vector<std::string>>();
  auto other = attach_writing(bob, next);
  CAF_REQUIRE_EQUAL(next->size(), 1u);
  CAF_CHECK(next->at(0).find("L2") != std::string::npos);
  CAF_CHECK_EQUAL(watched(), 1u); // `other`: n1 and n2 answered all, so no longer
  stop({bob, n1, n2, other});
}

// Before, a node that detached stopped being watched at once: if it then
// ended before answering for a frame it was writing, the frame waited for
// good, and so did every message after it.
CAF_TEST(a node that detached before answering and then ended settles its frames) {
  auto t1 = std::make_shared<std::vector<std::string>>();
  auto bob = spawn_bob();
  auto n1 = attach_answering(bob, t1);
  caf::anon_send(bob, caf::publish_atom::value, private_from_alice(R"("L1")"));
  sched.run();
  CAF_REQUIRE_EQUAL(t1->size(), 1u);
  self->send(bob, detach_atom::value, n1); // its last tab is closing
  sched.run();
  self->send_exit(n1, caf::exit_reason::kill); // its node fails before it answers
  sched.run();
  caf::anon_send(bob, caf::publish_atom::value, private_from_alice(R"("M2")"));
  sched.run();
  auto next = std::make_shared<std::vector<std::string>>();
  auto other = attach_writing(bob, next);
  CAF_REQUIRE_EQUAL(next->size(), 2u);
  CAF_CHECK(next->at(0).find("L1") != std::string::npos); // n1 may have written it
  CAF_CHECK(next->at(1).find("M2") != std::string::npos);
  stop({bob, other});
  CAF_CHECK_EQUAL(watched(), 0u); // and none is watched for good
}

// Before, a message that bounced off a closing tab after the user had moved
// on twice was lost: it went to the first successor, which had ended
// (logged "kept during its move are lost").
CAF_TEST(frames kept after a move reach the user when the successor has ended) {
  auto via_directory = std::make_shared<std::vector<std::string>>();
  directory = sys.spawn(adopting, via_directory, caf::actor{});
  auto to_successor = std::make_shared<std::vector<std::string>>();
  auto successor = sys.spawn(adopting, to_successor, caf::actor{});
  auto t1 = std::make_shared<std::vector<std::string>>();
  auto bob = spawn_bob();
  auto n1 = attach_answering(bob, t1);
  caf::anon_send(bob, caf::publish_atom::value, private_from_alice(R"("L1")"));
  sched.run();
  caf::anon_send(bob, handoff_atom::value, successor); // b joins: bob moves
  sched.run();
  self->send_exit(successor, caf::exit_reason::user_shutdown); // moved on, and ended
  sched.run();
  self->send(n1, caf::ok_atom::value, std::uint64_t{0}, false); // the tab did not write L1
  sched.run();
  CAF_CHECK(to_successor->empty());
  CAF_REQUIRE_EQUAL(via_directory->size(), 1u);
  CAF_CHECK(via_directory->front().find("L1") != std::string::npos);
  stop({bob, n1, directory});
}

// Before, a node that ended took the whole batch in flight back: its frames
// were sent again to the other nodes, whose tabs then got them twice.
CAF_TEST(a node that ends during a drain leaves the frames to the other nodes) {
  auto t1 = std::make_shared<std::vector<std::string>>();
  auto t2 = std::make_shared<std::vector<std::string>>();
  auto n1 = sys.spawn(answering_node, t1);
  auto n2 = sys.spawn(answering_node, t2);
  auto bob = spawn_bob();
  // A move brings S1 and S2, which go out to both nodes at once.
  adopt(bob, user_snapshot{"bob", {"S1", "S2"}, {n1, n2}});
  CAF_REQUIRE_EQUAL(*t2, (std::vector<std::string>{"S1", "S2"}));
  self->send_exit(n1, caf::exit_reason::kill); // n1's node fails
  sched.run();
  self->send(bob, retry_atom::value); // a drain's retry, if one was due
  sched.run();
  CAF_CHECK_EQUAL(*t2, (std::vector<std::string>{"S1", "S2"})); // not again
  self->send(n2, caf::ok_atom::value, std::uint64_t{0}, true);
  self->send(n2, caf::ok_atom::value, std::uint64_t{1}, true);
  sched.run();
  self->send(bob, retry_atom::value);
  sched.run();
  CAF_CHECK_EQUAL(*t2, (std::vector<std::string>{"S1", "S2"}));
  // Written: nothing is left for the next connection.
  self->send(bob, detach_atom::value, n2);
  sched.run();
  auto next = std::make_shared<std::vector<std::string>>();
  auto other = attach_writing(bob, next);
  CAF_CHECK(next->empty());
  stop({bob, n2, other});
}

CAF_TEST_FIXTURE_SCOPE_END()
