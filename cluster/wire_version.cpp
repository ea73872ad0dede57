#include "cluster/wire_version.hpp"

// Alone in its file so that a test build can link another version in its
// place (tests/integration/CMakeLists.txt: roomcastd-other-wire).

namespace rc {

std::uint32_t wire_version() {
  return 1;
}

} // namespace rc
