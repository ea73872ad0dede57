#include "cluster/name_lookup.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace rc {

/// What getaddrinfo_a writes into while it works: it must stay where it is
/// until glibc has finished with it.
struct name_lookup::request {
  std::string host;
  addrinfo hints{};
  gaicb cb{};
};

namespace {

std::string numeric(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = {};
  const void* src = sa->sa_family == AF_INET
                      ? static_cast<const void*>(&reinterpret_cast<const sockaddr_in*>(sa)->sin_addr)
                      : static_cast<const void*>(&reinterpret_cast<const sockaddr_in6*>(sa)->sin6_addr);
  return inet_ntop(sa->sa_family, src, buf, sizeof buf) ? std::string{buf} : std::string{};
}

} // namespace

bool name_lookup::is_numeric(const std::string& host) {
  in6_addr buf;
  return inet_pton(AF_INET, host.c_str(), &buf) == 1 || inet_pton(AF_INET6, host.c_str(), &buf) == 1;
}

name_lookup::name_lookup(std::string host) : host_(std::move(host)) {
  if (is_numeric(host_)) {
    addresses_.push_back(host_);
    status_ = status::done;
    return;
  }
  request_ = std::make_unique<request>();
  request_->host = host_;
  request_->hints.ai_family = AF_UNSPEC;
  request_->hints.ai_socktype = SOCK_STREAM;
  request_->cb.ar_name = request_->host.c_str();
  request_->cb.ar_request = &request_->hints;
  gaicb* list[] = {&request_->cb};
  if (int rc = getaddrinfo_a(GAI_NOWAIT, list, 1, nullptr); rc != 0) {
    error_ = gai_strerror(rc);
    status_ = status::failed;
    request_.reset();
  }
}

name_lookup::~name_lookup() {
  if (!request_)
    return;
  if (gai_error(&request_->cb) == EAI_INPROGRESS && gai_cancel(&request_->cb) != EAI_CANCELED) {
    // glibc is working on it and will write its answer into it.
    static_cast<void>(request_.release());
    return;
  }
  if (request_->cb.ar_result)
    freeaddrinfo(request_->cb.ar_result);
}

name_lookup::status name_lookup::poll() {
  if (status_ != status::pending)
    return status_;
  int rc = gai_error(&request_->cb);
  if (rc == EAI_INPROGRESS)
    return status_;
  if (rc != 0) {
    error_ = gai_strerror(rc);
    status_ = status::failed;
    return status_;
  }
  for (auto ai = request_->cb.ar_result; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
      continue;
    auto addr = numeric(ai->ai_addr);
    if (!addr.empty() && std::find(addresses_.begin(), addresses_.end(), addr) == addresses_.end())
      addresses_.push_back(std::move(addr));
  }
  status_ = addresses_.empty() ? status::failed : status::done;
  if (addresses_.empty())
    error_ = "no IPv4 or IPv6 address";
  return status_;
}

} // namespace rc
