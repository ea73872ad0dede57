#include "cluster/connect_probe.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace rc {

connect_probe::connect_probe(const std::string& address, std::uint16_t port) {
  sockaddr_storage sa{};
  socklen_t len = 0;
  auto* v4 = reinterpret_cast<sockaddr_in*>(&sa);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(&sa);
  if (inet_pton(AF_INET, address.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, address.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
  } else {
    status_ = status::failed;
    error_ = "not a numeric address: " + address;
    return;
  }
  fd_ = ::socket(sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) {
    fail(errno);
    return;
  }
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), len) == 0) {
    status_ = status::open;
    ::close(fd_);
    fd_ = -1;
  } else if (errno != EINPROGRESS) {
    fail(errno);
  }
}

connect_probe::~connect_probe() {
  if (fd_ >= 0)
    ::close(fd_);
}

void connect_probe::fail(int err) {
  status_ = status::failed;
  error_ = std::strerror(err);
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

connect_probe::status connect_probe::poll() {
  if (status_ != status::pending)
    return status_;
  pollfd p{fd_, POLLOUT, 0};
  int ready = ::poll(&p, 1, 0);
  if (ready == 0 || (ready < 0 && errno == EINTR))
    return status_;
  if (ready < 0) {
    fail(errno);
    return status_;
  }
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
    err = errno;
  if (err != 0) {
    fail(err);
    return status_;
  }
  status_ = status::open;
  ::close(fd_);
  fd_ = -1;
  return status_;
}

} // namespace rc
