#include "cluster/placement.hpp"

#include <cstdint>

namespace rc {

namespace {

/// FNV-1a over the bytes, then a strong finaliser (splitmix64) so that
/// similar names (room-1, room-2) spread evenly.
std::uint64_t hash_bytes(std::uint64_t h, std::string_view s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

std::uint64_t mix(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

} // namespace

std::uint64_t placement_score(std::string_view name, std::string_view member) {
  auto h = hash_bytes(0xcbf29ce484222325ull, member);
  h = hash_bytes(h ^ 0xff, name); // separator so ("ab","c") != ("a","bc")
  return mix(h);
}

std::string owner_of(std::string_view name, const std::vector<std::string>& members) {
  const std::string* best = nullptr;
  std::uint64_t best_score = 0;
  for (auto& m : members) {
    auto score = placement_score(name, m);
    // Ties (practically impossible) go to the smaller name, so all agree.
    if (!best || score > best_score || (score == best_score && m < *best)) {
      best = &m;
      best_score = score;
    }
  }
  return best ? *best : std::string{};
}

} // namespace rc
