#pragma once

// Shared fixture for actor tests: the node's core actors on CAF's
// deterministic test coordinator, and client links that record frames.

#include <caf/actor_system_config.hpp>

#include <map>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "actors/connection.hpp"
#include "actors/messages.hpp"
#include "cluster/placement.hpp"
#include "node/core_actors.hpp"

#include <caf/test/dsl.hpp> // last: defines lowercase macros

namespace rc::test {

/// A client link that records what the actors queue for the socket.
class recording_link : public client_link {
public:
  /// Plain frames are recorded unless `closing` (a session that has begun
  /// to close refuses them).
  bool deliver(frame_ptr frame) override {
    if (closing)
      return false;
    frames.emplace_back(frame->text());
    return true;
  }
  /// Confirmed frames are recorded (and reported written) unless `refuse`
  /// or `closing`; with `hold_writes` they wait in `held` for `settle_oldest`.
  void deliver(frame_ptr frame, written_fn written) override {
    if (hold_writes) {
      held.emplace_back(frame->text(), std::move(written));
      return;
    }
    bool ok = !refuse && !closing;
    if (ok)
      frames.emplace_back(frame->text());
    else
      refused.emplace_back(frame->text());
    written(ok);
  }
  /// The session begins to close: frames from now on are refused at once,
  /// the held ones still wait for `settle_oldest`.
  void begin_closing() {
    hold_writes = false;
    closing = true;
  }
  /// The socket writes (records) the oldest held frame, or fails to.
  void settle_oldest(bool write) { settle_at(0, write); }
  /// The same for the held frame at `index` (a closing session reports its
  /// queued frames before the one it was writing).
  void settle_at(std::size_t index, bool write) {
    CAF_REQUIRE_LESS(index, held.size());
    auto [text, written] = std::move(held[index]);
    held.erase(held.begin() + static_cast<std::ptrdiff_t>(index));
    if (write)
      frames.push_back(std::move(text));
    written(write);
  }
  void close(close_reason why) override { closed.push_back(why); }
  void frame_done() override { ++done; }

  /// Parses and removes the oldest recorded frame.
  nlohmann::json pop() {
    CAF_REQUIRE(!frames.empty());
    auto j = nlohmann::json::parse(frames.front());
    frames.erase(frames.begin());
    return j;
  }
  /// The `data` of each recorded private frame, in order.
  nlohmann::json private_data() const {
    auto out = nlohmann::json::array();
    for (auto& j : of_type("private"))
      out.push_back(j["data"]);
    return out;
  }
  /// Frames of one type, parsed, without removing them.
  std::vector<nlohmann::json> of_type(const std::string& type) const {
    std::vector<nlohmann::json> out;
    for (auto& f : frames) {
      auto j = nlohmann::json::parse(f);
      if (j["type"] == type)
        out.push_back(j);
    }
    return out;
  }

  std::vector<std::string> frames;
  std::vector<std::string> refused; ///< confirmed frames refused (not written)
  std::vector<close_reason> closed;
  int done = 0;
  bool refuse = false;
  bool closing = false;
  bool hold_writes = false;
  std::vector<std::pair<std::string, written_fn>> held;
};

/// A client's `send` request (a private message to `to`); `id` 0: none.
inline nlohmann::json send_to(const std::string& to, nlohmann::json data, int id = 0) {
  nlohmann::json j{{"type", "send"}, {"to", to}, {"data", std::move(data)}};
  if (id != 0)
    j["id"] = id;
  return j;
}

/// A recording link whose socket holds confirmed frames until the test
/// settles them: a reader that is behind, or a tab about to close.
inline std::shared_ptr<recording_link> holding_link() {
  auto link = std::make_shared<recording_link>();
  link->hold_writes = true;
  return link;
}

struct test_config : caf::actor_system_config {
  test_config() { add_wire_types(*this); }
};

/// Core actors plus helpers to open connections and feed them frames.
struct node_fixture : test_coordinator_fixture<test_config> {
  settings cfg;
  core_actors core;

  /// `services` (optional) spawns the services the core actors use.
  explicit node_fixture(settings s = {},
                        std::function<core_services(caf::actor_system&)> services = {})
    : cfg(std::move(s)) {
    core = spawn_core_actors(sys, cfg, {}, {}, services ? services(sys) : core_services{});
    sched.run();
  }

  ~node_fixture() {
    core.stop();
    sched.run();
  }

  struct client {
    caf::actor conn;
    std::shared_ptr<recording_link> link;
  };

  /// Opens a connection for `user` and consumes its welcome frame.
  client connect(const std::string& user, identity who = {},
                 std::shared_ptr<recording_link> link = std::make_shared<recording_link>()) {
    who.user = user;
    auto conn = sys.spawn(connection, client_link_ptr{link}, who, core.context_for("test-node", cfg));
    sched.run();
    auto welcome = link->pop();
    CAF_CHECK_EQUAL(welcome["type"], "welcome");
    return {conn, link};
  }

  /// Hands `text` to the connection as the session would, and runs until idle.
  void frame(const client& c, const std::string& text) {
    caf::anon_send(c.conn, ws_frame_atom::value, text);
    sched.run();
  }
  void frame(const client& c, const char* text) { frame(c, std::string{text}); }
  void frame(const client& c, const nlohmann::json& j) { frame(c, j.dump()); }

  void close(const client& c) {
    caf::anon_send(c.conn, ws_closed_atom::value);
    sched.run();
  }

  /// How many (registry, user) pairs the node watch holds. (The count is
  /// the first number in `self`'s mailbox: send what answers with numbers
  /// with `anon_send` in tests that call this.)
  std::uint64_t watched() {
    self->send(core.node_watch, caf::get_atom::value);
    sched.run();
    std::uint64_t n = 0;
    self->receive([&](std::uint64_t x) { n = x; });
    return n;
  }
};

// -- two simulated nodes ----------------------------------------------------------
// Each "node" has its own core actors and a locator that places names over
// a shared member list, as the membership actor does over the network.

/// The shared member list both simulated nodes place names over.
struct fake_view {
  std::map<std::string, const core_actors*> nodes;
  std::set<std::string> live;
};

inline caf::behavior fake_locator(caf::event_based_actor* self, std::shared_ptr<fake_view> v) {
  auto owner = [v](const std::string& name) {
    std::vector<std::string> members{v->live.begin(), v->live.end()};
    return v->nodes.at(owner_of(name, members));
  };
  return {
    [owner](locate_atom, room_atom, const std::string& name) { return owner(name)->rooms; },
    [owner](locate_atom, user_atom, const std::string& name) { return owner(name)->users; },
    [v](locate_atom, all_atom) {
      std::vector<caf::actor> out;
      for (auto& n : v->live)
        out.push_back(v->nodes.at(n)->everyone);
      return out;
    },
  };
  (void) self;
}

struct two_nodes : test_coordinator_fixture<test_config> {
  settings cfg;
  std::shared_ptr<room_kinds> kinds = std::make_shared<room_kinds>();
  std::shared_ptr<fake_view> view = std::make_shared<fake_view>();
  core_actors a, b;

  /// `services_of_a` (optional) spawns the services node a uses.
  explicit two_nodes(std::function<void(room_kinds&)> register_kinds = {}, settings s = {},
                     std::function<core_services(caf::actor_system&)> services_of_a = {})
    : cfg(std::move(s)) {
    if (register_kinds)
      register_kinds(*kinds);
    auto factory = [this](const core_actors&) { return sys.spawn(fake_locator, view); };
    a = spawn_core_actors(sys, cfg, factory, kinds,
                          services_of_a ? services_of_a(sys) : core_services{});
    b = spawn_core_actors(sys, cfg, factory, kinds);
    view->nodes = {{"a", &a}, {"b", &b}};
    set_live({"a"});
  }

  ~two_nodes() {
    a.stop();
    b.stop();
    sched.run();
  }

  /// What the membership does on a change: new placement, then new views.
  void set_live(std::set<std::string> live) {
    view->live = live;
    for (auto& [name, _] : view->nodes)
      tell_view(name, live);
    sched.run();
  }

  /// Sends `node`'s directories the view `live` without running them (the
  /// placement the locators use is `view->live`, set apart): views that
  /// disagree for a moment, as they can across the network.
  void tell_view(const std::string& node, const std::set<std::string>& live) {
    std::map<std::string, caf::actor> rooms, users;
    for (auto& n : live) {
      rooms.emplace(n, view->nodes.at(n)->rooms);
      users.emplace(n, view->nodes.at(n)->users);
    }
    auto* core = view->nodes.at(node);
    caf::anon_send(core->rooms, view_atom::value, rooms, node);
    caf::anon_send(core->users, view_atom::value, users, node);
  }

  /// Node b fails with its rooms: its room directory (and so every room on
  /// it) dies, the membership drops it from a's view, and the timeouts due
  /// then fire (the relays' re-attach backoff, a room's tick).
  void fail_rooms_of_b() {
    view->live = {"a"};
    caf::anon_send_exit(b.rooms, caf::exit_reason::kill);
    sched.run();
    std::map<std::string, caf::actor> rooms{{"a", a.rooms}};
    caf::anon_send(a.rooms, view_atom::value, rooms, std::string{"a"});
    sched.run();
    sched.trigger_timeouts();
    sched.run();
  }

  std::uint64_t count(const caf::actor& dir) {
    self->send(dir, caf::get_atom::value);
    sched.run();
    std::uint64_t n = 0;
    self->receive([&](std::uint64_t x) { n = x; });
    return n;
  }

  node_fixture::client connect(const core_actors& node, const std::string& user,
                               std::shared_ptr<recording_link> link
                               = std::make_shared<recording_link>()) {
    identity who;
    who.user = user;
    auto conn = sys.spawn(connection, client_link_ptr{link}, who, node.context_for("n", cfg));
    sched.run();
    link->pop(); // welcome
    return {conn, link};
  }

  void frame(const node_fixture::client& c, const nlohmann::json& j) {
    caf::anon_send(c.conn, ws_frame_atom::value, j.dump());
    sched.run();
  }

  /// Users x and y, connected to node a, both joined to `room` (their
  /// `joined` frames still queued).
  std::pair<node_fixture::client, node_fixture::client> x_and_y_in(const std::string& room) {
    auto x = connect(a, "x");
    auto y = connect(a, "y");
    frame(x, {{"type", "join"}, {"room", room}});
    frame(y, {{"type", "join"}, {"room", room}});
    return {x, y};
  }
};


/// A user's node whose sockets answer each confirmed write when the test
/// says so, in any order: `(caf::ok_atom, i, written)` answers the i-th
/// frame it got. `texts` records every frame it got.
inline caf::behavior answering_node(caf::event_based_actor* self,
                                    std::shared_ptr<std::vector<std::string>> texts) {
  auto held = std::make_shared<std::vector<caf::response_promise>>();
  return {
    [self, texts, held](deliver_atom, const std::string&, const std::string& text,
                        confirm_atom) -> caf::result<std::uint64_t> {
      texts->push_back(text);
      held->push_back(self->make_response_promise());
      return held->back();
    },
    [held](caf::ok_atom, std::uint64_t i, bool written) {
      held->at(i).deliver(std::uint64_t{written ? 1u : 0u});
    },
  };
}

/// A user's node as a user actor sees it: its sockets write every frame
/// (recorded), none (`closing`), or, `holding`, record them and answer
/// confirmed writes only when told (`(caf::ok_atom, written)` answers all).
enum class node_mode { writes, closing, holding };

inline caf::behavior played_node(caf::event_based_actor* self,
                                 std::shared_ptr<std::vector<std::string>> texts, node_mode mode) {
  auto held = std::make_shared<std::vector<caf::response_promise>>();
  return {
    [texts, mode](deliver_atom, const std::string&, const std::string& text) {
      if (mode == node_mode::closing)
        return std::uint64_t{0};
      texts->push_back(text);
      return std::uint64_t{1};
    },
    [self, texts, mode, held](deliver_atom, const std::string&, const std::string& text,
                              confirm_atom) -> caf::result<std::uint64_t> {
      if (mode == node_mode::closing)
        return std::uint64_t{0};
      texts->push_back(text);
      if (mode == node_mode::writes)
        return std::uint64_t{1};
      held->push_back(self->make_response_promise());
      return held->back();
    },
    [held](caf::ok_atom, std::uint64_t written) {
      auto all = std::move(*held);
      held->clear();
      for (auto& rp : all)
        rp.deliver(written);
    },
  };
}

/// A name that `owner` owns once nodes "a" and "b" are live.
inline std::string name_owned_by(const std::string& owner, const std::string& prefix) {
  for (int i = 0;; ++i) {
    auto name = prefix + std::to_string(i);
    if (owner_of(name, {"a", "b"}) == owner)
      return name;
  }
}

} // namespace rc::test
