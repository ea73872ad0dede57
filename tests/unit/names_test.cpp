#define CAF_SUITE names

#include "actors/names.hpp"

#include <caf/test/unit_test.hpp>

using namespace rc;

CAF_TEST(names are 1 to 128 bytes of letters digits and _.:@-) {
  CAF_CHECK(valid_name("a"));
  CAF_CHECK(valid_name("chat:lobby-1_x.y@z"));
  CAF_CHECK(valid_name(std::string(128, 'x')));
  CAF_CHECK(!valid_name(""));
  CAF_CHECK(!valid_name(std::string(129, 'x')));
  CAF_CHECK(!valid_name("with space"));
  CAF_CHECK(!valid_name("slash/no"));
  CAF_CHECK(!valid_name("caf\xc3\xa9"));
  CAF_CHECK(!valid_name("a\"b"));
}

CAF_TEST(globs match with star and question mark) {
  CAF_CHECK(glob_match("chat:*", "chat:lobby"));
  CAF_CHECK(glob_match("chat:*", "chat:"));
  CAF_CHECK(!glob_match("chat:*", "game:1"));
  CAF_CHECK(glob_match("*", "anything"));
  CAF_CHECK(glob_match("g?me:*:x", "game:12:x"));
  CAF_CHECK(!glob_match("g?me", "gaame"));
  CAF_CHECK(glob_match("a*b*c", "axxbyyc"));
  CAF_CHECK(!glob_match("a*b*c", "axxbyy"));
  CAF_CHECK(glob_match("exact", "exact"));
  CAF_CHECK(!glob_match("exact", "exactly"));
  CAF_CHECK(any_glob_match({"game:*", "chat:*"}, "chat:1"));
  CAF_CHECK(!any_glob_match({}, "chat:1"));
}
