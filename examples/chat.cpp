// roomcast-chat: a node whose `chat:*` rooms keep the last 50 messages,
// replay them to every joiner, and announce presence.
//
// Frames it adds (documented in docs/room-logic.md):
//   to the joiner, right after `joined`:
//     {"type":"presence","room":R,"members":["alice","bob"]}
//     {"type":"history","room":R,"messages":[{"from":U,"seq":S,"data":D},...]}
//   to everyone else: {"type":"presence","room":R,"joined":U} / {"left":U}
// Same command line as roomcastd (`roomcast-chat --help`).

#include <deque>

#include "node/daemon.hpp"

namespace {

using nlohmann::json;

class chat_room : public rc::room_logic {
public:
  static constexpr std::size_t history_size = 50;

  rc::join_decision on_join(rc::room_context& ctx, const rc::member& who) override {
    json names = json::array();
    for (auto& m : ctx.members())
      names.push_back(m.user);
    names.push_back(who.user);
    ctx.send_all({{"type", "presence"}, {"room", ctx.room()}, {"joined", who.user}});
    return rc::join_decision::accept(
      {{{"type", "presence"}, {"room", ctx.room()}, {"members", names}},
       {{"type", "history"}, {"room", ctx.room()}, {"messages", history_json()}}});
  }

  void on_leave(rc::room_context& ctx, const rc::member& who) override {
    ctx.send_all({{"type", "presence"}, {"room", ctx.room()}, {"left", who.user}});
  }

  rc::publish_decision on_publish(rc::room_context& ctx, const rc::member& from,
                                  const json& data) override {
    // Forwarded, it gets the next seq; remember it for replays.
    history_.push_back({{"from", from.user}, {"seq", ctx.seq() + 1}, {"data", data}});
    if (history_.size() > history_size)
      history_.pop_front();
    return rc::publish_decision::forward(data);
  }

  std::string snapshot() const override { return history_json().dump(); }

  void restore(rc::room_context&, const std::string& state) override {
    auto j = json::parse(state);
    history_.assign(j.begin(), j.end());
  }

private:
  json history_json() const {
    json out = json::array();
    for (auto& h : history_)
      out.push_back(h);
    return out;
  }

  std::deque<json> history_;
};

} // namespace

int main(int argc, char** argv) {
  return rc::run_daemon(argc, argv, "roomcast-chat", [](rc::node& n) {
    n.kinds().add("chat:*", [](const std::string&) { return std::make_unique<chat_room>(); });
  });
}
