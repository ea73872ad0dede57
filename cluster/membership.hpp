#pragma once

#include <caf/stateful_actor.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "actors/messages.hpp"
#include "cluster/connect_probe.hpp"
#include "cluster/name_lookup.hpp"

namespace rc {

/// What a node tells the others about itself.
struct node_info {
  std::string name;
  std::string incarnation; ///< new on every start: a restarted node is a new member
  std::string host;        ///< advertised cluster address
  std::uint16_t port = 0;
  caf::actor membership;
  caf::actor rooms;    ///< its room directory
  caf::actor users;    ///< its user directory
  caf::actor everyone; ///< its broadcaster
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, node_info& x) {
  return f(caf::meta::type_name("rc::node_info"), x.name, x.incarnation, x.host, x.port,
           x.membership, x.rooms, x.users, x.everyone);
}

using hello_atom = caf::atom_constant<caf::atom("hello")>;
using leaving_atom = caf::atom_constant<caf::atom("leaving")>;
using stats_atom = caf::atom_constant<caf::atom("stats")>;
using lookup_atom = caf::atom_constant<caf::atom("lookup")>; ///< local: poll a pending connect

/// A cluster port as configured or advertised: host name or address, port.
using host_port = std::pair<std::string, std::uint16_t>;

struct membership_config {
  node_info self;
  std::vector<host_port> seeds;
  std::chrono::milliseconds failure_timeout{3000};
  /// Set once the node has joined a cluster (or found itself alone long
  /// enough to form one): what `/readyz` reports.
  std::shared_ptr<std::atomic<bool>> joined;
  /// Called when this node cannot be a member at all (its name is taken by
  /// a live node before it joined); the node stops with an error.
  std::function<void(const std::string&)> fatal;
};

struct membership_state {
  membership_config cfg;
  std::map<std::string, node_info> members; ///< the others that are up, by name
  bool leaving = false;
  std::set<host_port> connecting; ///< connects under way
  /// Before joining: the seeds, and the members named in answers, that have
  /// not answered (nor failed) yet. The node joins once there are none, so
  /// that its first view holds every member it can reach.
  std::set<host_port> awaited;
  /// A connect before CAF is asked for it: its host name looked up, then
  /// its port probed.
  struct pending_connect {
    std::unique_ptr<name_lookup> lookup;
    std::unique_ptr<connect_probe> probe;
    std::chrono::steady_clock::time_point started;       ///< of the lookup
    std::chrono::steady_clock::time_point probe_started; ///< of the probe
  };
  /// The connects among `connecting` that CAF has not been asked for yet.
  std::map<host_port, pending_connect> pending;
  /// Seeds whose failure was logged, until they are reached: a mistyped
  /// seed is named once instead of every second, or never.
  std::set<host_port> unreachable_seeds;
  std::set<std::string> departed; ///< incarnations that said they are leaving
  std::set<std::string> impostors; ///< incarnations refused for a taken name (logged once)
  /// Incarnations (and refusals) of another wire version, logged once.
  std::set<std::string> foreign;
  std::string last_asked; ///< the member asked for its members last (one a second, in turn)
  std::chrono::steady_clock::time_point started;
  static inline const char* name = "membership";
};

/// The cluster membership of one node, and the cluster's locator. Published
/// on the cluster port (CAF remoting). It connects to the seeds (retrying
/// every second while they are absent), exchanges member lists, and connects to
/// every member it hears of, so every node is connected to every other (a
/// full mesh). Every second it asks one member, in turn, for the members it
/// knows, so a member it could not reach when it first heard of it (a name
/// that did not resolve yet) is tried again. Host names are looked up and
/// ports probed without blocking (name_lookup, connect_probe) before CAF,
/// whose connect blocks its only thread, is asked: a seed whose name does
/// not resolve, or whose address does not answer, delays no other. It
/// declares a node down when its membership actor goes down: at once for a
/// killed process, after the CAF connection timeout (`failure-timeout`) for
/// a frozen one.
///
/// On every change it tells the local room and user directories which
/// directory owns what (rendezvous placement over the live members), so
/// rooms and users move to their new owners; the first time once the node
/// has joined (the directories hold requests until then).
///
/// Messages: `(hello_atom, node_info)` -> all known members;
/// `(leaving_atom, name)` from a peer stopping gracefully;
/// `(caf::leave_atom)` locally: leave gracefully (this node's rooms and users
/// move to the others); `(locate_atom, ...)` as in actors/locator.hpp;
/// `(stats_atom)` -> connections, rooms, users of this node;
/// `(caf::get_atom)` -> the cluster as JSON (for `/api/cluster`).
caf::behavior membership(caf::stateful_actor<membership_state>* self, membership_config cfg);

/// Registers node_info for remoting (on top of add_wire_types).
template <class Config>
void add_cluster_types(Config& cfg) {
  cfg.template add_message_type<node_info>("rc::node_info");
}

/// A random incarnation id, then this build's wire version ("k2v9x0a1qz/w1").
std::string make_incarnation();

} // namespace rc
