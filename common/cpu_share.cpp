#include "common/cpu_share.hpp"

#include <sched.h>

#include <charconv>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace rc {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.remove_suffix(1);
  return s;
}

bool parse_number(std::string_view text, long long& out) {
  auto end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, out);
  return ec == std::errc{} && ptr == end;
}

unsigned cores_of(long long quota, long long period) {
  if (quota <= 0 || period <= 0)
    return 0;
  return static_cast<unsigned>((quota + period - 1) / period);
}

unsigned affinity_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
    return static_cast<unsigned>(CPU_COUNT(&set));
  return std::thread::hardware_concurrency();
}

// The tightest quota from the process's cgroup up to the root of `mount`: a
// limit set on a parent (a pod, a slice) binds too. Inside a container the
// mount's root is often the container's own cgroup while /proc/self/cgroup
// names it from the host's root; the walk up reaches that root either way.
template <class Read>
unsigned tightest_quota(std::string path, const std::string& mount, Read read_cores) {
  unsigned tightest = 0;
  for (;;) {
    auto cores = read_cores(mount + (path == "/" ? "" : path));
    if (cores != 0 && (tightest == 0 || cores < tightest))
      tightest = cores;
    if (path.empty() || path == "/")
      break;
    auto slash = path.rfind('/');
    path.resize(slash == std::string::npos || slash == 0 ? 1 : slash);
  }
  return tightest;
}

unsigned quota_cores() {
  auto self = read_file("/proc/self/cgroup");
  if (auto v2 = cgroup_path(self, ""); !v2.empty()) {
    auto cores = tightest_quota(std::string{v2}, "/sys/fs/cgroup", [](const std::string& dir) {
      return cores_from_cpu_max(read_file(dir + "/cpu.max"));
    });
    if (cores != 0)
      return cores;
  }
  if (auto v1 = cgroup_path(self, "cpu"); !v1.empty())
    return tightest_quota(std::string{v1}, "/sys/fs/cgroup/cpu", [](const std::string& dir) {
      return cores_from_cfs(read_file(dir + "/cpu.cfs_quota_us"), read_file(dir + "/cpu.cfs_period_us"));
    });
  return 0;
}

} // namespace

unsigned cores_from_cpu_max(std::string_view line) {
  line = trim(line);
  auto space = line.find(' ');
  long long quota = 0;
  long long period = 0;
  if (space == std::string_view::npos || !parse_number(line.substr(0, space), quota)
      || !parse_number(line.substr(space + 1), period))
    return 0; // "max" (no limit) or something this code does not know
  return cores_of(quota, period);
}

unsigned cores_from_cfs(std::string_view quota_us, std::string_view period_us) {
  long long quota = 0;
  long long period = 0;
  if (!parse_number(trim(quota_us), quota) || !parse_number(trim(period_us), period))
    return 0;
  return cores_of(quota, period);
}

std::string_view cgroup_path(std::string_view text, std::string_view controller) {
  std::size_t at = 0;
  while (at < text.size()) {
    auto end = text.find('\n', at);
    if (end == std::string_view::npos)
      end = text.size();
    // "hierarchy-id:controller,list:path"
    auto line = text.substr(at, end - at);
    at = end + 1;
    auto first = line.find(':');
    auto second = first == std::string_view::npos ? first : line.find(':', first + 1);
    if (second == std::string_view::npos)
      continue;
    auto id = line.substr(0, first);
    auto list = line.substr(first + 1, second - first - 1);
    auto path = line.substr(second + 1);
    if (controller.empty()) {
      if (id == "0" && list.empty())
        return path;
      continue;
    }
    for (std::size_t from = 0; from <= list.size();) {
      auto comma = list.find(',', from);
      if (comma == std::string_view::npos)
        comma = list.size();
      if (list.substr(from, comma - from) == controller)
        return path;
      from = comma + 1;
    }
  }
  return {};
}

unsigned usable_cores() {
  auto cores = affinity_cores();
  auto quota = quota_cores();
  if (quota != 0 && quota < cores)
    cores = quota;
  return cores == 0 ? 1 : cores;
}

} // namespace rc
