#pragma once

#include <cstdint>

namespace rc {

/// The process's limit on open files (`ulimit -n`), before and after
/// `raise_open_files_limit`.
struct open_files_limit {
  std::uint64_t before = 0;
  std::uint64_t now = 0;
  std::uint64_t hard = 0;
};

/// Raises the soft limit on open files to the hard one. Every connection is
/// a descriptor, and shells and service managers often start a process with
/// a soft limit of 1024 under a hard limit hundreds of times that: the node
/// would refuse connections (failed accepts) long before `--max-connections`.
/// On failure the limit stays as it was.
open_files_limit raise_open_files_limit();

/// Descriptors a node uses besides its WebSockets: stdio, the I/O threads'
/// and CAF's event loops, peers, the broker, HTTP requests.
constexpr std::uint64_t descriptors_besides_connections = 64;

} // namespace rc
