#include "common/metrics.hpp"

#include <cstdio>

namespace rc {

histogram::histogram(std::vector<double> bounds)
  : bounds_(std::move(bounds)),
    counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i)
    counts_[i] = 0;
}

void histogram::observe(double seconds) {
  size_t i = 0;
  while (i < bounds_.size() && seconds > bounds_[i])
    ++i;
  counts_[i]++;
  count_++;
  sum_ns_ += static_cast<std::uint64_t>(seconds * 1e9);
}

void histogram::render(std::string& out, const char* name, const char* help) const {
  char line[256];
  std::snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  out += line;
  std::uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    std::snprintf(line, sizeof line, "%s_bucket{le=\"%g\"} %llu\n", name, bounds_[i],
                  static_cast<unsigned long long>(cumulative));
    out += line;
  }
  cumulative += counts_[bounds_.size()];
  std::snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9f\n%s_count %llu\n",
                name, static_cast<unsigned long long>(cumulative), name,
                static_cast<double>(sum_ns_.load()) / 1e9, name,
                static_cast<unsigned long long>(count_.load()));
  out += line;
}

metrics::metrics()
  : connection_duration({0.1, 1, 10, 60, 300, 1800, 3600, 21600, 86400}),
    fanout_latency({0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                    0.01, 0.025, 0.05, 0.1, 0.25, 1}) {
}

metrics& metrics::global() {
  static metrics instance;
  return instance;
}

namespace {

void scalar(std::string& out, const char* name, const char* type, const char* help,
            long long value) {
  // Appended, not formatted into a fixed buffer: a long help text is not cut.
  out.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ");
  out.append(name).append(" ").append(type).append("\n").append(name).append(" ");
  out.append(std::to_string(value)).append("\n");
}

} // namespace

std::string metrics::gauge(const char* name, const char* help, long long value) {
  std::string out;
  scalar(out, name, "gauge", help, value);
  return out;
}

std::string metrics::render() const {
  std::string out;
  out.reserve(4096);
  scalar(out, "roomcast_connections", "gauge", "Open WebSocket connections.",
         connections.load());
  scalar(out, "roomcast_rooms", "gauge", "Room actors alive on this node.", rooms.load());
  scalar(out, "roomcast_users", "gauge", "Users with at least one open connection on this node.", users.load());
  scalar(out, "roomcast_inbox_bytes", "gauge",
         "Bytes of private messages waiting in the memory inboxes of this node's users.",
         inbox_bytes.load());
  scalar(out, "roomcast_frames_received_total", "counter",
         "Text frames received from clients.", static_cast<long long>(frames_received.load()));
  scalar(out, "roomcast_messages_delivered_total", "counter",
         "Frames queued to client connections.",
         static_cast<long long>(messages_delivered.load()));
  scalar(out, "roomcast_upgrades_refused_total", "counter",
         "WebSocket upgrades refused (auth, origin, capacity).",
         static_cast<long long>(upgrades_refused.load()));
  scalar(out, "roomcast_delayed_writes_total", "counter",
         "Socket writes held for the write delay's tick (only under load).",
         static_cast<long long>(delayed_writes.load()));
  scalar(out, "roomcast_socket_writes_total", "counter",
         "Writes to client sockets; each carries every frame queued for its socket meanwhile.",
         static_cast<long long>(socket_writes.load()));
  connection_duration.render(out, "roomcast_connection_duration_seconds",
                             "Lifetime of closed WebSocket connections.");
  fanout_latency.render(out, "roomcast_fanout_latency_seconds",
                        "From publish accepted to the last local frame queued.");
  out += "# HELP roomcast_closes_total Closed WebSocket connections by reason.\n"
         "# TYPE roomcast_closes_total counter\n";
  for (size_t i = 0; i < close_reason_count; ++i) {
    out += "roomcast_closes_total{reason=\"";
    out += to_string(static_cast<close_reason>(i));
    out += "\"} " + std::to_string(closes_[i].load()) + "\n";
  }
  out += "# HELP roomcast_errors_total Error frames and API errors by code.\n"
         "# TYPE roomcast_errors_total counter\n";
  for (size_t i = 0; i < error_code_count; ++i) {
    out += "roomcast_errors_total{code=\"";
    out += to_string(static_cast<error_code>(i));
    out += "\"} " + std::to_string(errors_[i].load()) + "\n";
  }
  scalar(out, "roomcast_cluster_members", "gauge", "Live members of the cluster, this node included.",
         cluster_members.load());
  static const char* kinds[] = {"room", "user", "broadcast", "request", "control"};
  out += "# HELP roomcast_cluster_messages_total Messages sent to other nodes by kind.\n"
         "# TYPE roomcast_cluster_messages_total counter\n";
  for (size_t i = 0; i < cluster_kind_count; ++i)
    out += std::string{"roomcast_cluster_messages_total{kind=\""} + kinds[i] + "\"} "
           + std::to_string(cluster_[i].load()) + "\n";
  return out;
}

} // namespace rc
