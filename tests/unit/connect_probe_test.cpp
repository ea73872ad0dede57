#define CAF_SUITE connect_probe

#include "cluster/connect_probe.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include <caf/test/unit_test.hpp>

// membership's non-blocking check that a peer's cluster port answers, on
// loopback sockets of the test's own. A seed that never answers is covered
// end to end by tests/integration/test_cluster.py.

using namespace std::chrono_literals;
using rc::connect_probe;

namespace {

/// A listening socket on 127.0.0.1 with the given backlog; its port.
struct listener {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  std::uint16_t port = 0;
  explicit listener(int backlog) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    ::listen(fd, backlog);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    port = ntohs(sa.sin_port);
  }
  ~listener() { ::close(fd); }
};

connect_probe::status settle(connect_probe& probe, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  auto s = probe.poll();
  while (s == connect_probe::status::pending && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
    s = probe.poll();
  }
  return s;
}

} // namespace

CAF_TEST(a listening port is open) {
  listener l{16};
  connect_probe probe{"127.0.0.1", l.port};
  CAF_CHECK(settle(probe, 5s) == connect_probe::status::open);
  CAF_CHECK(probe.error().empty());
}

CAF_TEST(a closed port fails with the reason) {
  std::uint16_t port;
  {
    listener l{16};
    port = l.port;
  } // closed again: nothing listens there now
  connect_probe probe{"127.0.0.1", port};
  CAF_CHECK(settle(probe, 5s) == connect_probe::status::failed);
  CAF_MESSAGE(probe.error());
  CAF_CHECK(!probe.error().empty());
}

CAF_TEST(a port that drops connection attempts stays pending without blocking) {
  // A full accept queue: the kernel drops further SYNs.
  listener l{0};
  std::vector<int> queued;
  for (int i = 0; i < 4; ++i) {
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons(l.port);
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    queued.push_back(fd);
  }
  std::this_thread::sleep_for(200ms);
  auto t0 = std::chrono::steady_clock::now();
  connect_probe probe{"127.0.0.1", l.port};
  CAF_CHECK(probe.poll() == connect_probe::status::pending);
  CAF_CHECK_LESS(std::chrono::steady_clock::now() - t0, 1s);
  CAF_CHECK(settle(probe, 500ms) == connect_probe::status::pending);
  for (int fd : queued)
    ::close(fd);
}

CAF_TEST(a host name is refused: the probe takes addresses only) {
  connect_probe probe{"localhost", 1};
  CAF_CHECK(probe.poll() == connect_probe::status::failed);
  CAF_CHECK_NOT_EQUAL(probe.error().find("numeric"), std::string::npos);
}
