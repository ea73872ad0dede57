#define CAF_SUITE placement

#include "cluster/placement.hpp"

#include <caf/test/unit_test.hpp>

#include <algorithm>
#include <map>

using namespace rc;

namespace {

std::vector<std::string> names(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i)
    out.push_back("room-" + std::to_string(i));
  return out;
}

} // namespace

CAF_TEST(the owner is one of the members and the same for any member order) {
  std::vector<std::string> a{"n1", "n2", "n3"};
  std::vector<std::string> b{"n3", "n1", "n2"};
  for (auto& room : names(500)) {
    auto o = owner_of(room, a);
    CAF_CHECK(std::find(a.begin(), a.end(), o) != a.end());
    CAF_CHECK_EQUAL(o, owner_of(room, b));
  }
  CAF_CHECK_EQUAL(owner_of("x", {}), "");
  CAF_CHECK_EQUAL(owner_of("x", {"only"}), "only");
}

CAF_TEST(names spread about evenly over the members) {
  std::vector<std::string> members{"n1", "n2", "n3"};
  std::map<std::string, int> load;
  auto rooms = names(30000);
  for (auto& room : rooms)
    load[owner_of(room, members)]++;
  for (auto& m : members) {
    // 10000 expected each; allow 5 %.
    CAF_CHECK_GREATER(load[m], 9500);
    CAF_CHECK_LESS(load[m], 10500);
  }
}

CAF_TEST(a joining member takes about one in n names and moves no others) {
  std::vector<std::string> three{"n1", "n2", "n3"};
  std::vector<std::string> four{"n1", "n2", "n3", "n4"};
  auto rooms = names(20000);
  int moved = 0;
  for (auto& room : rooms) {
    auto before = owner_of(room, three);
    auto after = owner_of(room, four);
    if (before != after) {
      ++moved;
      CAF_CHECK_EQUAL(after, "n4"); // only to the newcomer
    }
  }
  // 1/4 of 20000 = 5000 expected.
  CAF_CHECK_GREATER(moved, 4600);
  CAF_CHECK_LESS(moved, 5400);
}

CAF_TEST(a leaving member hands only its own names to the others) {
  std::vector<std::string> three{"n1", "n2", "n3"};
  std::vector<std::string> two{"n1", "n3"};
  int moved = 0;
  for (auto& room : names(20000)) {
    auto before = owner_of(room, three);
    auto after = owner_of(room, two);
    if (before != after) {
      ++moved;
      CAF_CHECK_EQUAL(before, "n2");
    } else {
      CAF_CHECK_NOT_EQUAL(before, "n2");
    }
  }
  CAF_CHECK_GREATER(moved, 6200);
  CAF_CHECK_LESS(moved, 7100);
}
