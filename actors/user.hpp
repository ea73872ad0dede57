#pragma once

#include <caf/actor_clock.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "actors/move_state.hpp"
#include "actors/shared_behavior.hpp"
#include "config/settings.hpp"

namespace rc {

/// How much of a user's waiting private messages may be on its way to the
/// sockets at once. A drain that queued them all would, with large
/// messages, overflow a session's queue limits and have the connection
/// closed as a slow consumer by a burst of the node's own making.
struct drain_window {
  std::size_t frames = 256;
  std::size_t bytes = std::size_t{1} << 20;

  /// A quarter of a session's queue limits, leaving room for live traffic.
  static drain_window for_limits(const limits_settings& l);
};

/// The bytes that the memory inboxes of one node's users hold, against a
/// node-wide limit (`--inbox-memory`): `--inbox-limit` bounds one user, this
/// bounds them all. Shared by the node's user actors.
struct inbox_budget {
  explicit inbox_budget(std::uint64_t limit) : limit(limit) {}
  const std::uint64_t limit;
  std::atomic<std::int64_t> used{0};
  /// Whether `n` more bytes fit.
  bool fits(std::uint64_t n) const {
    return static_cast<std::uint64_t>(used.load()) + n <= limit;
  }
};

/// What all user actors of a node share: one copy, not one per user.
struct user_setup {
  duration idle_timeout{};
  std::uint64_t inbox_limit = 0;
  /// Durable store of private frames (actors/inbox_store.hpp); null = the
  /// in-memory inbox only.
  caf::actor store;
  /// The node's node_watch (actors/node_watch.hpp).
  caf::actor watch;
  drain_window window;
  /// The node's memory inbox budget; null = unbounded.
  std::shared_ptr<inbox_budget> budget;
};

using user_setup_ptr = std::shared_ptr<const user_setup>;

// There is one user actor per connected user, so every byte here counts in
// the memory of an idle connection (docs/benchmarks.md): shared settings
// live in `setup`, and what only a move needs in its drain batch.
struct user_state {
  std::string user;
  /// The `local_users` registries of the nodes with connections of this user,
  /// each watched through `setup->watch` for its end.
  std::vector<caf::actor> nodes;
  caf::actor_addr self_addr;
  /// Private frames (JSON text) for a user with no connection, oldest first.
  /// (A vector: an empty std::deque allocates ~600 bytes, per user.)
  std::vector<std::string> inbox;
  /// Bytes this user holds in memory (its inbox, its memory batch's
  /// unwritten frames and the messages to keep waiting behind live frames),
  /// counted in `setup->budget`.
  std::uint64_t inbox_bytes = 0;
  user_setup_ptr setup;
  caf::actor directory;
  std::uint64_t idle_generation = 0;
  move_state move;
  /// Waiting frames being written now, at most a `window` at a time: the
  /// stored ones (`batch`, tagged) or the memory inbox's (`memory_batch`,
  /// taken from its front). Null between batches.
  struct drain_batch {
    enum result { pending, written, failed };
    bool memory = false;
    std::vector<std::uint64_t> tags; ///< store tags; empty for the memory inbox
    std::vector<std::string> texts;
    std::vector<result> outcome;
    /// Per frame sent and not settled: the nodes that have not answered. A
    /// frame is written once one node wrote it, and not written once all
    /// answered or ended (the others still write it: it is not sent again).
    std::vector<std::vector<caf::actor_addr>> waiting;
    std::vector<caf::actor> nodes; ///< the nodes it is sent to (minus ended ones)
    std::size_t next = 0;          ///< the first frame not sent yet
    std::size_t in_flight = 0;
    std::size_t bytes_in_flight = 0;
    bool stopped = false; ///< a frame was not written: send no more
    /// Memory: older frames a predecessor handed on while this batch was in
    /// flight, put at the inbox's front; unwritten frames go back behind them.
    std::size_t older_ahead = 0;
    /// Memory: a move asked for while this batch is in flight waits for it
    /// (so that no frame of it comes after newer ones), at most
    /// `batch_wait`, then goes without it.
    std::function<void()> then_move;
    caf::actor_clock::time_point move_deadline;
  };
  std::shared_ptr<drain_batch> batch;
  std::shared_ptr<drain_batch> memory_batch;
  /// Live private frames on their way to the user's sockets, oldest first,
  /// until one node wrote the frame or every node answered (or ended). One
  /// that no socket wrote goes to the inbox (or the store) in the order it
  /// was sent, whatever order the answers come in (a closing session
  /// reports its queued frames before the one it was writing). A newer
  /// message that is to be kept or stored waits here too, behind them, as
  /// one not written (a store waits with its answer, `stored`).
  struct live_frame {
    std::string text;
    std::vector<caf::actor_addr> waiting; ///< nodes that have not answered
    bool written = false;
    caf::response_promise stored; ///< pending for a newer message to store
    /// A newer message to keep, counted in `inbox_bytes` while it waits.
    bool counted = false;
    /// When a newer message began to wait here (see `store_wait`).
    caf::actor_clock::time_point since;
  };
  struct live_frames {
    std::uint64_t first = 0; ///< the number of `frames.front()`
    std::vector<live_frame> frames;
  };
  /// Null while none is on its way (a pointer: one word per idle user).
  std::unique_ptr<live_frames> live;
  /// The number the next live frame gets. Numbers are never reused: a
  /// node may still answer for a frame settled without it (another node
  /// wrote it) after `live` was emptied and made again.
  std::uint64_t live_next = 0;
  /// Frames at the inbox's front that a predecessor handed on late: later
  /// late ones go behind them (and ahead of the rest).
  std::size_t late_ahead = 0;
  /// Stores of newer messages not confirmed yet: messages that come
  /// meanwhile are stored behind them too, so none overtakes them.
  std::uint32_t storing = 0;
  /// Store requests and confirmed deliveries in flight, live frames
  /// included (no idle stop; a moved actor waits for them).
  std::uint32_t busy = 0;
  /// With a store: stored frames are being written to the user's nodes;
  /// newer messages are stored behind them meanwhile.
  bool draining = false;
  /// A store was asked for after the fetch in flight: an empty answer to
  /// that fetch does not mean nothing is left.
  bool refetch = false;
  /// The predecessor is still writing stored frames: no fetch until it
  /// says it is done (`fetch_atom`), or `move_timeout` passed.
  bool await_predecessor = false;
  /// The last fetch from the store failed (it is retried while connected).
  bool fetch_failing = false;
  /// Draining waits for its retry (a fetch or a write failed): a new
  /// connection need not wait for it.
  bool drain_paused = false;
  /// The store holds nothing for the user: a fetch came back empty and
  /// nothing was stored or returned since. A new connection then skips the
  /// drain, so it gets private messages live even while the broker is down.
  bool stored_empty = false;
  /// Every private frame gets an id: `<id_epoch>-<n>`, the
  /// epoch as `epoch_text` names it (0 = not chosen yet).
  std::uint64_t id_epoch = 0;
  std::uint64_t next_id = 0;
  ~user_state(); // unwatches `nodes`, however the actor ends
  static inline const char* name = "user";
};

/// A user actor: its instances share one behavior (actors/shared_behavior.hpp).
using user_actor = sharing_actor<user_state>;

/// One user, on the user's owner node: the nodes that have connections of
/// the user, and an inbox for private messages while there are none.
/// Spawned by the user directory with the node's `setup`.
///
/// Messages:
/// - `(attach_atom, local_users)` -> this actor; the inbox is then written
///   to the user's nodes, in order, at most a `window` at a time, each frame
///   leaving the inbox once a socket wrote it (an unwritten one waits for
///   the next connection). Newer messages wait behind it meanwhile.
///   `(detach_atom, local_users)`.
/// - `(publish_atom, envelope)` -> number of nodes the `private` frame went
///   to (once per node); `0` means it was kept in the inbox; `unavailable`
///   when the inbox is full (nothing accepted is dropped).
/// - `(fetch_atom)`: a predecessor stored frames for the user after this
///   actor's fetches (ones a closing tab refused during the move, or a
///   stored batch it did not get written), or finished writing the stored
///   frames it had in flight when it moved: fetch (again).
/// - `(stop_atom)`, `(handoff_atom, directory)`, `(adopt_atom, name, user_snapshot)`:
///   idle stop and moves, as for rooms. A move does not wait for waiting
///   frames on their way to a reader that is behind: those not sent yet go
///   along, and one a closing tab did not write follows to the successor.
///   The successor takes the whole inbox even over `inbox_limit` or the
///   budget (nothing accepted is dropped) and refuses new messages for the
///   user, or for the node's offline users, until it has drained below them.
///
/// Guarantee: private messages reach every connection in the order they
/// were accepted, inbox first. A live one counts as delivered once a socket
/// wrote it, however long that takes; one that no socket wrote (or whose
/// nodes all ended before saying) goes to the inbox like a waiting one. A
/// node that attaches while live ones are on their way gets those no
/// socket has written yet, before newer ones (and a node's registry hands
/// its pending ones to a connection that joins there), and a message to
/// keep waits behind an older one to keep rather than go out live.
/// The inbox is memory only: it survives a planned move (a message a
/// closing tab refuses during the move follows to the successor), not the
/// crash of the owner node.
///
/// Every private frame carries an `id`, the same on every copy.
///
/// With a durable `setup->store` (actors/inbox_store.hpp) instead: a
/// message for a user with no connection is answered only once the store
/// has confirmed it (`unavailable` when it cannot; one waiting behind live
/// frames is stored after `store_wait` at the latest); on attach, stored
/// frames are written to the user's nodes in order, in batches, a `window`
/// at a time, each removed from the store only after one node wrote it to
/// a socket, and messages arriving meanwhile are stored behind them.
/// A frame not written (the connection closed) goes back to the store for
/// the next connection. If the store is unreachable while draining, newer
/// messages are refused (`unavailable`) rather than overtake stored ones.
caf::behavior user(user_actor* self, std::string name, caf::actor directory,
                   user_setup_ptr setup);

} // namespace rc
