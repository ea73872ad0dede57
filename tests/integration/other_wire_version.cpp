// roomcastd as a build of another wire version would be: linked before the
// library, this definition is the one the daemon uses (the linker then never
// takes cluster/wire_version.cpp out of the archive). test_cluster.py's
// OtherBuild starts it beside nodes of this build.

#include "cluster/wire_version.hpp"

namespace rc {

std::uint32_t wire_version() {
  return 2;
}

} // namespace rc
