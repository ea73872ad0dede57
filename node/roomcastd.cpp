// roomcastd: one roomcast node with plain rooms (see `roomcastd --help`).

#include "node/daemon.hpp"

int main(int argc, char** argv) {
  return rc::run_daemon(argc, argv, "roomcastd");
}
