#include "actors/room_logic.hpp"

#include "actors/names.hpp"

namespace rc {

void room_kinds::add(std::string pattern, room_logic_factory factory) {
  kinds_.emplace_back(std::move(pattern), std::move(factory));
}

std::unique_ptr<room_logic> room_kinds::make(const std::string& room) const {
  for (auto& [pattern, factory] : kinds_)
    if (glob_match(pattern, room))
      if (auto logic = factory(room))
        return logic;
  return std::make_unique<room_logic>();
}

bool room_kinds::matches(const std::string& room) const {
  for (auto& [pattern, _] : kinds_)
    if (glob_match(pattern, room))
      return true;
  return false;
}

} // namespace rc
