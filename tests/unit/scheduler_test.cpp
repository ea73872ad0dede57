#define CAF_SUITE scheduler

// The node's scheduler (node/hand_off_policy.hpp) on real worker threads:
// the deterministic coordinator of the other suites cannot show what it
// changes, which is when a job runs and on which thread.

#include "hand_off_fixture.hpp"

#include <caf/test/unit_test.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>

#include <atomic>
#include <chrono>

using namespace std::chrono_literals;

namespace {

using go_atom = caf::atom_constant<caf::atom("go")>;

void spin(std::chrono::microseconds d) {
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(scheduler_tests, rc::test::hand_off_system)

CAF_TEST(messages between actors all arrive on the hand off scheduler) {
  // A chain of actors passing a counter: every hop is made ready by another
  // actor, the case where no worker is woken.
  constexpr int hops = 20000;
  auto relay = [](caf::event_based_actor* self, caf::actor next) -> caf::behavior {
    return {[self, next](int n, caf::actor reply_to) {
      if (n == 0)
        self->send(reply_to, go_atom::value);
      else
        self->send(next ? next : caf::actor_cast<caf::actor>(self), n - 1, reply_to);
    }};
  };
  auto c = sys.spawn(relay, caf::actor{});
  auto b = sys.spawn(relay, c);
  auto a = sys.spawn(relay, b);
  caf::scoped_actor self{sys};
  self->send(a, hops, caf::actor{self});
  bool done = false;
  self->receive([&](go_atom) { done = true; }, caf::after(10s) >> [] {});
  CAF_CHECK(done);
  for (auto& x : {a, b, c})
    self->send_exit(x, caf::exit_reason::user_shutdown);
}

CAF_TEST(a busy actor holds up a job it made ready for at most its throughput) {
  // `busy` works through a backlog of messages (20 us each) and makes
  // `waiter` ready with its first one. The waiter must run long before the
  // backlog is done: after at most hand_off_throughput messages the busy
  // actor yields and its worker (or the other one) takes the waiter.
  constexpr int backlog = 2000;
  std::atomic<int> handled{0};
  std::atomic<int> seen_by_waiter{-1};
  auto waiter = sys.spawn([&](caf::event_based_actor*) -> caf::behavior {
    return {[&](go_atom) { seen_by_waiter = handled.load(); }};
  });
  auto busy = sys.spawn([&, waiter](caf::event_based_actor* self) -> caf::behavior {
    return {
      [&, self, waiter](go_atom) {
        for (int i = 0; i < backlog; ++i)
          self->send(self, i);
      },
      [&, self, waiter](int i) {
        if (i == 0)
          self->send(waiter, go_atom::value);
        spin(20us);
        ++handled;
      },
    };
  });
  caf::anon_send(busy, go_atom::value);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((handled < backlog || seen_by_waiter < 0) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  CAF_REQUIRE_EQUAL(handled.load(), backlog);
  CAF_MESSAGE("the waiter ran after " << seen_by_waiter.load() << " of " << backlog);
  CAF_CHECK_GREATER_OR_EQUAL(seen_by_waiter.load(), 0);
  CAF_CHECK_LESS_OR_EQUAL(seen_by_waiter.load(), static_cast<int>(rc::hand_off_throughput) + 1);
  caf::anon_send_exit(busy, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(waiter, caf::exit_reason::user_shutdown);
}

CAF_TEST_FIXTURE_SCOPE_END()
