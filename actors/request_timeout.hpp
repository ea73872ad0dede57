#pragma once

#include <caf/local_actor.hpp>
#include <caf/message_id.hpp>

namespace rc {

/// Drops the timeout of a request once its answer is in.
///
/// CAF 0.17 keeps every request timeout in the actor clock until it expires,
/// answered or not: about 150 bytes for the whole timeout. For the requests
/// every connection makes on its way in (join, user attach), that was 0.45 KB
/// per connection held for 5 s, so the memory of a burst of connects never
/// came back. Not used for publishes: the cancellation wakes the clock
/// thread once more, which costs more than the entry on a hot path.
///
///     auto req = self->request(dest, timeout, ...);
///     req.then([self, id = req.id()](...) { forget_request_timeout(self, id); ... }, ...);
inline void forget_request_timeout(caf::local_actor* self, caf::message_id response_id) {
  self->clock().cancel_request_timeout(self, response_id);
}

} // namespace rc
