#define CAF_SUITE cpu_share

#include "common/cpu_share.hpp"

#include <sched.h>

#include <caf/test/unit_test.hpp>

// What `--threads 0` and `--actor-threads 0` start: the parsers of the cgroup
// files here; the affinity mask end to end in tests/integration/test_threads.py.

CAF_TEST(a cgroup v2 quota counts its cores rounded up) {
  CAF_CHECK_EQUAL(rc::cores_from_cpu_max("100000 100000\n"), 1u);
  CAF_CHECK_EQUAL(rc::cores_from_cpu_max("150000 100000\n"), 2u);
  CAF_CHECK_EQUAL(rc::cores_from_cpu_max("50000 100000"), 1u);
  CAF_CHECK_EQUAL(rc::cores_from_cpu_max("400000 100000"), 4u);
}

CAF_TEST(no cgroup v2 quota or an unreadable one limits nothing) {
  CAF_CHECK_EQUAL(rc::cores_from_cpu_max("max 100000\n"), 0u);
  CAF_CHECK_EQUAL(rc::cores_from_cpu_max(""), 0u);
  CAF_CHECK_EQUAL(rc::cores_from_cpu_max("100000"), 0u);
  CAF_CHECK_EQUAL(rc::cores_from_cpu_max("100000 0"), 0u);
  CAF_CHECK_EQUAL(rc::cores_from_cpu_max("1x 100000"), 0u);
}

CAF_TEST(a cgroup v1 quota counts its cores and -1 is none) {
  CAF_CHECK_EQUAL(rc::cores_from_cfs("200000\n", "100000\n"), 2u);
  CAF_CHECK_EQUAL(rc::cores_from_cfs("250000\n", "100000\n"), 3u);
  CAF_CHECK_EQUAL(rc::cores_from_cfs("-1\n", "100000\n"), 0u);
  CAF_CHECK_EQUAL(rc::cores_from_cfs("", ""), 0u);
}

CAF_TEST(the process cgroup is found per hierarchy) {
  auto hybrid = "12:cpu,cpuacct:/docker/abc\n4:memory:/m\n1:name=systemd:/s\n0::/unified/x\n";
  CAF_CHECK_EQUAL(rc::cgroup_path(hybrid, ""), "/unified/x");
  CAF_CHECK_EQUAL(rc::cgroup_path(hybrid, "cpu"), "/docker/abc");
  CAF_CHECK_EQUAL(rc::cgroup_path(hybrid, "cpuacct"), "/docker/abc");
  CAF_CHECK_EQUAL(rc::cgroup_path(hybrid, "memory"), "/m");
  CAF_CHECK_EQUAL(rc::cgroup_path(hybrid, "cpuset"), "");
  CAF_CHECK_EQUAL(rc::cgroup_path("0::/\n", ""), "/");
  CAF_CHECK_EQUAL(rc::cgroup_path("0::/a.slice/b.scope", ""), "/a.slice/b.scope");
  CAF_CHECK_EQUAL(rc::cgroup_path("1:cpu:/\n", ""), "");
  CAF_CHECK_EQUAL(rc::cgroup_path("garbage\n", "cpu"), "");
}

CAF_TEST(usable cores are at most the affinity mask and at least one) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CAF_REQUIRE_EQUAL(sched_getaffinity(0, sizeof set, &set), 0);
  auto cores = rc::usable_cores();
  CAF_CHECK_GREATER_OR_EQUAL(cores, 1u);
  CAF_CHECK_LESS_OR_EQUAL(cores, static_cast<unsigned>(CPU_COUNT(&set)));
}
