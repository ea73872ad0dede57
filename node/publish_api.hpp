#pragma once

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>

#include <functional>
#include <string>

namespace rc {

/// `POST /api/publish` (PROTOCOL.md section 2): validates the body and hands
/// it to the router. Answers 202 `{"ok":true}` once the router accepted it,
/// 400 with `{"error":{"code","message"}}` for bad input, 503 when the
/// target cannot take it now. `reply` is called exactly once, on any thread.
void handle_publish(caf::actor_system& sys, const caf::actor& router, const std::string& body,
                    std::function<void(unsigned, std::string)> reply);

} // namespace rc
