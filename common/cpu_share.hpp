#pragma once

#include <string_view>

namespace rc {

/// How many cores this process may use: the CPUs of its affinity mask
/// (`taskset`, a container's `cpuset`), capped by its cgroup CPU quota (a
/// container's `cpus:`, rounded up; cgroup v2 or v1), at least 1. What
/// `--threads 0` and `--actor-threads 0` mean: a node given part of a host
/// starts no more threads than it may run, where
/// `std::thread::hardware_concurrency()` counts every core of the host
/// (docs/operations.md, "Nodes sharing a host").
unsigned usable_cores();

/// The cores a cgroup v2 `cpu.max` line allows, rounded up: "150000 100000"
/// is 2; 0 for no limit ("max 100000") or a line that does not parse.
unsigned cores_from_cpu_max(std::string_view line);

/// The same for cgroup v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us`
/// (a quota of -1 is no limit).
unsigned cores_from_cfs(std::string_view quota_us, std::string_view period_us);

/// The process's cgroup in the contents of /proc/self/cgroup: the cgroup v2
/// one ("0::/path") for an empty `controller`, else the v1 hierarchy that
/// has `controller` ("4:cpu,cpuacct:/path"). Empty when there is none.
std::string_view cgroup_path(std::string_view proc_self_cgroup, std::string_view controller);

} // namespace rc
