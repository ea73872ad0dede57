#include "cluster/membership.hpp"

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/node_id.hpp>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "actors/hardening.hpp"
#include "actors/room.hpp"
#include "cluster/placement.hpp"
#include "cluster/wire_version.hpp"
#include "common/host_port.hpp"
#include "common/metrics.hpp"

namespace rc {

std::string make_incarnation() {
  return make_epoch() + std::string{wire_version_tag} + std::to_string(wire_version());
}

namespace {

using self_ptr = caf::stateful_actor<membership_state>*;
using kind = metrics::cluster_kind;

constexpr auto request_timeout = std::chrono::seconds{5};

/// The members that own names: the others, plus this node unless leaving.
std::vector<const node_info*> owners(self_ptr self) {
  auto& st = self->state;
  std::vector<const node_info*> out;
  if (!st.leaving)
    out.push_back(&st.cfg.self);
  for (auto& [_, m] : st.members)
    out.push_back(&m);
  return out;
}

const node_info* owner_node(self_ptr self, const std::string& name) {
  auto nodes = owners(self);
  std::vector<std::string> names;
  for (auto n : nodes)
    names.push_back(n->name);
  auto owner = owner_of(name, names);
  for (auto n : nodes)
    if (n->name == owner)
      return n;
  return &self->state.cfg.self; // no owner at all: keep it here
}

/// Tells the local room and user directories which directory owns what.
/// Only once the node has joined: until then they hold their requests, so
/// that a node that has just started does not own every name.
void send_view(self_ptr self) {
  auto& st = self->state;
  std::map<std::string, caf::actor> rooms, users;
  for (auto n : owners(self)) {
    rooms.emplace(n->name, n->rooms);
    users.emplace(n->name, n->users);
  }
  self->send(st.cfg.self.rooms, view_atom::value, rooms, st.cfg.self.name);
  self->send(st.cfg.self.users, view_atom::value, users, st.cfg.self.name);
}

void update_joined(self_ptr self) {
  auto& st = self->state;
  if (st.cfg.joined->load())
    return;
  bool alone_long_enough = std::chrono::steady_clock::now() - st.started
                           > 2 * st.cfg.failure_timeout;
  // Joined: a member answered and so did every seed and every member named
  // (or they cannot be reached); until then the view may lack owners.
  bool met = !st.members.empty() && st.awaited.empty();
  if (st.cfg.seeds.empty() || met || alone_long_enough) {
    st.cfg.joined->store(true);
    spdlog::info("cluster: node {} joined ({} other members)", st.cfg.self.name,
                 st.members.size());
    send_view(self);
  }
}

void view_changed(self_ptr self) {
  auto& st = self->state;
  std::string names;
  for (auto n : owners(self))
    names += (names.empty() ? "" : ",") + n->name;
  metrics::global().cluster_members = static_cast<std::int64_t>(st.members.size() + 1);
  // A leaving node owns nothing any more, so it is not among the members named.
  if (st.leaving)
    spdlog::info("cluster: members are now {} ({} is leaving)",
                 names.empty() ? "none" : names, st.cfg.self.name);
  else
    spdlog::info("cluster: members are now {}", names);
  if (st.cfg.joined->load())
    send_view(self);
  else
    update_joined(self);
}

/// Says hello to `peer`; `target` names the connect that found it, if any
/// (the node has joined only once the members it was told of answered).
void say_hello(self_ptr self, const caf::actor& peer, const host_port& target = {});

constexpr std::string_view wire_refusal_prefix = "wire version ";

/// What a node answers a hello from a node of another wire version with
/// (the text of its error): "wire version <N>".
std::string wire_refusal() {
  return fmt::format("{}{}", wire_refusal_prefix, wire_version());
}

bool is_wire_refusal(const caf::error& err) {
  return error_text(err).rfind(wire_refusal_prefix, 0) == 0;
}

/// How `info`'s wire version differs from this build's, or "" if it does not.
std::string other_wire(const node_info& info) {
  auto theirs = wire_version_of(info.incarnation);
  if (theirs == wire_version())
    return {};
  return fmt::format("node {} ({}) speaks wire version {}, this build {}", info.name,
                     join_host_port(info.host, info.port), theirs, wire_version());
}

/// Before this node joined, a cluster of another wire version ends it: it
/// cannot be a member there (after, it refuses the other node instead).
/// Returns whether it ended.
bool cannot_join(self_ptr self, const std::string& what) {
  auto& st = self->state;
  if (st.cfg.joined->load() || !st.cfg.fatal)
    return false;
  st.cfg.fatal(what + "; nodes of two builds whose messages differ cannot form one cluster: "
                      "stop every node, then start the new build (docs/deploy.md)");
  return true;
}

/// Whether `info` is a node of another build, whose messages this one cannot
/// read nor it ours (cluster/wire_version.hpp); logged once.
bool foreign(self_ptr self, const node_info& info) {
  auto what = other_wire(info);
  if (what.empty())
    return false;
  if (self->state.foreign.insert(info.incarnation).second)
    spdlog::error("cluster: {}; it is not a member here", what);
  return true;
}

/// Adds or refreshes a member; returns true when the view changed.
bool merge(self_ptr self, const node_info& info) {
  auto& st = self->state;
  if (!info.membership || info.name == st.cfg.self.name || st.departed.count(info.incarnation)
      || foreign(self, info))
    return false;
  auto it = st.members.find(info.name);
  if (it != st.members.end()) {
    if (it->second.incarnation == info.incarnation)
      return false;
    // A restarted node replaces its old incarnation once that is down (at
    // once for a killed process); while the old one is up, the name is taken.
    if (st.impostors.insert(info.incarnation).second)
      spdlog::error("cluster: a second node named {} ({}) is refused: {} ({}) is up",
                    info.name, join_host_port(info.host, info.port), it->second.name,
                    join_host_port(it->second.host, it->second.port));
    return false;
  }
  self->monitor(info.membership);
  st.awaited.erase(std::make_pair(info.host, info.port));
  st.members.emplace(info.name, info);
  st.unreachable_seeds.erase(std::make_pair(info.host, info.port)); // it may have called us
  spdlog::info("cluster: node {} ({}) is up", info.name,
               join_host_port(info.host, info.port));
  say_hello(self, info.membership);
  return true;
}

void connect_to(self_ptr self, const std::string& host, std::uint16_t port);

/// Whether `info` is another live node with this node's name. Before this
/// node joined, that ends it (the cluster already has a node of that name);
/// after, the other one is refused and logged.
bool name_taken(self_ptr self, const node_info& info) {
  auto& st = self->state;
  if (info.name != st.cfg.self.name || info.incarnation == st.cfg.self.incarnation)
    return false;
  auto what = fmt::format("node name {} is taken by the live node at {}", info.name,
                          join_host_port(info.host, info.port));
  if (!st.cfg.joined->load() && st.cfg.fatal) {
    st.cfg.fatal(what + "; give this node another --node-name (a node that has just died "
                        "is replaced once it is declared down, within --failure-timeout)");
  } else if (st.impostors.insert(info.incarnation).second) {
    spdlog::error("cluster: {}; that node is not a member here", what);
  }
  return true;
}

/// A hello's answer: the node that answered first, then every member it
/// knows. Only the first is merged: the others were named by a third node,
/// and a handle from a third node is routed through it, so this node would
/// never see them go down (CAF 0.17 tells a node only about the nodes it is
/// connected to). Each of them is connected to directly instead, and merged
/// from its own answer.
void merge_all(self_ptr self, const std::vector<node_info>& infos) {
  if (infos.empty())
    return;
  for (auto& info : infos) {
    if (name_taken(self, info) && !self->state.cfg.joined->load())
      return; // stopping: join nothing
    if (auto what = other_wire(info); !what.empty() && cannot_join(self, what))
      return;
  }
  auto& st = self->state;
  std::vector<const node_info*> unknown;
  for (auto it = infos.begin() + 1; it != infos.end(); ++it) {
    if (it->name == st.cfg.self.name)
      continue;
    auto known = st.members.find(it->name);
    if (known == st.members.end() || known->second.incarnation != it->incarnation) {
      unknown.push_back(&*it);
      if (!st.cfg.joined->load()) // awaited before the merge below may join
        st.awaited.emplace(it->host, it->port);
    }
  }
  if (merge(self, infos.front()))
    view_changed(self);
  for (auto info : unknown)
    connect_to(self, info->host, info->port);
}

/// A connect has ended (answered, or given up): a member the node was told
/// of no longer holds up its joining.
void connect_ended(self_ptr self, const host_port& target) {
  if (self->state.awaited.erase(target) > 0)
    update_joined(self);
}

void say_hello(self_ptr self, const caf::actor& peer, const host_port& target) {
  metrics::global().count_cluster(kind::control);
  self->request(peer, request_timeout, hello_atom::value, self->state.cfg.self)
    .then(
      [self, target](std::vector<node_info>& infos) {
        merge_all(self, infos);
        connect_ended(self, target);
      },
      [self, target](caf::error& err) {
        if (is_wire_refusal(err)) {
          auto what = fmt::format("{} speaks {}, this build wire version {}",
                                  target.first.empty()
                                      ? std::string{"a node of this cluster"}
                                      : join_host_port(target.first, target.second),
                                  error_text(err), wire_version());
          if (cannot_join(self, what))
            return;
          if (self->state.foreign.insert(what).second)
            spdlog::error("cluster: {}; it refused this node", what);
        }
        // It went away; its DOWN (if it was a member) updates the view.
        connect_ended(self, target);
      });
}

/// A connect to `target` failed: said once if it is a seed (at warn: a
/// mistyped seed leaves the node alone, which is otherwise silent), until
/// the seed is reached.
void seed_failed(self_ptr self, const host_port& target, const std::string& why) {
  auto& st = self->state;
  if (std::find(st.cfg.seeds.begin(), st.cfg.seeds.end(), target) == st.cfg.seeds.end())
    return;
  if (st.unreachable_seeds.insert(target).second)
    spdlog::warn("cluster: seed {} not reachable: {} (tried every second; said again once it "
                 "was reached and fails again)",
                 join_host_port(target.first, target.second), why);
}

/// Connects to a node's cluster port at a numeric address and says hello to
/// the actor published there (its membership): a direct connection, which
/// CAF watches with heartbeats, so the node's failure reaches this one.
void connect_at(self_ptr self, host_port target,
                const std::string& address) {
  auto mm = self->home_system().middleman().actor_handle();
  self->request(mm, request_timeout, caf::connect_atom::value, address, target.second)
    .then(
      [self, target](const caf::node_id&, caf::strong_actor_ptr& ptr,
                     const std::set<std::string>&) {
        self->state.connecting.erase(target);
        self->state.unreachable_seeds.erase(target);
        auto peer = caf::actor_cast<caf::actor>(ptr);
        if (peer && peer != self->state.cfg.self.membership)
          say_hello(self, peer, target);
        else
          connect_ended(self, target);
      },
      [self, target, address](caf::error& err) {
        self->state.connecting.erase(target);
        spdlog::debug("cluster: {} ({}) not reachable: {}",
                      join_host_port(target.first, target.second), address,
                      caf::to_string(err));
        seed_failed(self, target, address + ": " + caf::to_string(err));
        connect_ended(self, target);
      });
}

constexpr auto connect_poll = std::chrono::milliseconds{50};
constexpr auto slow_lookup = std::chrono::seconds{2};

/// Moves a pending connect on: its name looked up, then its port probed,
/// then CAF asked to connect; or gives up on it (the seed is tried again
/// on a later tick, a member when it is heard of again).
void poll_connect(self_ptr self, const host_port& target) {
  auto& st = self->state;
  auto it = st.pending.find(target);
  if (it == st.pending.end())
    return;
  auto& pc = it->second;
  auto give_up = [&](const std::string& why) {
    spdlog::debug("cluster: {} not reachable: {}",
                  join_host_port(target.first, target.second), why);
    seed_failed(self, target, why); // before `why` (the lookup's or probe's) goes
    st.pending.erase(it);
    st.connecting.erase(target);
    connect_ended(self, target);
  };
  auto again = [&] {
    self->delayed_send(self, connect_poll, lookup_atom::value, target.first, target.second);
  };
  auto now = std::chrono::steady_clock::now();
  if (!pc.probe) {
    auto status = pc.lookup->poll();
    if (status == name_lookup::status::pending) {
      // Joining waits no longer for it than for a port that does not answer.
      if (now - pc.started > st.cfg.failure_timeout)
        connect_ended(self, target);
      return again();
    }
    if (now - pc.started > slow_lookup)
      spdlog::warn("cluster: looking up {} took {} ms", target.first,
                   std::chrono::duration_cast<std::chrono::milliseconds>(now - pc.started)
                     .count());
    if (status == name_lookup::status::failed)
      return give_up(pc.lookup->error());
    pc.probe = std::make_unique<connect_probe>(pc.lookup->addresses().front(), target.second);
    pc.probe_started = now;
  }
  switch (pc.probe->poll()) {
    case connect_probe::status::pending:
      if (now - pc.probe_started > st.cfg.failure_timeout)
        return give_up(pc.lookup->addresses().front() + " does not answer");
      return again();
    case connect_probe::status::failed:
      return give_up(pc.lookup->addresses().front() + ": " + pc.probe->error());
    case connect_probe::status::open:
      break;
  }
  auto address = pc.lookup->addresses().front();
  st.pending.erase(it);
  connect_at(self, target, address);
}

/// Connects to a node's cluster port by host name or address (one connect
/// per target at a time).
void connect_to(self_ptr self, const std::string& host, std::uint16_t port) {
  auto target = std::make_pair(host, port);
  auto& st = self->state;
  if (!st.connecting.insert(target).second)
    return; // already under way
  auto now = std::chrono::steady_clock::now();
  st.pending[target] = {std::make_unique<name_lookup>(host), nullptr, now, now};
  poll_connect(self, target);
}

/// Contacts every seed that is not a known member (again and again, so a
/// node that starts before its seeds, or a healed partition, finds them).
void contact_seeds(self_ptr self) {
  auto& st = self->state;
  for (auto& [host, port] : st.cfg.seeds) {
    if (host == st.cfg.self.host && port == st.cfg.self.port)
      continue;
    bool known = false;
    for (auto& [_, m] : st.members)
      known = known || (m.host == host && m.port == port);
    if (known)
      continue;
    // Before joining, each try of a seed is waited for again (its last one
    // may have failed only because the seed was busy or restarting).
    if (!st.cfg.joined->load())
      st.awaited.emplace(host, port);
    connect_to(self, host, port);
  }
}

/// Asks one member, a different one each time, for the members it knows.
/// A node this one was told of but could not connect to then (its name did
/// not resolve yet, its port did not answer, its handshake timed out) is
/// named again and tried again: without this, two nodes that know only a
/// seed stayed apart for good after one failed connect.
void ask_a_member(self_ptr self) {
  auto& st = self->state;
  if (st.members.empty() || st.leaving)
    return;
  auto it = st.members.upper_bound(st.last_asked);
  if (it == st.members.end())
    it = st.members.begin();
  st.last_asked = it->first;
  say_hello(self, it->second.membership);
}

} // namespace

caf::behavior membership(caf::stateful_actor<membership_state>* self, membership_config cfg) {
  harden(self, "membership");
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.cfg.self.membership = caf::actor_cast<caf::actor>(self);
  st.started = std::chrono::steady_clock::now();
  self->set_down_handler([self](caf::down_msg& dm) {
    auto& members = self->state.members;
    for (auto it = members.begin(); it != members.end(); ++it) {
      if (it->second.membership.address() == dm.source) {
        spdlog::warn("cluster: node {} is down ({})", it->first, caf::to_string(dm.reason));
        members.erase(it);
        view_changed(self);
        return;
      }
    }
  });
  view_changed(self);
  self->send(self, caf::tick_atom::value);
  return {
    [self](caf::tick_atom) {
      contact_seeds(self);
      update_joined(self);
      ask_a_member(self);
      self->delayed_send(self, std::chrono::seconds{1}, caf::tick_atom::value);
    },
    [self](lookup_atom, const std::string& host, std::uint16_t port) {
      poll_connect(self, std::make_pair(host, port));
    },
    [self](hello_atom, node_info& peer) -> caf::result<std::vector<node_info>> {
      if (foreign(self, peer))
        return make_error(error_code::unavailable, wire_refusal());
      name_taken(self, peer); // the peer sees our name first in the answer, too
      if (merge(self, peer))
        view_changed(self);
      if (self->state.leaving)
        return std::vector<node_info>{}; // not a member to make any more
      std::vector<node_info> all{self->state.cfg.self};
      for (auto& [_, m] : self->state.members)
        all.push_back(m);
      return all;
    },
    [self](leaving_atom, const std::string& name) {
      auto& members = self->state.members;
      auto it = members.find(name);
      if (it == members.end())
        return;
      // Keep the connection (its rooms are being handed to us); just stop
      // placing names on it.
      self->demonitor(it->second.membership);
      self->state.departed.insert(it->second.incarnation);
      members.erase(it);
      spdlog::info("cluster: node {} is leaving", name);
      view_changed(self);
    },
    [self](caf::leave_atom) {
      auto& st = self->state;
      if (st.leaving)
        return;
      st.leaving = true;
      for (auto& [_, m] : st.members) {
        metrics::global().count_cluster(kind::control);
        self->send(m.membership, leaving_atom::value, st.cfg.self.name);
      }
      view_changed(self);
    },
    [self](locate_atom, room_atom, const std::string& name) {
      return owner_node(self, name)->rooms;
    },
    [self](locate_atom, user_atom, const std::string& name) {
      return owner_node(self, name)->users;
    },
    [self](locate_atom, all_atom) {
      std::vector<caf::actor> out{self->state.cfg.self.everyone};
      for (auto& [_, m] : self->state.members)
        out.push_back(m.everyone);
      return out;
    },
    [](stats_atom) {
      auto& mx = metrics::global();
      return caf::make_message(mx.connections.load(), mx.rooms.load(), mx.users.load());
    },
    [self](caf::get_atom) {
      // Ask every node for its counts; answer when all replied or timed out.
      auto rp = self->make_response_promise<std::string>();
      auto& st = self->state;
      struct pending {
        nlohmann::json doc;
        std::size_t left;
      };
      auto nodes = std::vector<node_info>{st.cfg.self};
      for (auto& [_, m] : st.members)
        nodes.push_back(m);
      auto acc = std::make_shared<pending>();
      acc->doc = {{"node", st.cfg.self.name}, {"members", nlohmann::json::array()}};
      acc->left = nodes.size();
      for (size_t i = 0; i < nodes.size(); ++i) {
        auto& n = nodes[i];
        acc->doc["members"].push_back(
            {{"name", n.name},
             {"incarnation", n.incarnation},
             {"wire", wire_version_of(n.incarnation)},
             {"address", join_host_port(n.host, n.port)},
             {"state", i == 0 && st.leaving ? "leaving" : "up"}});
        auto finish = [acc, rp]() mutable {
          if (--acc->left == 0)
            rp.deliver(acc->doc.dump());
        };
        self->request(n.membership, std::chrono::seconds{1}, stats_atom::value)
          .then(
            [acc, i, finish](std::int64_t conns, std::int64_t rooms, std::int64_t users) mutable {
              auto& m = acc->doc["members"][i];
              m["connections"] = conns;
              m["rooms"] = rooms;
              m["users"] = users;
              finish();
            },
            [finish](caf::error&) mutable { finish(); });
      }
      return rp;
    },
  };
}

} // namespace rc
