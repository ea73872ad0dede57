#include "actors/connection.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include <variant>

#include "actors/hardening.hpp"
#include "actors/names.hpp"
#include "actors/protocol.hpp"
#include "actors/request_timeout.hpp"
#include "common/metrics.hpp"

namespace rc {

namespace {

using self_ptr = connection_actor*;

constexpr auto request_timeout = std::chrono::seconds{10};
/// A join waits longer than the relay may take to answer it (held up to 6 s
/// while it looks for the room, then 5 s for the room): with less, a late
/// `joined` came after the client's `error`, for a room the connection did
/// not count it in.
constexpr auto join_timeout = std::chrono::seconds{15};
/// A `send` waits longer than the user actor may take to answer it (up to
/// 5 s behind a slow reader's frames, then up to 10 s for the store:
/// actors/user.cpp), so that the answer the sender gets is the user's:
/// stored or not, never `unavailable` for a message that is then stored.
constexpr auto send_timeout = std::chrono::seconds{20};
/// The relay answers a leave only after the member's publishes it still
/// waits for (held up to 6 s, then answered within 15 s, `unavailable` at
/// worst).
constexpr auto leave_timeout = std::chrono::seconds{25};

/// Everything the connection itself sends answers the client's own request
/// (or greets it): never held for the write delay.
void send_text(self_ptr self, std::string text) {
  self->state.link->reply(make_frame(std::move(text)));
}

void send_error(self_ptr self, const std::string& id, error_code code,
                std::string_view message) {
  metrics::global().count_error(code);
  send_text(self, encode_error(id, code, message));
}

/// Error continuation for requests: maps a failed reply to an error frame.
auto on_failure(self_ptr self, std::string id, const char* what) {
  return [self, id = std::move(id), what](caf::error& err) {
    auto [code, message] = describe_failure(err, what);
    send_error(self, id, code, message);
  };
}

/// Success continuation for requests answered with a count: an `ack` when
/// the client gave an id (without one, success is silent).
auto ack_if_asked(self_ptr self, std::string id) {
  return [self, id = std::move(id)](std::uint64_t) {
    if (!id.empty())
      send_text(self, encode_ack(id));
  };
}

bool may_use_room(self_ptr self, const std::string& room) {
  auto& who = self->state.who;
  return !who.restricted || any_glob_match(who.room_globs, room);
}

void handle(self_ptr self, request& req) {
  auto& st = self->state;
  switch (req.type) {
    case request::kind::ping:
      send_text(self, encode_pong(req.id));
      return;
    case request::kind::join: {
      if (!may_use_room(self, req.room))
        return send_error(self, req.id, error_code::forbidden,
                          "the token does not allow room '" + req.room + "'");
      if (st.rooms.count(req.room) == 0 && st.rooms.size() >= st.ctx->limits.max_rooms_per_connection)
        return send_error(self, req.id, error_code::forbidden,
                          "too many rooms joined on this connection");
      // `await`: the next request is read only after the join completes,
      // so a publish right behind a join finds the membership in place. The
      // relay writes `joined` itself, ordered with the room's messages.
      auto join = self->request(st.ctx->relays, join_timeout, caf::join_atom::value, req.room,
                                member_ref{self, st.who.user, st.link}, req.id);
      join.await(
        [self, room = req.room, id = join.id()](caf::actor relay) {
          forget_request_timeout(self, id);
          self->state.rooms[room] = std::move(relay);
        },
        on_failure(self, req.id, "join"));
      return;
    }
    case request::kind::leave: {
      auto it = st.rooms.find(req.room);
      if (it == st.rooms.end())
        return send_error(self, req.id, error_code::not_member,
                          "not a member of room '" + req.room + "'");
      auto relay = it->second;
      st.rooms.erase(it);
      // `await`: the relay writes `left` after which no message of the room
      // arrives; the next request waits for that.
      self->request(relay, leave_timeout, caf::leave_atom::value, caf::actor{self}, req.id)
        .await([](caf::ok_atom) {}, [self, room = req.room, id = req.id](caf::error&) {
          // The relay is gone, so the membership is too.
          send_text(self, encode_left(room, id));
        });
      return;
    }
    case request::kind::publish: {
      auto it = st.rooms.find(req.room);
      if (it == st.rooms.end())
        return send_error(self, req.id, error_code::not_member,
                          "join room '" + req.room + "' before publishing to it");
      // The relay answers on the link: the answer then costs this actor no
      // second activation, which matters for many small rooms (issue 7).
      publish_request pub{envelope{st.who.user, std::move(req.data), req.echo, self->address()},
                          req.id, st.link};
      self->send(it->second, caf::publish_atom::value, std::move(pub));
      return;
    }
    case request::kind::send: {
      envelope env{st.who.user, std::move(req.data), false, self->address()};
      self->request(st.ctx->router, send_timeout, route_atom::value, user_atom::value, req.to,
                    std::move(env))
        .then(ack_if_asked(self, req.id), on_failure(self, req.id, "send"));
      return;
    }
    case request::kind::broadcast: {
      if (!st.ctx->allow_broadcast)
        return send_error(self, req.id, error_code::forbidden,
                          "broadcast is disabled on this cluster");
      envelope env{st.who.user, std::move(req.data), false, self->address()};
      self->request(st.ctx->router, request_timeout, route_atom::value, all_atom::value,
                    std::move(env))
        .then(ack_if_asked(self, req.id), on_failure(self, req.id, "broadcast"));
      return;
    }
  }
}

/// The handlers every connection actor shares (see actors/shared_behavior.hpp).
caf::behavior connection_handlers() {
  return {
    [](ws_frame_atom, std::string& text) {
      auto self = connection_actor::current();
      auto& st = self->state;
      metrics::global().frames_received++;
      // Over the limit, the frame is not parsed: only its id is looked up,
      // so a flood costs a scan per frame (it cost a whole parse).
      if (!st.limiter.try_acquire(st.ctx->rate())) {
        send_error(self, request_id(text), error_code::rate_limited, "too many requests, slow down");
        // Past a burst of refusals the frame counts as done only later, and
        // the session stops reading once a few such frames are outstanding.
        if (auto hold = st.limiter.hold_after_refusal(st.ctx->rate()); hold > hold.zero())
          self->delayed_send(self, hold, frame_done_atom::value);
        else
          st.link->frame_done();
        return;
      }
      auto parsed = parse_request(text);
      auto err = std::get_if<request_error>(&parsed);
      if (err)
        send_error(self, err->id, err->code, err->message);
      else
        handle(self, std::get<request>(parsed));
      st.link->frame_done();
    },
    [](ws_closed_atom) { connection_actor::current()->quit(); },
    [](frame_done_atom) { connection_actor::current()->state.link->frame_done(); },
    [](expire_atom) {
      connection_actor::current()->state.link->close(close_reason::auth_expired);
    },
    // Replies to the fire-and-forget registrations of `connection` (below).
    [](caf::ok_atom) {},
  };
}

} // namespace

connection_state::~connection_state() {
  if (!ctx)
    return;
  caf::anon_send(ctx->users, caf::leave_atom::value, who.user, self_addr);
  caf::anon_send(ctx->everyone, caf::leave_atom::value, self_addr);
}

caf::behavior connection(connection_actor* self, client_link_ptr link, identity who,
                         connection_context_ptr ctx) {
  harden(self, "connection");
  auto& st = self->state;
  st.link = std::move(link);
  st.who = std::move(who);
  st.ctx = std::move(ctx);
  st.limiter = rate_limiter{st.ctx->rate()};
  st.opened = std::chrono::steady_clock::now();
  st.self_addr = self->address();
  // The session closes itself when the actor ends for any reason other than
  // the socket closing: 1001 on shutdown, 1011 on a failure.
  self->attach_functor([l = st.link](const caf::error& reason) {
    if (reason == caf::exit_reason::user_shutdown)
      l->close(close_reason::shutdown);
    else if (reason && reason != caf::exit_reason::normal)
      l->close(close_reason::server_error);
  });
  send_text(self, encode_welcome(st.who.user, st.ctx->node));
  member_ref me{self, st.who.user, st.link};
  self->send(st.ctx->users, caf::join_atom::value, me);
  self->send(st.ctx->everyone, caf::join_atom::value, me);
  if (st.who.expires) {
    auto left = *st.who.expires - std::chrono::system_clock::now();
    self->delayed_send(self, std::max(left, decltype(left){0}), expire_atom::value);
  }
  return connection_actor::shared<connection_handlers>();
}

} // namespace rc
