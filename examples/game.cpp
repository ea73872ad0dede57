// roomcast-game: `game:*` rooms collect player inputs and broadcast the
// aggregate state every 100 ms, the classic "tick to many clients" case.
//
// Players publish inputs: {"type":"publish","room":"game:1","data":{"move":[dx,dy]}}
// (dx, dy numbers, clamped to -1..1 and rounded); inputs are not fanned out.
// Only members play: a service's publish (HTTP API, AMQP) of a move is
// ignored. Every 100 ms while anyone plays, each member gets
//   {"type":"state","room":R,"tick":N,"players":{"alice":{"x":3,"y":-1},...}}
// Same command line as roomcastd (`roomcast-game --help`).

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>

#include "node/daemon.hpp"

namespace {

using nlohmann::json;
using namespace std::chrono_literals;

/// One component of a move: any JSON number, clamped to -1..1 in its own
/// type (converting to int first would wrap 2^32-1 to -1), then rounded.
int step(const json& v) {
  if (v.is_number_unsigned())
    return v.get<std::uint64_t>() > 0 ? 1 : 0;
  if (v.is_number_integer())
    return static_cast<int>(std::clamp<std::int64_t>(v.get<std::int64_t>(), -1, 1));
  return static_cast<int>(std::lround(std::clamp(v.get<double>(), -1.0, 1.0)));
}

class game_room : public rc::room_logic {
public:
  rc::join_decision on_join(rc::room_context& ctx, const rc::member& who) override {
    if (players_.empty())
      ctx.every(100ms); // tick only while someone plays
    players_.try_emplace(who.user);
    return rc::join_decision::accept();
  }

  void on_leave(rc::room_context& ctx, const rc::member& who) override {
    bool still_there = false;
    for (auto& m : ctx.members())
      still_there = still_there || m.user == who.user;
    if (!still_there)
      players_.erase(who.user);
    if (players_.empty())
      ctx.every(0ms);
  }

  rc::publish_decision on_publish(rc::room_context&, const rc::member& from,
                                  const json& data) override {
    auto move = data.find("move");
    if (move == data.end() || !move->is_array() || move->size() != 2
        || !(*move)[0].is_number() || !(*move)[1].is_number())
      return rc::publish_decision::refuse(rc::error_code::bad_request,
                                          "input must be {\"move\":[dx,dy]}");
    // A service (id 0) is no player: it would join the game for good and
    // keep the tick running after every member left. Its move is dropped
    // quietly, like a move from anyone who is not playing.
    auto p = players_.find(from.user);
    if (from.id == 0 || p == players_.end())
      return rc::publish_decision::drop();
    p->second.x += step((*move)[0]);
    p->second.y += step((*move)[1]);
    return rc::publish_decision::drop();
  }

  void on_timer(rc::room_context& ctx) override {
    json players = json::object();
    for (auto& [name, p] : players_)
      players[name] = {{"x", p.x}, {"y", p.y}};
    ctx.send_all({{"type", "state"}, {"room", ctx.room()}, {"tick", ++tick_}, {"players", players}});
  }

  std::string snapshot() const override {
    json players = json::object();
    for (auto& [name, p] : players_)
      players[name] = {p.x, p.y};
    return json{{"tick", tick_}, {"players", players}}.dump();
  }

  void restore(rc::room_context& ctx, const std::string& state) override {
    auto j = json::parse(state);
    tick_ = j.at("tick").get<std::uint64_t>();
    for (auto& [name, xy] : j.at("players").items())
      players_[name] = {xy[0].get<int>(), xy[1].get<int>()};
    if (!players_.empty())
      ctx.every(100ms);
  }

private:
  struct position {
    int x = 0;
    int y = 0;
  };
  std::map<std::string, position> players_;
  std::uint64_t tick_ = 0;
};

} // namespace

int main(int argc, char** argv) {
  return rc::run_daemon(argc, argv, "roomcast-game", [](rc::node& n) {
    n.kinds().add("game:*", [](const std::string&) { return std::make_unique<game_room>(); });
  });
}
