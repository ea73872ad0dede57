#pragma once

#include <caf/scheduled_actor.hpp>
#include <spdlog/spdlog.h>

namespace rc {

/// Makes a long-lived actor robust against CAF 0.17's defaults: an unmatched
/// message is logged and dropped without replying (the default reply would
/// kill the sender), and an error reply is logged instead of killing us.
inline void harden(caf::scheduled_actor* self, const char* what) {
  self->set_default_handler([what](caf::scheduled_actor*, caf::message_view& x) -> caf::result<caf::message> {
    spdlog::warn("{}: dropped unexpected message {}", what, caf::to_string(x.content()));
    return caf::message{};
  });
  self->set_error_handler([what](caf::scheduled_actor*, caf::error& err) {
    spdlog::warn("{}: unhandled error {}", what, caf::to_string(err));
  });
}

} // namespace rc
