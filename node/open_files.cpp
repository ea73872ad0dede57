#include "node/open_files.hpp"

#include <sys/resource.h>

#include <fstream>

namespace rc {

namespace {

/// The kernel's ceiling for one process (`fs.nr_open`): a hard limit of
/// "unlimited" cannot be the soft one.
std::uint64_t nr_open() {
  std::ifstream in{"/proc/sys/fs/nr_open"};
  std::uint64_t n = 0;
  return in >> n ? n : 1048576;
}

} // namespace

open_files_limit raise_open_files_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return {};
  open_files_limit out;
  out.before = out.now = lim.rlim_cur;
  out.hard = lim.rlim_max;
  auto want = lim.rlim_max == RLIM_INFINITY ? nr_open() : lim.rlim_max;
  if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < want) {
    rlimit raised{static_cast<rlim_t>(want), lim.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
      out.now = want;
  }
  return out;
}

} // namespace rc
