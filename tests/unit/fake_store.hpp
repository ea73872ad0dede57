#pragma once

// A durable store of private messages in memory (actors/inbox_store.hpp),
// behaving as the broker's does: fetched frames wait for an ack or a
// requeue, it can be down, and its fetch answers can lag.

#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include <deque>
#include <map>
#include <string>
#include <vector>

#include "actors/inbox_store.hpp"
#include "actors/messages.hpp"
#include "common/error_code.hpp"

namespace rc::test {

struct fake_store_state {
  struct item {
    std::uint64_t tag;
    std::string text;
  };
  std::map<std::string, std::deque<item>> ready;
  std::map<std::uint64_t, std::pair<std::string, item>> unacked;
  std::vector<std::uint64_t> acked;
  std::uint64_t next_tag = 0;
  bool down = false;
  /// Fetches are answered with what was ready when they came, but only on
  /// `release_fetches`: like the broker's store, whose answers lag.
  bool hold_fetches = false;
  std::vector<std::pair<caf::response_promise, stored_frames>> held;
  /// Stores are kept at once but confirmed only on `release`: like a
  /// broker whose confirms lag.
  bool hold_stores = false;
  std::vector<caf::response_promise> held_stores;
  static inline const char* name = "fake_store";
};

using release_atom = caf::atom_constant<caf::atom("release")>;

inline caf::behavior fake_store(caf::stateful_actor<fake_store_state>* self) {
  return {
    [self](release_atom) { // answers what it holds (from within the actor)
      auto held = std::move(self->state.held);
      self->state.held.clear();
      for (auto& [rp, frames] : held)
        rp.deliver(std::move(frames));
      auto stores = std::move(self->state.held_stores);
      self->state.held_stores.clear();
      for (auto& rp : stores)
        rp.deliver(caf::ok_atom::value);
    },
    [self](store_atom, const std::string& user, std::string& text) -> caf::result<caf::ok_atom> {
      auto& st = self->state;
      if (st.down)
        return make_error(error_code::unavailable);
      st.ready[user].push_back({++st.next_tag, std::move(text)});
      if (!st.hold_stores)
        return caf::ok_atom::value;
      st.held_stores.push_back(self->make_response_promise());
      return caf::delegated<caf::ok_atom>{};
    },
    [self](fetch_atom, const std::string& user, std::uint32_t max) -> caf::result<stored_frames> {
      auto& st = self->state;
      if (st.down)
        return make_error(error_code::unavailable);
      stored_frames out;
      auto& q = st.ready[user];
      while (!q.empty() && out.tags.size() < max) {
        out.tags.push_back(q.front().tag);
        out.texts.push_back(q.front().text);
        st.unacked.emplace(q.front().tag, std::make_pair(user, q.front()));
        q.pop_front();
      }
      if (!st.hold_fetches)
        return out;
      st.held.emplace_back(self->make_response_promise(), std::move(out));
      return caf::delegated<stored_frames>{};
    },
    [self](ack_atom, const std::string&, std::uint64_t tag) {
      self->state.unacked.erase(tag);
      self->state.acked.push_back(tag);
    },
    [self](requeue_atom, const std::string&, const std::vector<std::uint64_t>& tags) {
      auto& st = self->state;
      for (auto it = tags.rbegin(); it != tags.rend(); ++it) {
        auto u = st.unacked.find(*it);
        st.ready[u->second.first].push_front(u->second.second);
        st.unacked.erase(u);
      }
    },
  };
}

/// A fixture's store, constructed before the node fixture that spawns the
/// store into it (derive from this first).
struct store_holder {
  caf::actor store;
};

} // namespace rc::test
