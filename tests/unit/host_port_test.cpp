#define CAF_SUITE host_port

#include "common/host_port.hpp"

#include <caf/test/unit_test.hpp>

using namespace rc;

CAF_TEST(an ipv6 address is written in brackets and nothing else is) {
  CAF_CHECK_EQUAL(join_host_port("::1", 7000), "[::1]:7000");
  CAF_CHECK_EQUAL(join_host_port("fe80::1%eth0", 1), "[fe80::1%eth0]:1");
  CAF_CHECK_EQUAL(join_host_port("10.0.0.1", 7000), "10.0.0.1:7000");
  CAF_CHECK_EQUAL(join_host_port("node-2", 7000), "node-2:7000");
}

CAF_TEST(brackets are taken off and a bare address splits at its last colon) {
  auto check = [](const char* text, const char* host, const char* port) {
    auto hp = split_host_port(text);
    CAF_REQUIRE(hp);
    CAF_CHECK_EQUAL(hp->host, host);
    CAF_CHECK_EQUAL(hp->port, port);
  };
  check("[::1]:7000", "::1", "7000");
  check("[::1]", "::1", "");
  check("[::1]:", "::1", "");
  check("::1:7000", "::1", "7000"); // as before brackets were understood
  check("node-2:7000", "node-2", "7000");
  check("node-2", "node-2", "");
  for (auto bad : {"[::1", "[::1]7000", "[::1]x:7000"})
    CAF_CHECK(!split_host_port(bad));
}

CAF_TEST(a host alone has no port) {
  CAF_CHECK_EQUAL(host_alone("[fd00::5]").value_or("-"), "fd00::5");
  CAF_CHECK_EQUAL(host_alone("fd00::5").value_or("-"), "fd00::5");
  CAF_CHECK_EQUAL(host_alone("node-1").value_or("-"), "node-1");
  CAF_CHECK_EQUAL(host_alone("10.0.0.1").value_or("-"), "10.0.0.1");
  for (auto bad : {"node-1:7000", "10.0.0.1:7000", "[fd00::5]:7000", "[fd00::5", "[]", ""})
    CAF_CHECK(!host_alone(bad));
}
