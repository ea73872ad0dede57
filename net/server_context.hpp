#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "common/client_link.hpp"
#include "common/identity.hpp"
#include "config/settings.hpp"
#include "net/authenticator.hpp"

namespace rc::net {

/// What the server asks of the application behind it. net/ knows nothing
/// of rooms or actors; the node fills these in.
struct server_hooks {
  /// A WebSocket was accepted for `who`; returns who gets its frames.
  std::function<std::shared_ptr<inbound_handler>(client_link_ptr, identity who)> open;
  /// `POST /api/publish` with an authorised body; `reply` may be called from
  /// any thread, once, with an HTTP status and a JSON body.
  std::function<void(std::string body, std::function<void(unsigned, std::string)> reply)> publish;
  /// `GET /api/cluster`: the cluster as JSON; `reply` may come from any thread.
  std::function<void(std::function<void(unsigned, std::string)> reply)> cluster_info;
  /// Why the node is not ready (empty = ready), for `/readyz`.
  std::function<std::string()> not_ready_reason;
  /// `GET /metrics`: what only the node can count, in the text format,
  /// after the process-wide metrics.
  std::function<std::string()> node_metrics;
};

/// State every session of one server shares. Immutable after start except
/// for the atomics.
struct server_context {
  settings cfg;
  server_hooks hooks;
  authenticator auth;
  /// Upgrades accepted and not yet finished (for max-connections).
  std::atomic<std::uint64_t> websockets{0};
  /// Set when a graceful stop begins: new upgrades get 503, /healthz 503.
  std::atomic<bool> draining{false};

  server_context(settings c, server_hooks h) : cfg(std::move(c)), hooks(std::move(h)), auth(cfg) {}
};

using server_context_ptr = std::shared_ptr<server_context>;

} // namespace rc::net
