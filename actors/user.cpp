#include "actors/user.hpp"

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include <algorithm>
#include <utility>

#include "actors/hardening.hpp"
#include "actors/locator.hpp"
#include "actors/inbox_store.hpp"
#include "actors/protocol.hpp"
#include "actors/room.hpp"
#include "common/metrics.hpp"

namespace rc {

drain_window drain_window::for_limits(const limits_settings& l) {
  return {std::max<std::size_t>(1, l.max_queue_frames / 4),
          std::max<std::size_t>(1, l.max_queue_bytes / 4)};
}

namespace {

/// Adds `delta` to the bytes this user holds in memory, its node's and the metric's.
void count_inbox(user_state& st, std::int64_t delta) {
  st.inbox_bytes = static_cast<std::uint64_t>(static_cast<std::int64_t>(st.inbox_bytes) + delta);
  if (st.setup && st.setup->budget)
    st.setup->budget->used += delta;
  metrics::global().inbox_bytes += delta;
}

} // namespace

user_state::~user_state() {
  count_inbox(*this, -static_cast<std::int64_t>(inbox_bytes));
  if (setup)
    for (auto& node : nodes)
      caf::anon_send(setup->watch, unwatch_atom::value, node, self_addr);
}

namespace {

using self_ptr = user_actor*;
using phase = move_state::phase;
using kind = metrics::cluster_kind;

/// Waiting and live frames wait for their socket write however long it
/// takes: every one is answered, written or not (the session reports the
/// frames it drops when it closes, and the node watch a registry that
/// ended). A timeout
/// would send again a frame the session may still write: a duplicate, and
/// out of order (a reader paused for 30 s got 17 of 600 twice).
constexpr auto write_timeout = caf::infinite;
constexpr auto store_timeout = std::chrono::seconds{10};
/// Stored frames fetched and written per round trip to the store.
constexpr std::uint32_t fetch_batch = 100;
/// Pause before fetching again after the store failed or a write failed.
constexpr auto drain_retry = std::chrono::seconds{1};
/// How long a message to store waits behind live frames whose writes are
/// not answered (a reader that is behind) before it is stored anyway: its
/// sender's connection waits 20 s for the answer (the wait, then up to
/// `store_timeout`), and a message stored after that would arrive although
/// its sender was told to retry.
constexpr auto store_wait = std::chrono::seconds{5};
/// How long a move waits for the memory batch in flight. Then it goes
/// without the frames on their way (a stopping node waits at most 5 s).
constexpr auto batch_wait = std::chrono::seconds{1};

bool idle(const user_state& st) {
  return st.nodes.empty() && st.inbox.empty() && !st.draining && st.busy == 0;
}

void arm_idle_timer(self_ptr self) {
  auto& st = self->state;
  ++st.idle_generation;
  if (idle(st))
    self->delayed_send(self, st.setup->idle_timeout, caf::idle_atom::value, st.idle_generation);
}

/// The next private message id: unique in the cluster, so that a client
/// can drop the copy a node crash may cause (with or without a store).
std::string next_id(self_ptr self) {
  auto& st = self->state;
  if (st.id_epoch == 0)
    st.id_epoch = make_epoch_number();
  return epoch_text(st.id_epoch) + "-" + std::to_string(++st.next_id);
}

/// Starts delivering to `node` (a registry), watched for its end; false if
/// it was delivered to already.
bool add_node(self_ptr self, const caf::actor& node) {
  auto& st = self->state;
  if (std::find(st.nodes.begin(), st.nodes.end(), node) != st.nodes.end())
    return false;
  self->send(st.setup->watch, watch_atom::value, node, st.self_addr);
  st.nodes.push_back(node);
  return true;
}

bool lists(const std::vector<caf::actor>& nodes, const caf::actor_addr& node) {
  return std::any_of(nodes.begin(), nodes.end(),
                     [&](const caf::actor& n) { return n.address() == node; });
}

bool has_node(const user_state& st, const caf::actor_addr& node) {
  return lists(st.nodes, node);
}

/// Takes `node` off `waiting` on its answer; false if it was not on it (it
/// ended before it answered).
bool take_answer(std::vector<caf::actor_addr>& waiting, const caf::actor_addr& node) {
  auto it = std::find(waiting.begin(), waiting.end(), node);
  if (it == waiting.end())
    return false;
  waiting.erase(it);
  return true;
}

/// Whether frames on their way still wait for `node`'s answer: a live
/// frame no node wrote yet, or a drain batch writing to it.
bool awaits(const user_state& st, const caf::actor_addr& node) {
  if (st.live)
    for (auto& f : st.live->frames)
      if (!f.written && std::find(f.waiting.begin(), f.waiting.end(), node) != f.waiting.end())
        return true;
  for (auto* b : {st.batch.get(), st.memory_batch.get()})
    if (b && lists(b->nodes, node))
      return true;
  return false;
}

/// Stops watching `node` once the user neither delivers to it nor waits
/// for its answers. A node that detached while frames waited for it stays
/// watched until they are settled: if it ends first, its answers never
/// come, and only its end settles them (else they would wait for good).
void unwatch_if_done(self_ptr self, const caf::actor_addr& node) {
  auto& st = self->state;
  if (has_node(st, node) || awaits(st, node))
    return;
  self->send(st.setup->watch, unwatch_atom::value, caf::actor_cast<caf::actor>(node),
             st.self_addr);
}

void remove_node(self_ptr self, const caf::actor_addr& node) {
  auto& nodes = self->state.nodes;
  auto it = std::find_if(nodes.begin(), nodes.end(),
                         [&](const caf::actor& n) { return n.address() == node; });
  if (it == nodes.end())
    return;
  nodes.erase(it);
  arm_idle_timer(self);
}

void keep(self_ptr self, std::string text) {
  count_inbox(self->state, static_cast<std::int64_t>(text.size()));
  self->state.inbox.push_back(std::move(text));
  ++self->state.idle_generation;
}

/// Stores one frame durably; `done(true)` once the store confirmed it.
template <class F>
void store_frame(self_ptr self, const std::string& text, F done) {
  auto& st = self->state;
  ++st.busy;
  self->request(st.setup->store, store_timeout, store_atom::value, st.user, text)
    .then(
      [self, done](caf::ok_atom) mutable {
        --self->state.busy;
        done(true);
        arm_idle_timer(self);
      },
      [self, done](caf::error& err) mutable {
        --self->state.busy;
        spdlog::warn("user {}: cannot store a private message: {}", self->state.user,
                     log_text(err));
        done(false);
        arm_idle_timer(self);
      });
}

void drain(self_ptr self);
void drain_memory(self_ptr self);
void forward_inbox(self_ptr self);

/// Frames went into the store (or back to it) while this actor was moving
/// or had moved: the successor may have fetched already and found nothing,
/// and would leave them for the user's next connection. A `(fetch_atom)` to
/// ourselves reaches it (held while moving, passed on once moved) and makes
/// it fetch again. It also ends this actor's drain: a successor that
/// adopted while it was under way waits for this word before fetching.
void stored_for_successor(self_ptr self) {
  self->state.draining = false;
  self->send(self, fetch_atom::value);
}

/// Gives fetched frames that were not written back to the store, in their
/// place: it holds something for the user again.
void requeue(self_ptr self, std::vector<std::uint64_t> tags) {
  if (tags.empty())
    return;
  auto& st = self->state;
  st.stored_empty = false;
  self->send(st.setup->store, requeue_atom::value, st.user, std::move(tags));
}

/// Stores `text` durably behind whatever was stored before it (newer
/// messages are stored behind it meanwhile, and a fetch in flight may not
/// have seen it); `then(stored)` once the store answered. A stored frame
/// goes out at once if the user has a connection and nothing drains, or is
/// the successor's to fetch if the user moved meanwhile.
template <class F>
void store_behind(self_ptr self, const std::string& text, F then) {
  auto& st = self->state;
  ++st.storing;
  st.refetch = true;
  st.stored_empty = false;
  store_frame(self, text, [self, then](bool stored) mutable {
    auto& st = self->state;
    --st.storing;
    then(stored);
    if (!stored)
      return;
    if (st.move.state != phase::serving)
      return stored_for_successor(self);
    if (!st.nodes.empty() && !st.draining)
      drain(self);
  });
}

/// A frame that no connection took (the user's connections were closing):
/// into the durable store if there is one (kept in memory if that fails),
/// else into the memory inbox. Either way it goes out again at once if the
/// user has a connection by then (a new tab, or another one), and newer
/// messages wait behind it meanwhile.
void keep_or_store(self_ptr self, std::string text) {
  auto& st = self->state;
  if (!st.setup->store) {
    keep(self, std::move(text));
    if (st.move.state == phase::forwarding)
      return forward_inbox(self);
    return drain_memory(self); // while moving, it goes along once moved
  }
  store_behind(self, text, [self, text](bool stored) {
    if (!stored) {
      keep(self, text);
      drain_memory(self);
    }
  });
}

/// Stores a new private message durably, behind any stored before it, and
/// answers `rp` once the store confirmed it (`unavailable` if it cannot:
/// not accepted, so not kept either).
void store_new(self_ptr self, const std::string& text, caf::response_promise rp) {
  store_behind(self, text, [self, rp](bool stored) mutable {
    self->state.stored_empty = false; // even unconfirmed, it may have been stored
    if (stored)
      rp.deliver(std::uint64_t{0});
    else
      rp.deliver(make_error(error_code::unavailable));
  });
}

/// Ends the live frames at the front that are settled, in the order they
/// were sent: one that no socket wrote is kept for the next connection,
/// and a newer message that waited behind them is kept or stored now.
void release_live(self_ptr self) {
  auto& st = self->state;
  auto& live = *st.live;
  std::size_t n = 0;
  std::vector<caf::actor_addr> not_answered; // by frames that are settled now
  for (; n < live.frames.size(); ++n) {
    auto& f = live.frames[n];
    if (!f.written && !f.waiting.empty())
      break;
    not_answered.insert(not_answered.end(), f.waiting.begin(), f.waiting.end());
    if (f.counted)
      count_inbox(st, -static_cast<std::int64_t>(f.text.size())); // keep counts it again
    if (f.stored.pending())
      store_new(self, f.text, std::move(f.stored));
    else if (!f.written)
      keep_or_store(self, std::move(f.text));
  }
  live.frames.erase(live.frames.begin(), live.frames.begin() + static_cast<std::ptrdiff_t>(n));
  live.first += n;
  st.busy -= static_cast<std::uint32_t>(n);
  if (live.frames.empty()) {
    st.live_next = live.first;
    st.live = nullptr;
    arm_idle_timer(self);
  }
  for (auto& node : not_answered)
    unwatch_if_done(self, node);
}

/// The answer of `node` for live frame `seq`: whether a socket of the
/// user wrote it.
void settle_live(self_ptr self, std::uint64_t seq, const caf::actor_addr& node, bool written) {
  auto& st = self->state;
  if (!st.live || seq < st.live->first)
    return; // settled already: another node wrote it
  auto& f = st.live->frames[seq - st.live->first];
  if (!take_answer(f.waiting, node))
    return; // the node ended before it answered
  f.written = f.written || written;
  release_live(self);
  if (!has_node(st, node))
    unwatch_if_done(self, node); // it detached while this frame waited for it
}

/// A node with live frames on their way ended: its answers will not come,
/// so each such frame counts as not written there (one it wrote but did
/// not confirm is then delivered again, as for waiting frames).
void abandon_live_on(self_ptr self, const caf::actor_addr& node) {
  if (!self->state.live)
    return;
  for (auto& f : self->state.live->frames)
    f.waiting.erase(std::remove(f.waiting.begin(), f.waiting.end(), node), f.waiting.end());
  release_live(self);
}

/// Asks each of `nodes` (registries) to write `text` to the user's sockets
/// there, and lists them in `waiting`; `answered(node, written)` once a
/// socket there wrote it or none could (false if the node ended first).
/// No timeout: see `write_timeout`.
template <class F>
void request_writes(self_ptr self, const std::vector<caf::actor>& nodes, const std::string& text,
                    std::vector<caf::actor_addr>& waiting, F answered) {
  for (auto& node : nodes) {
    waiting.push_back(node.address());
    count_if_remote(self, node, kind::user);
    self->request(node, write_timeout, deliver_atom::value, self->state.user, text,
                  confirm_atom::value)
      .then([answered, n = node.address()](std::uint64_t written) mutable {
              answered(n, written > 0);
            },
            [answered, n = node.address()](caf::error&) mutable { answered(n, false); });
  }
}

/// Whether a message to keep or store waits behind the live frames: a
/// newer one waits behind it too, rather than overtake it live (a node
/// that attached meanwhile would get the newer one first).
bool waits_behind_live(const user_state& st) {
  return st.live
         && std::any_of(st.live->frames.begin(), st.live->frames.end(),
                        [](const user_state::live_frame& f) {
                          return f.counted || f.stored.pending();
                        });
}

/// Asks `nodes` to write live frame `f`, number `seq`; their answers settle it.
void request_live_writes(self_ptr self, const std::vector<caf::actor>& nodes, std::uint64_t seq,
                         user_state::live_frame& f) {
  request_writes(self, nodes, f.text, f.waiting,
                 [self, seq](const caf::actor_addr& n, bool written) {
                   settle_live(self, seq, n, written);
                 });
}

/// Puts a newer message that is to be kept (or, with `stored`, stored and
/// then answered) behind the live frames still on their way.
void after_live(self_ptr self, std::string text, caf::response_promise stored = {}) {
  auto& st = self->state;
  if (stored.pending()) // `(retry_atom)` stores it if it still waits then
    self->delayed_send(self, store_wait, retry_atom::value);
  // One to keep holds memory already: it counts against the budget now,
  // so that every message waiting here is checked against the others.
  bool counted = !stored.pending();
  if (counted)
    count_inbox(st, static_cast<std::int64_t>(text.size()));
  st.live->frames.push_back(
    {std::move(text), {}, false, std::move(stored), counted, self->clock().now()});
  ++st.busy;
}

/// Stores the messages that have waited `store_wait` behind live frames
/// (a reader that is behind): the frames ahead take long, and one of them
/// that no socket wrote will come after them, rather than their senders
/// being told to retry. (Checked on `(retry_atom)`: a handler of its own
/// would cost every user actor its match case.)
void store_overdue(self_ptr self) {
  auto& st = self->state;
  if (!st.live)
    return;
  auto due = self->clock().now() - store_wait;
  for (auto& f : st.live->frames)
    if (f.stored.pending() && f.since <= due) {
      store_new(self, f.text, std::move(f.stored));
      f.written = true; // handed on: nothing is left to do in its turn
    }
}

/// Sends one private frame to every node in `nodes`, each answering once a
/// socket of the user wrote it (or none could). If none did (the user's
/// connections closed: its client's close or a slow consumer's dropped the
/// queue), the frame goes back to the inbox rather than being lost.
void deliver_to(self_ptr self, const std::vector<caf::actor>& nodes, const std::string& text) {
  auto& st = self->state;
  if (!st.live) {
    st.live = std::make_unique<user_state::live_frames>();
    st.live->first = st.live_next;
  }
  auto seq = st.live->first + st.live->frames.size();
  user_state::live_frame f{text, {}, false, {}, false, {}};
  request_live_writes(self, nodes, seq, f);
  st.live->frames.push_back(std::move(f));
  ++st.busy;
}

/// Sends a node that has just attached the live frames no socket has
/// written yet, oldest first and before any newer one: one that the user's
/// other connections then fail would otherwise reach this node's
/// connections later, from the inbox, after newer frames. Messages waiting
/// behind the live frames to be kept or stored are not frames yet. Nor are
/// frames from one the node still has (it detached and attached again
/// before answering): if its old connection fails that one, it comes back
/// through the inbox, and newer ones must not be there before it.
void replay_live_to(self_ptr self, const caf::actor& node) {
  auto& st = self->state;
  if (!st.live)
    return;
  auto& live = *st.live;
  for (std::size_t i = 0; i < live.frames.size(); ++i) {
    auto& f = live.frames[i];
    if (std::find(f.waiting.begin(), f.waiting.end(), node.address()) != f.waiting.end())
      break;
    if (f.written || f.counted || f.stored.pending())
      continue;
    request_live_writes(self, {node}, live.first + i, f);
  }
}

/// Stops draining until the next attach (or retries soon while the user
/// still has connections).
void pause_drain(self_ptr self) {
  auto& st = self->state;
  if (st.nodes.empty()) {
    st.draining = false;
    arm_idle_timer(self);
  } else {
    st.drain_paused = true;
    self->delayed_send(self, drain_retry, retry_atom::value);
  }
}

using batch_ptr = std::shared_ptr<user_state::drain_batch>;

std::shared_ptr<user_state::drain_batch>& slot_of(user_state& st, const batch_ptr& b) {
  return b->memory ? st.memory_batch : st.batch;
}

void finish_batch(self_ptr self, const batch_ptr& b);

/// Puts frames of the memory batch `b` back in the inbox, where they were:
/// at its front, but behind older frames a predecessor handed on meanwhile.
template <class It>
void put_back(user_state& st, const user_state::drain_batch& b, It first, It last) {
  auto at = std::min(b.older_ahead, st.inbox.size());
  st.inbox.insert(st.inbox.begin() + static_cast<std::ptrdiff_t>(at), std::make_move_iterator(first),
                  std::make_move_iterator(last));
}

void pump(self_ptr self, const batch_ptr& b);

/// Frame `i` of batch `b` is settled: written by a node, or by none.
void settle_frame(self_ptr self, const batch_ptr& b, std::size_t i, bool written) {
  using result = user_state::drain_batch::result;
  auto& st = self->state;
  auto size = b->texts[i].size();
  b->waiting[i].clear();
  --b->in_flight;
  b->bytes_in_flight -= size;
  b->outcome[i] = written ? result::written : result::failed;
  if (written && !b->memory)
    self->send(st.setup->store, ack_atom::value, st.user, b->tags[i]);
  if (written && b->memory)
    count_inbox(st, -static_cast<std::int64_t>(size));
  if (!written)
    b->stopped = true; // the connection is closing: the rest waits too
  if (b->in_flight == 0 && (b->stopped || b->next == b->texts.size()))
    return finish_batch(self, b);
  pump(self, b);
}

/// The answer of `node` for frame `i` of batch `b`.
void answer_frame(self_ptr self, const batch_ptr& b, std::size_t i, const caf::actor_addr& node,
                  bool written) {
  if (slot_of(self->state, b) != b || b->outcome[i] != user_state::drain_batch::pending)
    return; // settled already: the batch ended, or another node wrote it
  if (!take_answer(b->waiting[i], node))
    return; // the node ended before it answered
  if (written || b->waiting[i].empty())
    settle_frame(self, b, i, written);
}

/// Sends the batch's next frames, in order, while its window has room (one
/// frame always goes when none is in flight, however large it is); each
/// confirmation makes room for the next.
void pump(self_ptr self, const batch_ptr& b) {
  auto& w = self->state.setup->window;
  b->waiting.resize(b->texts.size());
  while (!b->stopped && b->next < b->texts.size()) {
    auto i = b->next;
    auto size = b->texts[i].size();
    if (b->in_flight > 0 && (b->in_flight >= w.frames || b->bytes_in_flight + size > w.bytes))
      return;
    ++b->next;
    ++b->in_flight;
    b->bytes_in_flight += size;
    if (b->nodes.empty()) { // every node ended
      settle_frame(self, b, i, false);
      return;
    }
    request_writes(self, b->nodes, b->texts[i], b->waiting[i],
                   [self, b, i](const caf::actor_addr& n, bool written) {
                     answer_frame(self, b, i, n, written);
                   });
  }
}

/// Ends a batch: its unwritten frames go back where they came from, in
/// order (the store, or the front of the memory inbox); if all were
/// written, the next batch follows.
void finish_batch(self_ptr self, const batch_ptr& b) {
  auto& st = self->state;
  slot_of(st, b) = nullptr;
  --st.busy;
  for (auto& node : b->nodes)
    unwatch_if_done(self, node.address());
  std::vector<std::size_t> back;
  for (size_t i = 0; i < b->texts.size(); ++i)
    if (b->outcome[i] != user_state::drain_batch::written)
      back.push_back(i);
  if (b->memory) {
    std::vector<std::string> texts;
    for (auto i : back)
      texts.push_back(std::move(b->texts[i]));
    put_back(st, *b, texts.begin(), texts.end());
    if (b->then_move) { // the move waited for this batch
      auto handoff = std::move(b->then_move);
      b->then_move = nullptr;
      return handoff();
    }
    // Moved meanwhile: what was not written follows the user (while the
    // move is in flight it waits in the inbox, sent once it is done).
    if (st.move.state == phase::forwarding)
      return forward_inbox(self);
    if (st.move.state == phase::moving)
      return;
    if (back.empty())
      return drain_memory(self);
    if (!st.nodes.empty())
      self->delayed_send(self, drain_retry, retry_atom::value);
    arm_idle_timer(self);
    return;
  }
  if (back.empty() && st.move.state == phase::serving)
    return drain(self);
  std::vector<std::uint64_t> tags;
  for (auto i : back)
    tags.push_back(b->tags[i]);
  requeue(self, std::move(tags));
  if (st.move.state != phase::serving)
    return stored_for_successor(self); // the rest is the successor's
  pause_drain(self);
}

/// Writes one fetched batch in order to every node of the user; acks each
/// frame once written, returns the unwritten ones to the store.
void write_batch(self_ptr self, stored_frames frames) {
  auto& st = self->state;
  auto b = std::make_shared<user_state::drain_batch>();
  b->tags = std::move(frames.tags);
  b->texts = std::move(frames.texts);
  b->outcome.assign(b->tags.size(), user_state::drain_batch::pending);
  b->nodes = st.nodes;
  st.batch = b;
  ++st.busy;
  pump(self, b);
}

/// Writes the memory inbox to the user's nodes, a batch at a time, unless
/// that already runs; messages that come meanwhile are kept behind it.
void drain_memory(self_ptr self) {
  auto& st = self->state;
  if (st.memory_batch || st.inbox.empty() || st.nodes.empty()
      || st.move.state != phase::serving) {
    arm_idle_timer(self);
    return;
  }
  auto b = std::make_shared<user_state::drain_batch>();
  b->memory = true;
  auto n = std::min<std::size_t>(st.inbox.size(), fetch_batch);
  auto first = st.inbox.begin();
  b->texts.assign(std::make_move_iterator(first), std::make_move_iterator(first + n));
  st.inbox.erase(first, first + n);
  st.late_ahead -= std::min(st.late_ahead, n);
  b->outcome.assign(n, user_state::drain_batch::pending);
  b->nodes = st.nodes;
  st.memory_batch = b;
  ++st.busy;
  pump(self, b);
}

/// A node writing a batch in flight died: its answers may never come, so
/// each frame waiting for it counts as not written there; the batch goes
/// on with the other nodes. (A frame it wrote but did not confirm, and that
/// no other node wrote, is then delivered again: a duplicate with its id.)
/// Before, the whole batch went back and was sent again to every node, so
/// a tab on another node could get a frame it already held twice.
void abandon_batch_on(self_ptr self, const caf::actor_addr& node) {
  for (auto b : {self->state.batch, self->state.memory_batch}) {
    if (!b)
      continue;
    auto& nodes = b->nodes;
    nodes.erase(std::remove_if(nodes.begin(), nodes.end(),
                               [&](const caf::actor& n) { return n.address() == node; }),
                nodes.end());
    for (std::size_t i = 0; i < b->next && slot_of(self->state, b) == b; ++i)
      answer_frame(self, b, i, node, false);
  }
}

/// Fetches the next batch of stored frames and writes it; ends when the
/// store has nothing more for the user.
void drain(self_ptr self) {
  auto& st = self->state;
  st.draining = true;
  st.drain_paused = false;
  if (st.move.state != phase::serving)
    return stored_for_successor(self); // moved during the drain
  if (st.await_predecessor)
    return; // it says when (draining stays set: newer messages are stored)
  if (st.nodes.empty()) {
    st.draining = false;
    arm_idle_timer(self);
    return;
  }
  ++st.busy;
  st.refetch = false; // stores asked for until now are handled before this fetch
  self->request(st.setup->store, store_timeout, fetch_atom::value, st.user, fetch_batch)
    .then(
      [self](stored_frames& batch) {
        auto& st = self->state;
        --st.busy;
        st.fetch_failing = false;
        if (st.move.state != phase::serving) { // moved meanwhile
          requeue(self, std::move(batch.tags));
          return stored_for_successor(self);
        }
        if (batch.tags.empty() && st.refetch)
          return drain(self); // a newer message was stored after this fetch
        if (batch.tags.empty()) {
          st.draining = false;
          st.stored_empty = st.storing == 0;
          arm_idle_timer(self);
          return;
        }
        if (st.nodes.empty()) {
          requeue(self, std::move(batch.tags));
          st.draining = false;
          arm_idle_timer(self);
          return;
        }
        write_batch(self, std::move(batch));
      },
      [self](caf::error& err) {
        auto& st = self->state;
        --st.busy;
        // Retried every second while the user is connected: log it once.
        if (!st.fetch_failing)
          spdlog::warn("user {}: cannot fetch stored messages (retrying): {}", st.user,
                       log_text(err));
        st.fetch_failing = true;
        if (st.move.state != phase::serving)
          return stored_for_successor(self); // it retries
        pause_drain(self);
      });
}


/// The bytes of `texts`.
std::int64_t bytes_of(const std::vector<std::string>& texts) {
  std::int64_t n = 0;
  for (auto& text : texts)
    n += static_cast<std::int64_t>(text.size());
  return n;
}

/// Moved: frames kept since the snapshot (private messages that bounced
/// off a closing tab, waiting frames a closing tab did not write) go to the
/// successor, ahead of its own inbox, instead of being lost when this actor
/// stops. They are older than what the snapshot held.
/// Hands `late` to `to` (the successor, or a directory that finds whoever
/// serves the user now), which then becomes the successor.
void hand_on_late(self_ptr self, const caf::actor& to, user_snapshot late, bool via_directory) {
  auto& st = self->state;
  auto n = late.inbox.size();
  count_if_remote(self, to, kind::control);
  ++st.busy; // the close waits for the answer
  self->request(to, move_timeout, adopt_atom::value, st.user, late)
    .then(
      [self](caf::actor& successor) {
        --self->state.busy;
        self->state.move.successor = std::move(successor);
      },
      [self, n, late, via_directory](caf::error& err) mutable {
        auto& st = self->state;
        --st.busy;
        // The successor moved on and ended (two moves in a row): this
        // node's directory passes them to whoever serves the user now.
        if (err == caf::sec::request_receiver_down && !via_directory && st.directory)
          return hand_on_late(self, st.directory, std::move(late), true);
        spdlog::error("user {}: {} private message(s) kept during its move are lost: {}",
                      st.user, n, log_text(err));
      });
}

void forward_inbox(self_ptr self) {
  auto& st = self->state;
  if (st.inbox.empty())
    return;
  user_snapshot late{st.user, std::move(st.inbox), {}, true};
  st.inbox.clear();
  st.late_ahead = 0;
  count_inbox(st, -bytes_of(late.inbox));
  hand_on_late(self, st.move.successor, std::move(late), false);
}

/// Moves the user to `target` (the new owner's directory): its inbox and
/// nodes go along; `rp` is answered once the successor took them. The
/// inbox is taken out meanwhile: what is kept until the answer (frames a
/// closing tab refused) is older, and follows or goes back in front of it.
void hand_off(self_ptr self, const caf::actor& target, caf::response_promise rp) {
  auto& st = self->state;
  auto handed = std::make_shared<std::vector<std::string>>(std::move(st.inbox));
  st.inbox.clear();
  st.late_ahead = 0;
  user_snapshot snap{st.user, *handed, st.nodes};
  // Stored frames under way (a fetch, or a batch being written) end here:
  // what the batch has not sent yet goes back to the store, and the
  // successor fetches once we say so, after them.
  snap.stored_in_flight = st.draining && !st.drain_paused;
  if (st.batch)
    st.batch->stopped = true;
  count_if_remote(self, target, kind::control);
  self->request(target, move_timeout, adopt_atom::value, st.user, std::move(snap))
    .then(
      [self, rp, handed](caf::actor successor) mutable {
        auto& st = self->state;
        st.move.successor = std::move(successor);
        st.move.state = phase::forwarding;
        count_inbox(st, -bytes_of(*handed)); // the successor holds them now
        forward_inbox(self);
        rp.deliver(caf::ok_atom::value);
        // Nodes re-attach when they see this actor go; until then (and
        // for messages still in flight to us) we forward.
        self->delayed_send(self, std::chrono::seconds{2}, caf::close_atom::value);
      },
      [self, rp, handed](caf::error& err) mutable {
        auto& st = self->state;
        st.move.state = phase::serving;
        st.inbox.insert(st.inbox.end(), std::make_move_iterator(handed->begin()),
                        std::make_move_iterator(handed->end()));
        rp.deliver(std::move(err));
        drain_memory(self);
      });
}

/// A move waits for the memory batch `b` in flight at most `batch_wait`
/// (a retry after it ends the wait; an earlier one, from a drain, does
/// not). Then the frames not sent yet go along, and those on their way stay
/// ours until their sockets answer (one not written follows the user): a
/// reader that is behind must not hold up the move, and a stopping node
/// does not wait for it.
void stop_waiting(self_ptr self, const batch_ptr& b) {
  if (self->clock().now() < b->move_deadline)
    return;
  auto handoff = std::move(b->then_move);
  b->then_move = nullptr;
  if (b->next < b->texts.size()) {
    auto first = b->texts.begin() + static_cast<std::ptrdiff_t>(b->next);
    put_back(self->state, *b, first, b->texts.end());
    b->texts.erase(first, b->texts.end());
    b->outcome.resize(b->texts.size());
    b->stopped = true;
  }
  handoff();
}

/// The handlers every user actor shares (see actors/shared_behavior.hpp).
caf::behavior user_handlers() {
  return {
    [](attach_atom, const caf::actor& node) -> caf::result<caf::actor> {
      auto self = user_actor::current();
      if (auto d = self->state.move.divert(self); d != diverted::no)
        return diverted_result<caf::actor>(d);
      auto& st = self->state;
      bool added = add_node(self, node);
      drain_memory(self);
      if (added)
        replay_live_to(self, node);
      ++st.idle_generation;
      // A drain that waits for its retry goes on at once for a new connection.
      if (st.setup->store && (st.draining ? st.drain_paused : !st.stored_empty))
        drain(self);
      return caf::actor_cast<caf::actor>(self);
    },
    [](detach_atom, const caf::actor& node) -> caf::result<void> {
      auto self = user_actor::current();
      if (auto d = self->state.move.divert(self); d != diverted::no)
        return diverted_result<void>(d);
      remove_node(self, node.address());
      unwatch_if_done(self, node.address());
      return {};
    },
    [](caf::publish_atom, envelope& env) -> caf::result<std::uint64_t> {
      auto self = user_actor::current();
      if (auto d = self->state.move.divert(self); d != diverted::no)
        return diverted_result<std::uint64_t>(d);
      auto& st = self->state;
      auto text = encode_private(env.from, env.data,
                                 env.id.empty() ? next_id(self) : env.id);
      // A message to keep or store waits behind live frames whose writes are
      // not answered yet: one of them that no socket wrote is kept first.
      if (st.setup->store
          && (st.nodes.empty() || st.draining || st.storing > 0 || waits_behind_live(st))) {
        // Acknowledged once durable; behind any stored frames still draining.
        auto rp = self->make_response_promise();
        if (st.live)
          after_live(self, std::move(text), rp);
        else
          store_new(self, text, rp);
        return rp;
      }
      // Behind the memory inbox while it is being written, so that no
      // newer message overtakes it.
      if (st.nodes.empty() || st.memory_batch || !st.inbox.empty() || waits_behind_live(st)) {
        // Live frames may come back to the inbox, and newer messages wait
        // behind them: both count.
        if (st.inbox.size() + (st.live ? st.live->frames.size() : 0) >= st.setup->inbox_limit)
          return make_error(error_code::unavailable, "the user's inbox is full");
        if (st.setup->budget && !st.setup->budget->fits(text.size()))
          return make_error(error_code::unavailable, "this node's inboxes are full");
        if (st.live) {
          after_live(self, std::move(text));
        } else {
          keep(self, std::move(text));
          drain_memory(self);
        }
        return std::uint64_t{0};
      }
      deliver_to(self, st.nodes, text);
      return static_cast<std::uint64_t>(st.nodes.size());
    },
    [](fetch_atom) -> caf::result<void> {
      auto self = user_actor::current();
      if (auto d = self->state.move.divert(self); d != diverted::no)
        return diverted_result<void>(d);
      // What a predecessor stored or returned after our fetches, or the
      // end of the drain it had under way when it moved.
      auto& st = self->state;
      st.stored_empty = false;
      st.refetch = true;
      if (!st.setup->store)
        return {};
      if (std::exchange(st.await_predecessor, false))
        st.draining = false;
      if (!st.draining)
        drain(self);
      return {};
    },
    [](stop_atom) {
      auto self = user_actor::current();
      auto& st = self->state;
      bool stop = idle(st) && st.move.state == phase::serving;
      if (stop)
        self->quit();
      return stop;
    },
    [](caf::idle_atom) { arm_idle_timer(user_actor::current()); },
    [](caf::idle_atom, std::uint64_t generation) {
      auto self = user_actor::current();
      auto& st = self->state;
      if (generation == st.idle_generation && idle(st) && st.move.state == phase::serving)
        self->send(st.directory, caf::idle_atom::value, st.user);
    },
    [](retry_atom) {
      auto self = user_actor::current();
      auto& st = self->state;
      store_overdue(self);
      if (auto b = st.memory_batch; b && b->then_move) // a move waits for it
        return stop_waiting(self, b);
      if (st.draining && st.drain_paused && st.move.state == phase::serving)
        drain(self);
      drain_memory(self);
    },
    [](handoff_atom, const caf::actor& target) {
      auto self = user_actor::current();
      auto& st = self->state;
      auto rp = self->make_response_promise();
      if (st.move.state != phase::serving) {
        rp.deliver(caf::ok_atom::value);
        return rp;
      }
      st.move.state = phase::moving; // requests wait from now on
      if (!st.memory_batch) {
        hand_off(self, target, rp);
        return rp;
      }
      // The batch in flight goes first, unless its reader is behind.
      st.memory_batch->then_move = [self, target, rp]() mutable { hand_off(self, target, rp); };
      st.memory_batch->move_deadline = self->clock().now() + batch_wait;
      self->delayed_send(self, batch_wait, retry_atom::value);
      return rp;
    },
    [](caf::close_atom) {
      auto self = user_actor::current();
      auto& st = self->state;
      if (st.move.state != phase::forwarding)
        return;
      // Stored frames still being written are acknowledged (or returned)
      // by us: wait for them, or the store would hold them unacknowledged.
      if (st.busy > 0)
        self->delayed_send(self, std::chrono::seconds{1}, caf::close_atom::value);
      else
        self->quit();
    },
    [](adopt_atom, const std::string&, user_snapshot& snap) -> caf::result<caf::actor> {
      auto self = user_actor::current();
      if (auto d = self->state.move.divert(self); d != diverted::no)
        return diverted_result<caf::actor>(d);
      auto& st = self->state;
      // Messages kept by the old owner come before any kept here, and
      // before those of a batch in flight here.
      count_inbox(st, bytes_of(snap.inbox));
      if (st.memory_batch)
        st.memory_batch->older_ahead += snap.inbox.size();
      auto at = snap.late ? std::min(st.late_ahead, st.inbox.size()) : std::size_t{0};
      st.inbox.insert(st.inbox.begin() + static_cast<std::ptrdiff_t>(at), snap.inbox.begin(),
                      snap.inbox.end());
      st.late_ahead = snap.late ? at + snap.inbox.size() : 0;
      for (auto& node : snap.nodes)
        add_node(self, node);
      drain_memory(self);
      ++st.idle_generation;
      if (st.setup->store && snap.stored_in_flight) {
        // The predecessor says when its stored frames are done (or went
        // back to the store); newer messages are stored behind meanwhile.
        st.await_predecessor = true;
        st.draining = true;
        self->delayed_send(self, move_timeout, fetch_atom::value); // if it never does
      } else if (st.setup->store && !st.nodes.empty() && !st.draining) {
        drain(self);
      }
      return caf::actor_cast<caf::actor>(self);
    },
  };
}

} // namespace

caf::behavior user(user_actor* self, std::string name, caf::actor directory,
                   user_setup_ptr setup) {
  harden(self, "user");
  auto& st = self->state;
  st.setup = std::move(setup);
  st.self_addr = self->address();
  st.user = std::move(name);
  st.directory = std::move(directory);
  // The idle timer is armed only after the message that spawned the user
  // (queued before this one): a user spawned for a connection is not idle,
  // and a timer armed now would sit in CAF's clock for a whole idle timeout.
  self->send(self, caf::idle_atom::value);
  // From the node watch: a registry we deliver to has ended.
  self->set_down_handler([self](caf::down_msg& dm) {
    remove_node(self, dm.source);
    abandon_batch_on(self, dm.source);
    abandon_live_on(self, dm.source);
  });
  return user_actor::shared<user_handlers>();
}

} // namespace rc
