#pragma once

#include <memory>
#include <string>
#include <vector>

struct gaicb;

namespace rc {

/// One host-name lookup run by glibc on a thread of its own
/// (`getaddrinfo_a`), polled by its owner. CAF 0.17's middleman resolves a
/// connect's host name itself, blocking its only thread: a name whose
/// resolver does not answer (a stopped container's name inside Docker's
/// network takes 20 s) would hold up every other cluster connect of the node
/// and keep the middleman alive past the node's stop. So membership looks
/// names up here and hands the middleman numeric addresses only.
class name_lookup {
public:
  enum class status { pending, done, failed };

  /// Starts looking `host` up (any address family, stream sockets). A
  /// numeric address is done at once, without a lookup.
  explicit name_lookup(std::string host);

  /// Cancels a lookup still under way. One glibc is already working on
  /// cannot be cancelled and still writes into its request when it ends, so
  /// that request is left to it (a few hundred bytes, once per stuck name).
  ~name_lookup();
  name_lookup(const name_lookup&) = delete;
  name_lookup& operator=(const name_lookup&) = delete;

  /// Whether the lookup has ended, and how. Never blocks.
  status poll();

  /// The numeric addresses found, in the resolver's order of preference
  /// (empty unless `poll()` said done).
  const std::vector<std::string>& addresses() const { return addresses_; }

  /// Why the lookup failed (empty unless `poll()` said failed).
  const std::string& error() const { return error_; }

  const std::string& host() const { return host_; }

  /// Whether `host` is a numeric IPv4 or IPv6 address.
  static bool is_numeric(const std::string& host);

private:
  struct request;
  std::string host_;
  std::unique_ptr<request> request_;
  status status_ = status::pending;
  std::vector<std::string> addresses_;
  std::string error_;
};

} // namespace rc
