#include "actors/local_users.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>

#include "actors/hardening.hpp"
#include "actors/locator.hpp"
#include "actors/request_timeout.hpp"
#include "common/metrics.hpp"

namespace rc {

namespace {

using self_ptr = caf::stateful_actor<local_users_state>*;
using kind = metrics::cluster_kind;

void attach(self_ptr self, const std::string& user) {
  auto& e = self->state.users[user];
  if (e.attaching)
    return;
  e.attaching = true;
  auto retry = [self, user](caf::error&) {
    auto it = self->state.users.find(user);
    if (it != self->state.users.end())
      it->second.attaching = false;
    self->delayed_send(self, std::chrono::milliseconds{200}, retry_atom::value, user);
  };
  // The locator answers at once from its own state: no timeout (a CAF
  // timeout stays in the clock for its whole duration, per request).
  self->request(self->state.locator, caf::infinite, locate_atom::value, user_atom::value, user)
    .then(
      [self, user, retry](caf::actor dir) {
        count_if_remote(self, dir, kind::control);
        auto attach = self->request(dir, std::chrono::seconds{5}, attach_atom::value, user,
                                    caf::actor_cast<caf::actor>(self));
        attach.then(
            [self, user, req = attach.id()](caf::actor owner) {
              forget_request_timeout(self, req);
              auto it = self->state.users.find(user);
              if (it == self->state.users.end()) {
                // Everyone left while attaching.
                self->send(owner, detach_atom::value, caf::actor_cast<caf::actor>(self));
                return;
              }
              it->second.attaching = false;
              if (it->second.owner != owner) {
                if (it->second.owner)
                  self->demonitor(it->second.owner);
                it->second.owner = owner;
                self->monitor(owner);
              }
            },
            retry);
      },
      retry);
}

/// Writes `frame` to `m`'s socket, reporting the outcome as write `key`.
void deliver_confirmed(self_ptr self, const member_ref& m, std::uint64_t key,
                       const frame_ptr& frame) {
  m.link->deliver(frame, [me = caf::actor_cast<caf::actor>(self), key](bool written) {
    caf::anon_send(me, written_atom::value, key, written);
  });
}

/// Gives a further connection `m` of `user` the frames still waiting for a
/// socket of the user here to write them, oldest first.
void hand_pending_writes(self_ptr self, const std::string& user, const member_ref& m) {
  for (auto& [key, w] : self->state.writes)
    if (w.user == user) {
      ++w.outstanding;
      ++metrics::global().messages_delivered;
      deliver_confirmed(self, m, key, w.frame);
    }
}

/// A write of `user` was answered: not written, it goes back to the user
/// and comes again behind the frames still pending, so those are not
/// handed to a joining connection until none is left (see `returned`).
void note_settled(self_ptr self, const std::string& user, bool written) {
  auto& st = self->state;
  auto it = st.users.find(user);
  if (it == st.users.end())
    return;
  if (!written)
    it->second.returned = true;
  else if (it->second.returned
           && std::none_of(st.writes.begin(), st.writes.end(),
                           [&](const auto& w) { return w.second.user == user; }))
    it->second.returned = false;
}

} // namespace

caf::behavior local_users(caf::stateful_actor<local_users_state>* self, caf::actor locator) {
  harden(self, "local_users");
  self->state.locator = std::move(locator);
  // An owner moved or failed. Owners go in bursts (a node fails, the
  // membership changes), so DOWNs are collected and one scan of the users
  // re-attaches all of them: a scan per DOWN would be quadratic.
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& gone = self->state.gone_owners;
    if (gone.empty())
      self->send(self, reattach_atom::value);
    gone.insert(dm.source);
  });
  return {
    [self](caf::join_atom, member_ref& m) {
      auto user = m.user;
      auto& e = self->state.users[user];
      e.connections.push_back(std::move(m));
      if (e.connections.size() == 1)
        metrics::global().users++;
      else if (!e.returned)
        hand_pending_writes(self, user, e.connections.back());
      // Attaching again for a further connection is harmless for the user
      // and hands over what waits in its inbox: a message the user's other
      // (closing) connection here refused is not left waiting.
      attach(self, user);
    },
    [self](caf::leave_atom, const std::string& user, const caf::actor_addr& conn) {
      auto& users = self->state.users;
      auto it = users.find(user);
      if (it == users.end())
        return;
      auto& e = it->second;
      auto& conns = e.connections;
      auto c = std::find_if(conns.begin(), conns.end(),
                            [&](const member_ref& m) { return m.conn.address() == conn; });
      if (c == conns.end())
        return;
      conns.erase(c);
      if (conns.empty()) {
        metrics::global().users--;
        if (e.owner) {
          self->send(e.owner, detach_atom::value, caf::actor_cast<caf::actor>(self));
          // The owner's monitors are few, so this walk is short; without it
          // the owner's end would still reach us as a DOWN.
          self->demonitor(e.owner);
        }
        users.erase(it);
      }
    },
    [self](deliver_atom, const std::string& user, const std::string& text) {
      auto it = self->state.users.find(user);
      if (it == self->state.users.end())
        return std::uint64_t{0};
      // Counts the sockets that took the frame: a closing connection refuses
      // it, and with no taker the user keeps it for the next connection.
      auto frame = make_frame(text);
      std::uint64_t n = 0;
      for (auto& m : it->second.connections)
        n += m.link->deliver(frame) ? 1 : 0;
      metrics::global().messages_delivered += n;
      return n;
    },
    [self](deliver_atom, const std::string& user, const std::string& text,
           confirm_atom) -> caf::result<std::uint64_t> {
      auto& st = self->state;
      auto it = st.users.find(user);
      if (it == st.users.end())
        return std::uint64_t{0};
      auto key = ++st.next_write;
      auto& conns = it->second.connections;
      auto rp = self->make_response_promise();
      auto frame = make_frame(text);
      st.writes.emplace(key, local_users_state::pending_write{rp, conns.size(), user, frame});
      metrics::global().messages_delivered += conns.size();
      for (auto& m : conns)
        deliver_confirmed(self, m, key, frame);
      return rp;
    },
    [self](written_atom, std::uint64_t key, bool written) {
      auto& writes = self->state.writes;
      auto it = writes.find(key);
      if (it == writes.end())
        return; // answered by an earlier write
      if (written || --it->second.outstanding == 0) {
        it->second.rp.deliver(std::uint64_t{written ? 1u : 0u});
        auto user = std::move(it->second.user);
        writes.erase(it);
        note_settled(self, user, written);
      }
    },
    [self](reattach_atom) {
      auto& st = self->state;
      for (auto& [user, e] : st.users)
        if (e.owner && st.gone_owners.count(e.owner.address()) > 0) {
          // Attach to whoever owns the user now.
          e.owner = nullptr;
          attach(self, user);
        }
      st.gone_owners.clear();
    },
    [self](retry_atom, const std::string& user) {
      auto it = self->state.users.find(user);
      if (it != self->state.users.end() && !it->second.owner)
        attach(self, user);
    },
  };
}

} // namespace rc
