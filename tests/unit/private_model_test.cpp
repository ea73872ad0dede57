#define CAF_SUITE private_model

// Private messages under random interleavings: a sender, tabs of one user
// opening and closing on two nodes, sockets that write or fail their frames
// (a working socket writes in order; a closing one fails what it holds in
// any order), and node b failing. Whatever happens, every acknowledged
// message reaches a tab, no tab gets one twice, a last tab gets what is left
// in order, and the inbox memory is given back. Each run is reproducible
// from its seed (printed when a check fails). When it was written it found
// three defects of the user actor, each now with a test of its own in
// user_test ("user_answer_tests"): reused live frame numbers, a detached
// node's end going unheard, and a drain sent twice when one node ended.

#include <algorithm>
#include <cstdlib>
#include <random>
#include <set>
#include <sstream>

#include "cluster/placement.hpp"
#include "common/metrics.hpp"
#include "fake_store.hpp"
#include "fixture.hpp"

using namespace rc;
using namespace rc::test;
using nlohmann::json;

namespace {

/// Small drain windows (2 frames), so that inbox drains go in batches;
/// with `tight`, inboxes that hold 6 frames or 500 bytes, so that sends
/// are refused too.
settings small_windows(bool tight) {
  settings s;
  s.limits.max_queue_frames = 8;
  if (tight) {
    s.limits.inbox_limit = 6;
    s.limits.inbox_memory = 500;
  }
  return s;
}

struct model : store_holder, two_nodes {
  /// `durable`: node a keeps private messages in a store (as with
  /// `--amqp-url`), which may go down and answer fetches late. `moving`:
  /// node b joins and leaves the cluster, and the user, whom b owns while
  /// it is a member, moves with it (b does not fail then). `tight`: small
  /// inboxes (`small_windows`), so that sends are refused.
  explicit model(bool durable, bool moving = false, bool tight = false)
    : two_nodes({}, small_windows(tight), [this, durable](caf::actor_system& sys) {
        if (durable)
          store = sys.spawn(fake_store);
        return core_services{store, nullptr};
      }),
      moving(moving),
      tight(tight) {
    set_live({"a"}); // the user's owner is on a; b only has tabs
    if (moving)
      for (int i = 0; owner_of(user, {"a", "b"}) != "b"; ++i)
        user = "bob-" + std::to_string(i);
  }

  ~model() {
    if (store) {
      caf::anon_send_exit(store, caf::exit_reason::user_shutdown);
      sched.run();
    }
  }

  fake_store_state& store_state() {
    return deref<caf::stateful_actor<fake_store_state>>(store).state;
  }

  struct tab {
    node_fixture::client c;
    bool connected = true; // its connection actor has not been told of the close
    bool on_b = false;
    recording_link& link() { return *c.link; }
  };

  std::mt19937 rng;
  std::ostringstream trace;
  node_fixture::client sender;
  std::vector<tab> tabs;
  bool moving;
  bool tight;
  std::string user = "bob";
  int sent = 0;
  int refused = 0;
  int moves = 0;
  bool b_failed = false;
  bool store_failed = false;
  /// Messages a socket failed or refused (or held when its node failed).
  std::set<int> bounced;

  std::size_t pick(std::size_t n) {
    return std::uniform_int_distribution<std::size_t>{0, n - 1}(rng);
  }
  bool chance(double p) {
    return std::bernoulli_distribution{p}(rng);
  }
  /// Indexes of the tabs for which `pred` holds.
  template <class Pred>
  std::vector<std::size_t> tabs_where(Pred pred) {
    std::vector<std::size_t> out;
    for (std::size_t i = 0; i < tabs.size(); ++i)
      if (pred(tabs[i]))
        out.push_back(i);
    return out;
  }

  void open_tab() {
    bool on_b = !b_failed && chance(0.5);
    tabs.push_back({connect(on_b ? b : a, user, holding_link()), true, on_b});
    trace << "open " << tabs.size() - 1 << (on_b ? " on b; " : " on a; ");
  }

  void send_one() {
    ++sent;
    frame(sender, send_to(user, sent, sent));
    trace << "send " << sent << "; ";
  }

  /// A socket answers one frame it holds: a working one writes the oldest;
  /// a closing one fails any (it reports its queued frames before the one
  /// it was writing).
  void settle_one() {
    auto holding = tabs_where([](tab& t) { return !t.link().held.empty(); });
    if (holding.empty())
      return;
    auto i = holding[pick(holding.size())];
    auto& link = tabs[i].link();
    if (!link.closing) {
      trace << "tab " << i << " writes; ";
      link.settle_oldest(true);
    } else {
      auto at = pick(link.held.size());
      trace << "tab " << i << " fails #" << at << "; ";
      fail(link, at);
    }
    sched.run();
  }

  /// A tab begins to close (its client closed, or it fell behind): its
  /// session refuses new frames at once and fails the ones it holds, now
  /// or later; its connection actor hears of it now or later.
  void trouble() {
    auto working = tabs_where([](tab& t) { return !t.link().closing; });
    if (working.empty())
      return;
    auto i = working[pick(working.size())];
    auto& link = tabs[i].link();
    link.begin_closing();
    trace << "tab " << i << " closing; ";
    if (chance(0.5))
      fail_all(tabs[i]);
    if (chance(0.5))
      disconnect(tabs[i]);
  }

  void disconnect(tab& t) {
    if (!t.connected)
      return;
    t.connected = false;
    trace << "disconnect; ";
    caf::anon_send(t.c.conn, ws_closed_atom::value);
    sched.run();
  }

  void disconnect_one() {
    auto closing = tabs_where([](tab& t) { return t.link().closing && t.connected; });
    if (!closing.empty())
      disconnect(tabs[closing[pick(closing.size())]]);
  }

  static int data_of(const std::string& frame) {
    auto j = json::parse(frame);
    return j["type"] == "private" ? j["data"].get<int>() : 0;
  }

  /// A socket fails the frame it holds at `at`.
  void fail(recording_link& link, std::size_t at) {
    bounced.insert(data_of(link.held[at].first));
    link.settle_at(at, false);
  }

  void fail_all(tab& t) {
    while (!t.link().held.empty())
      fail(t.link(), t.link().held.size() - 1);
    sched.run();
  }

  /// Node b fails: its registry ends, and its tabs with it (what their
  /// sockets held is never answered).
  void fail_b() {
    b_failed = true;
    trace << "b fails; ";
    caf::anon_send_exit(b.local_users, caf::exit_reason::kill);
    for (auto& t : tabs)
      if (t.on_b) {
        for (auto& [text, _] : t.link().held)
          bounced.insert(data_of(text));
        t.link().held.clear();
        t.link().begin_closing();
        if (t.connected)
          caf::anon_send_exit(t.c.conn, caf::exit_reason::kill);
        t.connected = false;
      }
    sched.run();
  }

  /// Node b joins the cluster (and owns the user) or leaves it (and the
  /// user goes back to a): a planned move, given 0 to 3 s before the next
  /// step (a move waits up to 1 s for a drain in flight). The next change
  /// can come while a move is under way, so that the two owners hand the
  /// user to each other at once: crossed moves (docs/cluster.md). Before
  /// one directory refused the other's adopt, both waited the move timeout
  /// and the late adopts copied the inbox (seed 19).
  void move() {
    ++moves;
    bool joins = view->live.count("b") == 0;
    trace << (joins ? "b joins; " : "b leaves; ");
    set_live(joins ? std::set<std::string>{"a", "b"} : std::set<std::string>{"a"});
    auto seconds = static_cast<int>(pick(4));
    for (int i = 0; i < seconds; ++i) {
      sched.advance_time(std::chrono::seconds{1});
      sched.run();
    }
  }

  /// The store goes down or comes back, or its fetch answers lag (and
  /// come).
  void trouble_the_store() {
    auto& st = store_state();
    switch (pick(3)) {
      case 0:
        st.down = !st.down;
        store_failed = store_failed || st.down;
        trace << (st.down ? "store down; " : "store up; ");
        break;
      case 1:
        st.hold_fetches = !st.hold_fetches;
        trace << (st.hold_fetches ? "fetches lag; " : "fetches in time; ");
        break;
      default:
        trace << "fetches answered; ";
        caf::anon_send(store, release_atom::value);
        sched.run();
    }
  }

  /// One to six seconds pass: drain retries, request timeouts (not while
  /// the store holds fetch answers: a fetch that timed out here would
  /// leave its frames unacknowledged in the fake store for good, where
  /// the broker would give them back).
  void time_passes() {
    if (store && !store_state().held.empty())
      return;
    auto seconds = 1 + static_cast<int>(pick(6));
    trace << seconds << " s pass; ";
    for (int i = 0; i < seconds; ++i) { // what is due acts before later timers
      sched.advance_time(std::chrono::seconds{1});
      sched.run();
    }
  }

  void step() {
    auto working = tabs_where([](tab& t) { return !t.link().closing; }).size();
    switch (pick(12)) {
      case 0:
        if (working < 3)
          open_tab();
        break;
      case 1:
        trouble();
        break;
      case 2:
        disconnect_one();
        break;
      case 3:
        if (moving && chance(0.5))
          move();
        else if (!moving && !b_failed && chance(0.1))
          fail_b();
        else if (store && chance(0.5))
          trouble_the_store();
        else
          time_passes();
        break;
      case 4:
      case 5:
      case 6:
        send_one();
        break;
      default:
        settle_one();
    }
  }

  /// Every tab closes, failing what it holds; a last tab on a writes at
  /// once and gets what is left (drain retries included).
  node_fixture::client finish() {
    if (store) {
      store_state().down = false;
      store_state().hold_fetches = false;
      caf::anon_send(store, release_atom::value);
      sched.run();
    }
    for (auto& t : tabs) {
      t.link().begin_closing();
      fail_all(t);
      disconnect(t);
    }
    auto last = connect(a, user);
    for (int i = 0; i < 20; ++i) {
      sched.trigger_timeouts(); // drain retries
      sched.run();
    }
    return last;
  }

  static std::vector<int> privates(const recording_link& link) {
    return link.private_data().get<std::vector<int>>();
  }

  /// Runs one history; false (with the history printed) if a promise broke.
  bool run(unsigned seed) {
    rng.seed(seed);
    trace.str({});
    auto bytes_before = metrics::global().inbox_bytes.load();
    sender = connect(a, "alice");
    for (int i = 0; i < 60; ++i)
      step();
    auto last = finish();
    std::vector<std::string> broken;
    // Every send was accepted (unless the limits are tight), but while the
    // store was down one may be refused. A refused one never arrives.
    std::vector<int> acked;
    for (auto& ack : sender.link->of_type("ack"))
      acked.push_back(ack["id"].get<int>());
    refused = sent - static_cast<int>(acked.size());
    if (!store_failed && !tight && refused > 0)
      broken.push_back("not every send was acknowledged");
    if (acked.size() + sender.link->of_type("error").size() != static_cast<std::size_t>(sent))
      broken.push_back("not every send was answered");
    // Each acknowledged message reached a tab; none reached one tab twice.
    std::vector<int> all;
    for (auto* link : [&] {
           std::vector<const recording_link*> v{last.link.get()};
           for (auto& t : tabs)
             v.push_back(t.c.link.get());
           return v;
         }()) {
      auto got = privates(*link);
      auto sorted = got;
      std::sort(sorted.begin(), sorted.end());
      if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
        broken.push_back("a tab got a message twice");
      all.insert(all.end(), got.begin(), got.end());
    }
    for (int n : acked)
      if (std::find(all.begin(), all.end(), n) == all.end())
        broken.push_back("message " + std::to_string(n) + " was lost");
    for (auto& err : sender.link->of_type("error"))
      if (std::find(all.begin(), all.end(), err["id"].get<int>()) != all.end())
        broken.push_back("refused message " + err["id"].dump() + " arrived");
    // The last tab gets what was left in the order it was sent, unless the
    // store failed (the memory inbox then holds some, and the order between
    // the two is not kept, as docs/amqp.md says). With a store, a message
    // that a socket failed may come after newer ones: they are stored
    // rather than wait for it longer than 5 s (docs/protocol.md).
    auto rest = privates(*last.link);
    for (auto& t : tabs)
      for (auto& text : t.link().refused)
        bounced.insert(data_of(text));
    auto fresh = rest;
    if (store)
      fresh.erase(std::remove_if(fresh.begin(), fresh.end(),
                                 [&](int n) { return bounced.count(n) > 0; }),
                  fresh.end());
    // During a move, order is not kept at all (docs/cluster.md: "privates
    // from one sender may be reordered").
    if (!store_failed && !moving && !std::is_sorted(fresh.begin(), fresh.end()))
      broken.push_back("the last tab got what was left out of order");
    if (store && (!store_state().ready[user].empty() || !store_state().unacked.empty()))
      broken.push_back("the store still holds messages");
    if (metrics::global().inbox_bytes.load() != bytes_before)
      broken.push_back("the inbox memory was not given back");
    if (broken.empty())
      return true;
    std::ostringstream out;
    for (auto& b : broken)
      out << b << "; ";
    out << "tabs got:";
    for (std::size_t i = 0; i < tabs.size(); ++i) {
      out << " " << i << " [";
      for (auto n : privates(tabs[i].link()))
        out << n << ' ';
      out << "]";
    }
    for (auto& err : sender.link->of_type("error"))
      out << ", error " << err.dump();
    out << ", the last tab [";
    for (auto n : rest)
      out << n << ' ';
    out << "]";
    CAF_MESSAGE("seed " << seed << ": " << out.str() << "\n  history: " << trace.str());
    return false;
  }
};

} // namespace

namespace {

/// Runs the histories of MODEL_SEED=N (one) or seeds 1 to MODEL_RUNS=N
/// (6000 by default, a few seconds: seed 5037 found the last defect), from
/// MODEL_FIRST=N instead of 1 if set (seeds not run before), and checks
/// that they did something.
void run_histories(bool durable, bool moving = false, bool tight = false) {
  unsigned first = 1, last = 6000;
  if (auto* one = std::getenv("MODEL_SEED"))
    first = last = static_cast<unsigned>(std::stoul(one));
  else if (auto* runs = std::getenv("MODEL_RUNS"))
    last = static_cast<unsigned>(std::stoul(runs));
  if (auto* from = std::getenv("MODEL_FIRST"); from && !std::getenv("MODEL_SEED"))
    first = static_cast<unsigned>(std::stoul(from));
  int sent = 0, refused = 0;
  unsigned b_failed = 0, store_failed = 0, moves = 0;
  for (unsigned seed = first; seed <= last; ++seed) {
    model m{durable, moving, tight};
    if (!m.run(seed))
      CAF_FAIL("seed " << seed << " broke a promise (history above)");
    sent += m.sent;
    refused += m.refused;
    b_failed += m.b_failed;
    store_failed += m.store_failed;
    moves += static_cast<unsigned>(m.moves);
  }
  // The histories did send, and node b (and the store) failed in some.
  CAF_CHECK_GREATER(sent, static_cast<int>(last - first + 1) * 5);
  if (last - first >= 100) {
    CAF_CHECK_GREATER(moving ? moves : b_failed, 10u);
    if (durable)
      CAF_CHECK_GREATER(store_failed, 10u);
    if (tight)
      CAF_CHECK_GREATER(refused, 100);
  }
  CAF_MESSAGE(sent << " messages, " << refused << " refused; node b failed in " << b_failed << ", the store in "
                   << store_failed << " histories; " << moves << " moves");
}

} // namespace

CAF_TEST(every acknowledged private message reaches a tab once whatever the interleaving) {
  run_histories(false);
}

CAF_TEST(every stored private message reaches a tab once whatever the interleaving) {
  run_histories(true);
}

CAF_TEST(every acknowledged private message reaches a tab once while the user moves) {
  run_histories(false, true);
}

CAF_TEST(a private message refused by a full inbox never arrives and the others do) {
  run_histories(false, false, true);
}
