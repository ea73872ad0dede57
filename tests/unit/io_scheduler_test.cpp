#define CAF_SUITE io_scheduler

// The node's default scheduler (node/io_scheduler.hpp) on real threads:
// which thread runs an actor, and that no message is lost when the I/O
// threads stop under it. The deterministic coordinator of the other suites
// replaces the scheduler, so it cannot show either.

#include "node/io_scheduler.hpp"

#include <caf/test/unit_test.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>

#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using go_atom = caf::atom_constant<caf::atom("go")>;
using where_atom = caf::atom_constant<caf::atom("where")>;

/// One I/O context and the thread that runs it, as net::io_worker has.
struct io_thread {
  boost::asio::io_context ctx{1};
  std::thread thread;
  std::thread::id id;

  void start() {
    std::promise<std::thread::id> started;
    auto f = started.get_future();
    thread = std::thread{[this, &started] {
      started.set_value(std::this_thread::get_id());
      auto guard = boost::asio::make_work_guard(ctx);
      ctx.run();
    }};
    id = f.get();
  }
  void stop() {
    ctx.stop();
    if (thread.joinable())
      thread.join();
  }
  /// Runs `f` on this thread and waits for it.
  template <class F>
  void run_here(F f) {
    std::promise<void> done;
    boost::asio::post(ctx, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }
};

struct fixture {
  static caf::actor_system_config& configure(caf::actor_system_config& cfg) {
    rc::use_io_scheduler(cfg);
    return cfg;
  }

  fixture() {
    for (auto& t : io)
      t = std::make_unique<io_thread>();
    for (auto& t : io)
      t->start();
  }

  ~fixture() {
    sched().detach();
    for (auto& t : io)
      if (t)
        t->stop();
    for (auto& t : io)
      t.reset(); // queued jobs move to the fallback
  }

  rc::io_scheduler& sched() { return *rc::io_scheduler::of(sys); }

  void attach() { sched().attach({&io[0]->ctx, &io[1]->ctx}); }

  /// An actor that notes the thread it runs on in `last_thread`, then
  /// answers `where` (a thread id is no message type).
  caf::actor spawn_locator() {
    return sys.spawn([this](caf::event_based_actor* self) -> caf::behavior {
      return {[this, self](where_atom, caf::actor reply_to) {
        {
          std::lock_guard<std::mutex> guard{last_mutex};
          last_thread = std::this_thread::get_id();
        }
        self->send(reply_to, go_atom::value);
      }};
    });
  }

  /// Returns once both I/O threads finished what they had queued: an actor
  /// that answered may still be running there until it sees its empty
  /// mailbox, and a message meanwhile would run on the same thread.
  void settle() {
    for (auto& t : io)
      if (t)
        t->run_here([] {});
  }

  /// Whether `a` answers `where` within 10 s.
  bool answers(const caf::actor& a) {
    caf::scoped_actor self{sys};
    self->send(a, where_atom::value, caf::actor{self});
    bool answered = false;
    self->receive([&](go_atom) { answered = true; }, caf::after(10s) >> [] {});
    return answered;
  }

  /// The thread a locator ran on to answer; a default id if it did not.
  std::thread::id ask_where(const caf::actor& a) {
    bool answered = answers(a);
    std::lock_guard<std::mutex> guard{last_mutex};
    return answered ? last_thread : std::thread::id{};
  }

  std::mutex last_mutex;
  std::thread::id last_thread;

  caf::actor_system_config cfg;
  caf::actor_system sys{configure(cfg)};
  std::unique_ptr<io_thread> io[2];
};

} // namespace

CAF_TEST_FIXTURE_SCOPE(io_scheduler_tests, fixture)

CAF_TEST(before the I/O threads are attached actors run on the fallback thread) {
  auto a = spawn_locator();
  auto where = ask_where(a);
  CAF_CHECK(where != std::thread::id{});
  CAF_CHECK(where != std::this_thread::get_id());
  CAF_CHECK(where != io[0]->id);
  CAF_CHECK(where != io[1]->id);
  anon_send_exit(a, caf::exit_reason::user_shutdown);
}

CAF_TEST(a chain of actors made ready on an I/O thread stays on that thread) {
  attach();
  // Each hop records its thread; the chain starts from io[1].
  constexpr int hops = 2000;
  std::mutex m;
  std::set<std::thread::id> seen;
  auto hop = [&](caf::event_based_actor* self, caf::actor next) -> caf::behavior {
    return {[&, self, next](int n, caf::actor reply_to) {
      {
        std::lock_guard<std::mutex> guard{m};
        seen.insert(std::this_thread::get_id());
      }
      if (n == 0)
        self->send(reply_to, go_atom::value);
      else
        self->send(next ? next : caf::actor_cast<caf::actor>(self), n - 1, reply_to);
    }};
  };
  // Spawned there too: an actor's start runs where its spawn sent it, and
  // from here it would be dealt out to either thread.
  caf::actor a, b, c;
  caf::scoped_actor self{sys};
  io[1]->run_here([&] {
    c = sys.spawn(hop, caf::actor{});
    b = sys.spawn(hop, c);
    a = sys.spawn(hop, b);
    caf::anon_send(a, hops, caf::actor{self});
  });
  bool done = false;
  self->receive([&](go_atom) { done = true; }, caf::after(10s) >> [] {});
  CAF_CHECK(done);
  {
    std::lock_guard<std::mutex> guard{m};
    CAF_CHECK_EQUAL(seen.size(), 1u);
    CAF_CHECK(seen.count(io[1]->id) == 1);
  }
  for (auto& x : {a, b, c})
    anon_send_exit(x, caf::exit_reason::user_shutdown);
}

CAF_TEST(messages from other threads are dealt out to the I/O threads) {
  attach();
  // Asked from this thread four times in a row (nothing else runs), the
  // actor is made ready by an outsider each time: the I/O threads take turns.
  auto a = spawn_locator();
  std::set<std::thread::id> seen;
  for (int i = 0; i < 4; ++i) {
    settle();
    seen.insert(ask_where(a));
  }
  CAF_CHECK(seen == (std::set<std::thread::id>{io[0]->id, io[1]->id}));
  anon_send_exit(a, caf::exit_reason::user_shutdown);
}

CAF_TEST(jobs queued on an I/O thread that stops move to the fallback) {
  attach();
  // A counter made ready on io[0], whose context then stops before it runs:
  // the message must still be handled, on the fallback thread.
  std::promise<std::thread::id> handled_on;
  auto counter = sys.spawn([&](caf::event_based_actor*) -> caf::behavior {
    return {[&](go_atom) { handled_on.set_value(std::this_thread::get_id()); }};
  });
  auto handled = handled_on.get_future();
  io[0]->run_here([&] {
    caf::anon_send(counter, go_atom::value); // queued behind this handler
    sched().detach();
    io[0]->ctx.stop();
  });
  io[0]->stop();
  CAF_CHECK(handled.wait_for(0ms) == std::future_status::timeout); // still queued
  io[0].reset(); // destroys the context and its queue
  CAF_REQUIRE(handled.wait_for(10s) == std::future_status::ready);
  auto where = handled.get();
  CAF_CHECK(where != std::this_thread::get_id());
  CAF_CHECK(where != io[1]->id);
  anon_send_exit(counter, caf::exit_reason::user_shutdown);
}

CAF_TEST(after detaching new work runs on the fallback thread) {
  attach();
  auto a = spawn_locator();
  auto attached = ask_where(a);
  CAF_CHECK(attached == io[0]->id || attached == io[1]->id);
  sched().detach();
  settle();
  auto detached = ask_where(a);
  CAF_CHECK(detached != std::thread::id{});
  CAF_CHECK(detached != io[0]->id);
  CAF_CHECK(detached != io[1]->id);
  anon_send_exit(a, caf::exit_reason::user_shutdown);
}

CAF_TEST_FIXTURE_SCOPE_END()
