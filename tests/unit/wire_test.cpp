#define CAF_SUITE wire

// The bytes of every type nodes send each other, as wire version 1 lays
// them out. A change to one of them fails here: bump wire_version() in
// cluster/wire_version.cpp, then record the new bytes below. Nodes of two
// versions refuse to form one cluster (cluster/membership.cpp), which is
// what keeps a rolling upgrade from losing a move.

#include "actors/messages.hpp"
#include "cluster/membership.hpp"
#include "cluster/wire_version.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/test/unit_test.hpp>

#include <string>
#include <vector>

using namespace rc;

namespace {

struct wire_config : caf::actor_system_config {
  wire_config() {
    add_wire_types(*this);
    add_cluster_types(*this);
  }
};

struct wire_fixture {
  wire_config cfg;
  caf::actor_system sys{cfg};

  template <class T>
  std::string hex_of(T x) {
    std::vector<char> buf;
    caf::binary_serializer sink{sys, buf};
    auto err = sink(x);
    CAF_REQUIRE(!err);
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (auto c : buf) {
      auto b = static_cast<unsigned char>(c);
      out += digits[b >> 4];
      out += digits[b & 15];
    }
    return out;
  }

  /// What this build reads from `hex`, the bytes of an older build.
  template <class T>
  T read(const std::string& hex) {
    std::vector<char> buf;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
      buf.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
    T x;
    caf::binary_deserializer source{sys, buf};
    auto err = source(x);
    CAF_REQUIRE(!err);
    CAF_CHECK_EQUAL(source.remaining(), 0u);
    return x;
  }
};

// Version 1's bytes (recorded with this build).
const std::string envelope_v1 =
  "05616c6963650d7b2274657874223a226869227d010000000000000000000000000000000f036d2d37";
const std::string member_info_v1 = "000000000000000705616c696365";
const std::string relay_members_v1 =
  "0000000000000000000000000000000f01000000000000000705616c696365";
const std::string room_snapshot_v1 =
  "056c6f6262790a6b32763978306131717a000000000000002a010000000000000000000000000000000f02000000000000000705616c696365000000000000000903626f620e7b227475726e223a22626f62227d";
const std::string user_snapshot_v1 =
  "03626f62011d7b2274797065223a2270726976617465222c226964223a22612d31227d010000000000000000000000000000000f0100";
const std::string stored_frames_v1 = "02000000000000000300000000000000040201610162";
const std::string node_info_v1 =
  "026e310d6b32763978306131717a2f77310831302e302e302e311b580000000000000000000000000000000f0000000000000000000000000000000f0000000000000000000000000000000f0000000000000000000000000000000f";

envelope sample_envelope() {
  return {"alice", R"({"text":"hi"})", true, caf::actor_addr{}, "m-7"};
}

room_snapshot sample_room() {
  return {"lobby", "k2v9x0a1qz", 42,
          {relay_members{caf::actor{}, {member_info{7, "alice"}, member_info{9, "bob"}}}},
          R"({"turn":"bob"})"};
}

user_snapshot sample_user() {
  return {"bob", {R"({"type":"private","id":"a-1"})"}, {caf::actor{}}, true, false};
}

} // namespace

CAF_TEST_FIXTURE_SCOPE(wire_tests, wire_fixture)

CAF_TEST(this build is wire version 1) {
  CAF_CHECK_EQUAL(wire_version(), 1u);
  CAF_CHECK_EQUAL(wire_version_of(make_incarnation()), 1u);
}

CAF_TEST(an incarnation names its wire version and one of a build before versions names 0) {
  CAF_CHECK_EQUAL(wire_version_of("k2v9x0a1qz/w12"), 12u);
  CAF_CHECK_EQUAL(wire_version_of("k2v9x0a1qz"), 0u);
  CAF_CHECK_EQUAL(wire_version_of("k2v9x0a1qz/wx"), 0u);
}

CAF_TEST(the messages between nodes have the layout of wire version 1) {
  CAF_CHECK_EQUAL(hex_of(sample_envelope()), envelope_v1);
  CAF_CHECK_EQUAL(hex_of(member_info{7, "alice"}), member_info_v1);
  CAF_CHECK_EQUAL(hex_of(relay_members{caf::actor{}, {member_info{7, "alice"}}}),
                  relay_members_v1);
  CAF_CHECK_EQUAL(hex_of(sample_room()), room_snapshot_v1);
  CAF_CHECK_EQUAL(hex_of(sample_user()), user_snapshot_v1);
  CAF_CHECK_EQUAL(hex_of(stored_frames{{3, 4}, {"a", "b"}}), stored_frames_v1);
}

// node_info carries the wire version (in its incarnation), so its own
// layout must stay the same in every version: a node must read it to know
// that it cannot read the rest.
CAF_TEST(a node tells its wire version in a layout every version reads) {
  node_info me{"n1", "k2v9x0a1qz/w1", "10.0.0.1", 7000, {}, {}, {}, {}};
  CAF_CHECK_EQUAL(hex_of(me), node_info_v1);
  auto back = read<node_info>(node_info_v1);
  CAF_CHECK_EQUAL(back.name, "n1");
  CAF_CHECK_EQUAL(wire_version_of(back.incarnation), 1u);
  CAF_CHECK_EQUAL(back.host, "10.0.0.1");
  CAF_CHECK_EQUAL(back.port, 7000u);
}

CAF_TEST(this build reads the messages of wire version 1) {
  auto env = read<envelope>(envelope_v1);
  CAF_CHECK_EQUAL(env.from, "alice");
  CAF_CHECK_EQUAL(env.data, R"({"text":"hi"})");
  CAF_CHECK(env.echo);
  CAF_CHECK_EQUAL(env.id, "m-7");
  auto room = read<room_snapshot>(room_snapshot_v1);
  CAF_CHECK_EQUAL(room.name, "lobby");
  CAF_CHECK_EQUAL(room.epoch, "k2v9x0a1qz");
  CAF_CHECK_EQUAL(room.seq, 42u);
  CAF_REQUIRE_EQUAL(room.relays.size(), 1u);
  CAF_REQUIRE_EQUAL(room.relays[0].members.size(), 2u);
  CAF_CHECK_EQUAL(room.relays[0].members[1].conn, 9u);
  CAF_CHECK_EQUAL(room.relays[0].members[1].user, "bob");
  CAF_CHECK_EQUAL(room.logic_state, R"({"turn":"bob"})");
  auto user = read<user_snapshot>(user_snapshot_v1);
  CAF_CHECK_EQUAL(user.name, "bob");
  CAF_REQUIRE_EQUAL(user.inbox.size(), 1u);
  CAF_CHECK_EQUAL(user.inbox[0], R"({"type":"private","id":"a-1"})");
  CAF_CHECK_EQUAL(user.nodes.size(), 1u);
  CAF_CHECK(user.late);
  CAF_CHECK(!user.stored_in_flight);
  auto frames = read<stored_frames>(stored_frames_v1);
  CAF_CHECK_EQUAL(frames.tags, (std::vector<std::uint64_t>{3, 4}));
  CAF_CHECK_EQUAL(frames.texts, (std::vector<std::string>{"a", "b"}));
  auto member = read<member_info>(member_info_v1);
  CAF_CHECK_EQUAL(member.conn, 7u);
  auto relay = read<relay_members>(relay_members_v1);
  CAF_CHECK_EQUAL(relay.members.size(), 1u);
}

CAF_TEST_FIXTURE_SCOPE_END()
