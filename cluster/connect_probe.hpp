#pragma once

#include <cstdint>
#include <string>

namespace rc {

/// Whether a TCP port at a numeric address accepts connections, found
/// without blocking: a non-blocking connect, polled by its owner, closed
/// again at once. CAF 0.17's middleman connects with a blocking `connect()`
/// on its only thread: to an address that drops connection attempts (a host
/// that is gone, a full accept queue) that blocks for minutes (the kernel's
/// SYN retries), and holds up every other cluster connect of the node and
/// its own publish meanwhile. So membership asks the middleman only for
/// ports this probe found open.
class connect_probe {
public:
  enum class status { pending, open, failed };

  connect_probe(const std::string& address, std::uint16_t port);
  ~connect_probe();
  connect_probe(const connect_probe&) = delete;
  connect_probe& operator=(const connect_probe&) = delete;

  /// Whether the connection was accepted, refused, or is still under way.
  /// Never blocks. The socket is closed once it is not pending.
  status poll();

  /// Why the probe failed (empty unless `poll()` said failed).
  const std::string& error() const { return error_; }

private:
  void fail(int err);
  int fd_ = -1;
  status status_ = status::pending;
  std::string error_;
};

} // namespace rc
