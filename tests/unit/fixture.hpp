#pragma once

// Shared fixture for actor tests: the node's core actors on CAF's
// deterministic test coordinator, and client links that record frames.

#include <caf/actor_system_config.hpp>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "actors/connection.hpp"
#include "actors/messages.hpp"
#include "node/core_actors.hpp"

#include <caf/test/dsl.hpp> // last: defines lowercase macros

namespace rc::test {

/// A client link that records what the actors queue for the socket.
class recording_link : public client_link {
public:
  void deliver(frame_ptr frame) override { frames.push_back(*frame); }
  /// Confirmed frames are recorded (and reported written) unless `refuse`.
  void deliver(frame_ptr frame, written_fn written) override {
    if (!refuse)
      frames.push_back(*frame);
    written(!refuse);
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
  std::vector<close_reason> closed;
  int done = 0;
  bool refuse = false;
};

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
    core = spawn_core_actors(sys, cfg, {}, services ? services(sys) : core_services{});
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
  client connect(const std::string& user, identity who = {}) {
    who.user = user;
    auto link = std::make_shared<recording_link>();
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
};

} // namespace rc::test
