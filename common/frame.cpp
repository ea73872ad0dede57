#include "common/frame.hpp"

namespace rc {

frame::frame(std::string_view payload, ws_opcode op) {
  // FIN + opcode, then the shortest length form (RFC 6455 5.2); no mask.
  char header[10];
  std::size_t n = 0;
  auto len = static_cast<std::uint64_t>(payload.size());
  header[n++] = static_cast<char>(0x80 | static_cast<unsigned>(op));
  if (len < 126) {
    header[n++] = static_cast<char>(len);
  } else if (len <= 0xFFFF) {
    header[n++] = static_cast<char>(126);
    header[n++] = static_cast<char>(len >> 8);
    header[n++] = static_cast<char>(len);
  } else {
    header[n++] = static_cast<char>(127);
    for (int shift = 56; shift >= 0; shift -= 8)
      header[n++] = static_cast<char>(len >> shift);
  }
  header_size_ = static_cast<std::uint8_t>(n);
  bytes_.reserve(n + payload.size());
  bytes_.append(header, n);
  bytes_.append(payload);
}

} // namespace rc
