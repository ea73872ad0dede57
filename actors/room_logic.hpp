#pragma once

// The public API for server-side room logic. A room kind is registered under
// a room-name pattern (`chat:*`); every room whose name matches runs an
// instance of that logic inside its room actor, on the room's owner node.
// See docs/room-logic.md for a walk-through and examples/ for programs.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error_code.hpp"

namespace rc {

/// One member of a room: a connection of `user`. `id` is unique within the
/// room's current incarnation (a user with two tabs is two members).
struct member {
  std::uint64_t id = 0;
  std::string user;
};

/// What a logic can do while one of its callbacks runs. Valid only during
/// the callback (do not keep it). All sends are asynchronous and ordered:
/// frames reach each member in the order the logic sent them.
class room_context {
public:
  virtual ~room_context() = default;

  virtual const std::string& room() const = 0;
  /// The `seq` of the room's last message; a forwarded publish gets seq() + 1.
  virtual std::uint64_t seq() const = 0;
  /// Current members, in joining order.
  virtual std::vector<member> members() const = 0;
  /// A `message` frame with the room's next `seq` to every member, as if
  /// `from` had published `data`.
  virtual void publish(const std::string& from, const nlohmann::json& data) = 0;
  /// Any frame (a JSON object with a `type`) to every member; no `seq`.
  virtual void send_all(const nlohmann::json& frame) = 0;
  /// Any frame to one member.
  virtual void send_to(const member& m, const nlohmann::json& frame) = 0;
  /// A `private` message from this room (`from` = the room name) to every
  /// connection of `user`, kept while the user is offline.
  virtual void send_user(const std::string& user, const nlohmann::json& data) = 0;
  /// Calls `on_timer` every `interval` from now on; zero stops the timer.
  virtual void every(std::chrono::milliseconds interval) = 0;
};

/// A refusal: becomes an `error` frame `{code, message}` for the requester.
struct refusal {
  error_code code = error_code::forbidden;
  std::string message;
};

/// The answer to a join.
struct join_decision {
  std::optional<refusal> refused;
  /// Frames for the joiner only, written right after its `joined`.
  std::vector<nlohmann::json> to_joiner;

  static join_decision accept(std::vector<nlohmann::json> frames = {}) {
    return {std::nullopt, std::move(frames)};
  }
  static join_decision refuse(error_code code, std::string message) {
    return {refusal{code, std::move(message)}, {}};
  }
};

/// The answer to a publish.
struct publish_decision {
  enum class kind {
    forward, ///< fan `data` out as a `message` with the next seq (echo honoured)
    reply,   ///< send `frame` to the sender only; nothing is fanned out
    refuse,  ///< an `error` frame for the sender
    drop,    ///< accepted, nothing is sent
  };
  kind what = kind::forward;
  nlohmann::json data;  ///< forward: the (possibly transformed) data
  nlohmann::json frame; ///< reply: the frame
  refusal why;          ///< refuse

  static publish_decision forward(nlohmann::json data) {
    return {kind::forward, std::move(data), {}, {}};
  }
  static publish_decision reply(nlohmann::json frame) {
    return {kind::reply, {}, std::move(frame), {}};
  }
  static publish_decision refuse(error_code code, std::string message) {
    return {kind::refuse, {}, {}, refusal{code, std::move(message)}};
  }
  static publish_decision drop() { return {kind::drop, {}, {}, {}}; }
};

/// Server-side logic of one room. Subclass it and override what you need;
/// the defaults are roomcast's plain room (everything accepted, publishes
/// fanned out unchanged). Callbacks run one at a time inside the room actor.
/// An exception thrown from any of them is contained: the room restarts
/// with a fresh logic and a new epoch, and its members get a fresh `joined`.
class room_logic {
public:
  virtual ~room_logic() = default;

  /// The room starts (fresh, restarted, or after a move: then `restore`
  /// follows). Set timers here.
  virtual void on_start(room_context&) {}
  /// A member wants in; it is a member only if this accepts.
  virtual join_decision on_join(room_context&, const member&) { return join_decision::accept(); }
  /// A member left (or its connection closed).
  virtual void on_leave(room_context&, const member&) {}
  /// A member (or a service: `from.id == 0`) published `data`.
  virtual publish_decision on_publish(room_context&, const member& from,
                                      const nlohmann::json& data) {
    (void) from;
    return publish_decision::forward(data);
  }
  /// The timer set with `room_context::every` fired.
  virtual void on_timer(room_context&) {}
  /// The logic's state, for moving the room to another node (a graceful
  /// move keeps it). After a crash of the owner node the room starts fresh.
  virtual std::string snapshot() const { return {}; }
  /// Takes over a state made by `snapshot` (after `on_start`).
  virtual void restore(room_context&, const std::string& state) { (void) state; }
};

using room_logic_factory = std::function<std::unique_ptr<room_logic>(const std::string& room)>;

/// The room kinds of a node: which logic runs in which room. The first
/// pattern (glob: `*`, `?`) that matches a room's name wins; rooms that
/// match none run the default `room_logic`. Register every kind on every
/// node of a cluster, before the node starts.
class room_kinds {
public:
  void add(std::string pattern, room_logic_factory factory);
  std::unique_ptr<room_logic> make(const std::string& room) const;
  /// Whether a registered kind covers `room` (else it is a plain room).
  bool matches(const std::string& room) const;
  bool empty() const { return kinds_.empty(); }

private:
  std::vector<std::pair<std::string, room_logic_factory>> kinds_;
};

} // namespace rc
