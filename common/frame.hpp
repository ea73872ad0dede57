#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace rc {

/// RFC 6455 opcodes of the frames a server sends.
enum class ws_opcode : std::uint8_t {
  text = 0x1,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

/// One outgoing WebSocket frame, encoded once with its header. Server frames
/// are unmasked, so a fanned-out frame is the same bytes for every recipient:
/// sessions write `wire()` as it is, many frames in one gathered write.
class frame {
public:
  explicit frame(std::string_view payload, ws_opcode op = ws_opcode::text);

  /// The payload (for a text frame, the JSON text).
  std::string_view text() const { return std::string_view{bytes_}.substr(header_size_); }
  /// Header and payload, ready for the socket.
  std::string_view wire() const { return bytes_; }
  /// Payload bytes (what the outgoing queue limits count).
  std::size_t size() const { return bytes_.size() - header_size_; }

private:
  std::string bytes_;
  std::uint8_t header_size_;
};

/// A frame shared by every connection it is fanned out to.
using frame_ptr = std::shared_ptr<const frame>;

inline frame_ptr make_frame(std::string_view text) {
  return std::make_shared<const frame>(text);
}

} // namespace rc
