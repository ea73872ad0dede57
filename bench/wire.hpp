#pragma once

// RFC 6455 framing and frame scanning shared by the load generator and the
// ceiling server. Both leave Beast's WebSocket stream after the handshake and
// speak frames on the TCP socket themselves: that is what lets the server
// write one pre-framed buffer to every recipient (server frames are
// unmasked, so the bytes are identical), and what keeps the client's receive
// path free of per-frame allocation, UTF-8 validation and composed-operation
// overhead. Everything here works on caller-owned memory and never allocates.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace rc::bench {

enum class opcode : std::uint8_t {
  continuation = 0x0,
  text = 0x1,
  binary = 0x2,
  close = 0x8,
  ping = 0x9,
  pong = 0xA,
};

/// Longest frame header: 2 bytes, 8 bytes of extended length, 4 of mask.
constexpr std::size_t max_header_bytes = 14;

/// Writes a FIN frame header for `len` payload bytes into `out` (at least
/// `max_header_bytes` long); appends `mask` when `masked`. Returns its size.
inline std::size_t write_header(char* out, opcode op, std::uint64_t len, bool masked,
                                std::uint32_t mask = 0) {
  auto* p = reinterpret_cast<unsigned char*>(out);
  std::size_t n = 0;
  p[n++] = static_cast<unsigned char>(0x80 | static_cast<unsigned>(op));
  unsigned char mbit = masked ? 0x80 : 0x00;
  if (len < 126) {
    p[n++] = static_cast<unsigned char>(mbit | len);
  } else if (len <= 0xFFFF) {
    p[n++] = mbit | 126;
    p[n++] = static_cast<unsigned char>(len >> 8);
    p[n++] = static_cast<unsigned char>(len);
  } else {
    p[n++] = mbit | 127;
    for (int shift = 56; shift >= 0; shift -= 8)
      p[n++] = static_cast<unsigned char>(len >> shift);
  }
  if (masked) {
    std::memcpy(p + n, &mask, 4);
    n += 4;
  }
  return n;
}

/// Appends one complete frame to `out`; masks the payload when `masked`
/// (clients must mask, RFC 6455 5.3). Reuses `out`'s capacity.
inline void append_frame(std::string& out, opcode op, std::string_view payload,
                         bool masked, std::uint32_t mask = 0) {
  char hdr[max_header_bytes];
  auto hn = write_header(hdr, op, payload.size(), masked, mask);
  auto at = out.size();
  out.resize(at + hn + payload.size());
  std::memcpy(out.data() + at, hdr, hn);
  char* dst = out.data() + at + hn;
  if (!masked) {
    std::memcpy(dst, payload.data(), payload.size());
    return;
  }
  unsigned char key[4];
  std::memcpy(key, &mask, 4);
  for (std::size_t i = 0; i < payload.size(); ++i)
    dst[i] = static_cast<char>(payload[i] ^ key[i & 3]);
}

/// One parsed frame inside a receive buffer.
struct frame_view {
  opcode op = opcode::text;
  bool fin = true;
  char* payload = nullptr;
  std::size_t size = 0;  ///< payload bytes
  std::size_t total = 0; ///< header + payload bytes (or bytes needed when incomplete)
};

enum class parse_result { complete, incomplete, invalid };

/// Parses the frame at the start of `[p, p+n)`. On `complete` a masked
/// payload has been unmasked in place. On `incomplete`, `f.total` holds the
/// bytes the whole frame needs once the header is readable (else 0), so the
/// caller can grow its buffer.
inline parse_result parse_frame(char* p, std::size_t n, frame_view& f,
                                std::uint64_t max_payload = 1u << 26) {
  f.total = 0;
  if (n < 2)
    return parse_result::incomplete;
  auto* u = reinterpret_cast<unsigned char*>(p);
  if (u[0] & 0x70)
    return parse_result::invalid; // no extensions negotiated
  f.fin = (u[0] & 0x80) != 0;
  f.op = static_cast<opcode>(u[0] & 0x0F);
  bool masked = (u[1] & 0x80) != 0;
  std::uint64_t len = u[1] & 0x7F;
  std::size_t hn = 2;
  if (len == 126) {
    if (n < 4)
      return parse_result::incomplete;
    len = (std::uint64_t{u[2]} << 8) | u[3];
    hn = 4;
  } else if (len == 127) {
    if (n < 10)
      return parse_result::incomplete;
    len = 0;
    for (int i = 2; i < 10; ++i)
      len = (len << 8) | u[i];
    hn = 10;
  }
  if (len > max_payload)
    return parse_result::invalid;
  std::size_t key_at = hn;
  if (masked)
    hn += 4;
  f.total = hn + static_cast<std::size_t>(len);
  if (n < f.total)
    return parse_result::incomplete;
  f.payload = p + hn;
  f.size = static_cast<std::size_t>(len);
  if (masked) {
    unsigned char key[4];
    std::memcpy(key, u + key_at, 4);
    for (std::size_t i = 0; i < f.size; ++i)
      f.payload[i] = static_cast<char>(f.payload[i] ^ key[i & 3]);
  }
  return parse_result::complete;
}

// -- scanning JSON text without parsing it -------------------------------------

/// Position just after the first `key` in `[p, p+n)`, or nullptr.
inline const char* find_after(const char* p, std::size_t n, std::string_view key) {
  auto* hit = static_cast<const char*>(memmem(p, n, key.data(), key.size()));
  return hit ? hit + key.size() : nullptr;
}

/// The unsigned integer right after `key` (e.g. `"seq":`), if any.
inline std::optional<std::uint64_t> scan_uint(const char* p, std::size_t n,
                                              std::string_view key) {
  const char* at = find_after(p, n, key);
  if (!at)
    return std::nullopt;
  const char* end = p + n;
  if (at < end && *at == '"')
    ++at; // ids may be strings of digits
  if (at >= end || *at < '0' || *at > '9')
    return std::nullopt;
  std::uint64_t v = 0;
  while (at < end && *at >= '0' && *at <= '9')
    v = v * 10 + static_cast<std::uint64_t>(*at++ - '0');
  return v;
}

/// The value of the `"type"` member of a frame: servers put it first, so
/// this is a prefix compare in practice; falls back to a search.
inline std::string_view scan_type(const char* p, std::size_t n) {
  constexpr std::string_view key = R"("type":")";
  const char* at = (n > 9 && std::memcmp(p + 1, key.data(), key.size()) == 0)
                       ? p + 1 + key.size()
                       : find_after(p, n, key);
  if (!at)
    return {};
  const char* end = p + n;
  const char* q =
      static_cast<const char*>(std::memchr(at, '"', static_cast<std::size_t>(end - at)));
  if (!q)
    return {};
  return {at, static_cast<std::size_t>(q - at)};
}

} // namespace rc::bench
