#define CAF_SUITE name_lookup

#include "cluster/name_lookup.hpp"

#include <chrono>
#include <thread>

#include <caf/test/unit_test.hpp>

// membership's non-blocking host-name lookup. A resolver that never answers
// is covered by tests/integration/test_cluster.py (a node in a mount
// namespace of its own, with a silent name server).

using namespace std::chrono_literals;
using rc::name_lookup;

namespace {

/// Polls until the lookup ends (bounded: /etc/hosts answers in milliseconds).
name_lookup::status wait(name_lookup& lookup) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  auto s = lookup.poll();
  while (s == name_lookup::status::pending && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
    s = lookup.poll();
  }
  return s;
}

} // namespace

CAF_TEST(numeric addresses need no lookup) {
  for (auto host : {"127.0.0.1", "10.1.2.3", "::1", "fe80::1"}) {
    CAF_MESSAGE(host);
    CAF_CHECK(name_lookup::is_numeric(host));
    name_lookup lookup{host};
    CAF_CHECK(lookup.poll() == name_lookup::status::done);
    CAF_REQUIRE_EQUAL(lookup.addresses().size(), 1u);
    CAF_CHECK_EQUAL(lookup.addresses().front(), host);
  }
  for (auto host : {"localhost", "node1", "127.0.0.1.example", "", "1.2.3"})
    CAF_CHECK(!name_lookup::is_numeric(host));
}

CAF_TEST(a name in /etc/hosts resolves to numeric addresses) {
  name_lookup lookup{"localhost"};
  CAF_REQUIRE(wait(lookup) == name_lookup::status::done);
  CAF_REQUIRE(!lookup.addresses().empty());
  for (auto& a : lookup.addresses()) {
    CAF_MESSAGE(a);
    CAF_CHECK(name_lookup::is_numeric(a));
    CAF_CHECK(a == "127.0.0.1" || a == "::1");
  }
  CAF_CHECK(lookup.error().empty());
}

CAF_TEST(a name that cannot exist fails with a reason) {
  // Not a valid host name for the resolver; glibc refuses it without asking
  // a name server.
  name_lookup lookup{std::string(300, 'a')};
  CAF_CHECK(wait(lookup) == name_lookup::status::failed);
  CAF_CHECK(lookup.addresses().empty());
  CAF_MESSAGE(lookup.error());
  CAF_CHECK(!lookup.error().empty());
}

CAF_TEST(a lookup dropped while under way is cancelled or left to glibc) {
  // Many at once, so some are still queued or running when dropped; what
  // glibc still writes into must stay valid (no crash, nothing freed early).
  for (int i = 0; i < 50; ++i)
    name_lookup lookup{"localhost"};
  name_lookup last{"localhost"};
  CAF_CHECK(wait(last) == name_lookup::status::done);
}
