#pragma once

// The message interface of a durable store for the private messages of
// offline users, as the user actor sees it. The user actor knows only this
// interface; cluster/durable_inbox implements it on RabbitMQ. Without a
// store (no broker configured) the user actor keeps its in-memory inbox.
//
// All requests come from the user's actor on its owner node, so the store
// handles one user's requests in the order they were sent:
// - `(store_atom, user, frame text)` -> `ok_atom` once the frame is stored
//   durably (persistent and confirmed by the broker); error `unavailable`
//   when it cannot be.
// - `(fetch_atom, user, std::uint32_t max)` -> `stored_frames`: up to `max`
//   of the oldest stored frames, in order. They stay stored (and are not
//   fetched again) until acknowledged or requeued; if the store loses them
//   (connection or node lost) they become fetchable again, in their place.
//   An empty result means nothing (not already fetched) is stored. Error
//   `unavailable` when the store cannot be reached.
// - `(ack_atom, user, tag)`: the frame was written to a WebSocket; remove it.
// - `(requeue_atom, user, std::vector<std::uint64_t> tags)`: not written;
//   make them fetchable again, in their place.
//
// Tags of a store connection that was lost are ignored (the frames were
// returned to the store when it was lost).

#include "actors/messages.hpp"
