#define CAF_SUITE shared_behavior

// Actors that share one behavior (actors/shared_behavior.hpp) each find
// their own state: on the deterministic coordinator, in every kind of
// handler, and on the node's scheduler with real threads. And the node's
// own actors of each kind do share one.

#include "actors/directory.hpp"
#include "actors/shared_behavior.hpp"
#include "fixture.hpp"
#include "hand_off_fixture.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include <string>
#include <vector>

#include <caf/test/dsl.hpp> // last: defines lowercase macros

using namespace rc;

namespace {

using add_atom = caf::atom_constant<caf::atom("add")>;
using ask_atom = caf::atom_constant<caf::atom("ask")>;
using watch_atom = caf::atom_constant<caf::atom("watch")>;

struct counter_state {
  int sum = 0;
  std::string label;
  std::vector<std::string> seen; ///< what the response and down handlers saw
  static inline const char* name = "counter";
};

using counter_actor = sharing_actor<counter_state>;

caf::behavior counter_handlers() {
  return {
    [](add_atom, int n) {
      auto self = counter_actor::current();
      self->state.sum += n;
      return self->state.sum;
    },
    // Asks `other` for its sum: the response handler runs later, in a
    // batch of its own, and must still find this actor.
    [](ask_atom, const caf::actor& other) {
      auto self = counter_actor::current();
      self->request(other, caf::infinite, add_atom::value, 0).then([](int sum) {
        auto self = counter_actor::current();
        self->state.seen.push_back("answer " + std::to_string(sum) + " at " + self->state.label);
      });
    },
    [](watch_atom, const caf::actor& other) { counter_actor::current()->monitor(other); },
  };
}

caf::behavior counter(counter_actor* self, std::string label) {
  self->state.label = std::move(label);
  self->set_down_handler([](caf::down_msg&) {
    auto self = counter_actor::current();
    self->state.seen.push_back("down at " + self->state.label);
  });
  return counter_actor::shared<counter_handlers>();
}

int sum_of(const caf::actor& a) {
  return caf::actor_cast<counter_actor*>(a)->state.sum;
}

counter_state& state_of(const caf::actor& a) {
  return caf::actor_cast<counter_actor*>(a)->state;
}

/// What an actor runs on now: the same pointer for two actors that share
/// their behavior.
const void* behavior_of(const caf::actor& a) {
  return caf::actor_cast<caf::scheduled_actor*>(a)->bhvr_stack().back().as_behavior_impl().get();
}

/// The actors a directory holds, by name.
std::vector<caf::actor> held_by(const caf::actor& directory) {
  std::vector<caf::actor> out;
  auto dir = caf::actor_cast<caf::stateful_actor<directory_state>*>(directory);
  for (auto& [_, e] : dir->state.entries)
    out.push_back(e.actor);
  return out;
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(shared_behavior_tests, test_coordinator_fixture<>)

CAF_TEST(actors of one shared behavior each change their own state) {
  auto a = sys.spawn(counter, "a");
  auto b = sys.spawn(counter, "b");
  sched.run();
  anon_send(a, add_atom::value, 1);
  anon_send(b, add_atom::value, 10);
  anon_send(a, add_atom::value, 2);
  anon_send(b, add_atom::value, 20);
  sched.run();
  CAF_CHECK_EQUAL(sum_of(a), 3);
  CAF_CHECK_EQUAL(sum_of(b), 30);
  CAF_CHECK(counter_actor::current() == nullptr); // none runs now
  anon_send_exit(a, caf::exit_reason::user_shutdown);
  anon_send_exit(b, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST(response and down handlers of a shared behavior find their actor) {
  auto a = sys.spawn(counter, "a");
  auto b = sys.spawn(counter, "b");
  auto c = sys.spawn(counter, "c");
  sched.run();
  anon_send(b, add_atom::value, 5);
  anon_send(a, ask_atom::value, b);
  anon_send(c, watch_atom::value, b);
  sched.run();
  anon_send_exit(b, caf::exit_reason::user_shutdown);
  sched.run();
  CAF_CHECK_EQUAL(state_of(a).seen, std::vector<std::string>{"answer 5 at a"});
  CAF_CHECK_EQUAL(state_of(c).seen, std::vector<std::string>{"down at c"});
  anon_send_exit(a, caf::exit_reason::user_shutdown);
  anon_send_exit(c, caf::exit_reason::user_shutdown);
  sched.run();
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST_FIXTURE_SCOPE(shared_behavior_node_tests, rc::test::node_fixture)

// The saving is per kind: one actor that built its own behavior (a spawn
// function that returns `make_handlers()` instead of `shared<...>()`) would
// bring back 0.2 to 0.7 KiB per connection, and nothing else would notice.
CAF_TEST(the connection user room and relay actors of a node share one behavior per kind) {
  auto alice = connect("alice");
  auto bob = connect("bob");
  for (auto* room : {"r1", "r2"}) {
    frame(alice, nlohmann::json{{"type", "join"}, {"room", room}});
    frame(bob, nlohmann::json{{"type", "join"}, {"room", room}});
  }
  auto kinds = std::vector<std::pair<const char*, std::vector<caf::actor>>>{
    {"connection", {alice.conn, bob.conn}},
    {"user", held_by(core.users)},
    {"room", held_by(core.rooms)},
    {"relay", held_by(core.relays)},
  };
  for (auto& [kind, actors] : kinds) {
    CAF_MESSAGE(kind);
    CAF_REQUIRE_EQUAL(actors.size(), 2u);
    CAF_CHECK(behavior_of(actors[0]) != nullptr);
    CAF_CHECK_EQUAL(behavior_of(actors[0]), behavior_of(actors[1]));
  }
  // Actors of different kinds do not share one.
  CAF_CHECK_NOT_EQUAL(behavior_of(alice.conn), behavior_of(held_by(core.users)[0]));
  CAF_CHECK_NOT_EQUAL(behavior_of(held_by(core.rooms)[0]), behavior_of(held_by(core.relays)[0]));
}

CAF_TEST_FIXTURE_SCOPE_END()

CAF_TEST_FIXTURE_SCOPE(shared_behavior_threads_tests, rc::test::hand_off_system)

CAF_TEST(actors of one shared behavior running on two threads at once keep their sums apart) {
  // Each actor is sent 1..n; on two workers, handlers of different actors
  // run at the same time, each with its own current().
  constexpr int actors = 16;
  constexpr int n = 2000;
  std::vector<caf::actor> counters;
  for (int i = 0; i < actors; ++i)
    counters.push_back(sys.spawn(counter, "c" + std::to_string(i)));
  for (int k = 1; k <= n; ++k)
    for (auto& c : counters)
      caf::anon_send(c, add_atom::value, k);
  caf::scoped_actor self{sys};
  for (auto& c : counters) {
    self->request(c, std::chrono::seconds{30}, add_atom::value, 0)
      .receive([](int sum) { CAF_CHECK_EQUAL(sum, n * (n + 1) / 2); },
               [](caf::error& err) { CAF_FAIL("no answer: " << caf::to_string(err)); });
    caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
  }
}

CAF_TEST_FIXTURE_SCOPE_END()
