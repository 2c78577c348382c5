// How a container joins berth's networks: the one place where runtime/
// (which only knows "join this netns path") meets net/ (which only knows
// "connect this netns path"). Used by `berth run/create/rm` and by the
// compose reconciler's driver alike; nothing here parses CLI flags or YAML.
//
// A container on bridge networks owns a persistent network namespace file,
// <run_root>/netns/<container id>, made before the container and connected
// to each network (veth, address, DNAT for published ports). The container's
// init setns()es into it. The file goes when the container is removed
// (Runtime::remove, or the monitor for --rm), and release_container_network
// disconnects the endpoints that named it.
//
// Lifecycle for a caller:
//   id = runtime::new_container_id();
//   name = wanted name or rt.unused_name();
//   ContainerNetwork n = setup_container_network(rt, id, name, request);
//   apply_container_network(n, spec);          // mode, netns path, hosts, resolv.conf
//   try { rt.create(spec, id); } catch (...) { release_container_network(rt, id); throw; }
//   ... later: rt.remove(id, force); release_container_network(rt, id);
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "net/store.h"
#include "runtime/runtime.h"

namespace berth::reconciler {

// One network to join, with what the container answers to on it.
struct NetworkJoin {
  // A network name or id; "bridge" is the default network (created on
  // first use). Alone in a request, also: "none", "host", "container:<name|id>".
  std::string network;
  std::vector<std::string> aliases;          // --network-alias / compose aliases
  std::optional<std::string> ipv4_address;   // --ip / ipv4_address
};

struct ContainerNetworkRequest {
  std::vector<NetworkJoin> networks;  // empty: {"bridge"}, docker's default
  std::vector<std::string> publish;   // docker -p specs; bound on the first network
  std::vector<std::string> dns, dns_search, dns_opt;  // --dns, --dns-search, --dns-option
  std::vector<std::string> extra_hosts;               // --add-host "name:ip"
  // The container's hostname (empty: the first 12 digits of its id, as the
  // runtime defaults it); written into /etc/hosts with its address. When
  // set explicitly it is also a DNS name on user networks.
  std::string hostname;
};

// One network the container was connected to.
struct JoinedNetwork {
  net::NetworkRecord network;   // as it was after the connect (without later changes)
  net::EndpointRecord endpoint;
};

// What runtime::ContainerSpec needs, and what was done.
struct ContainerNetwork {
  runtime::NetworkMode mode = runtime::NetworkMode::None;
  std::string netns_path;   // Netns mode
  bool owns_netns = false;  // netns_path was made for this container
  std::string hosts_file;   // empty: the runtime's default
  std::string resolv_conf;  // empty: the runtime's default (the host's file)
  std::vector<JoinedNetwork> joined;
};

// <run_root>/netns/<container id>
std::string container_netns_path(const std::string& run_root, const std::string& container_id);

// Validates the request (networks exist, -p/--add-host/--ip syntax, modes
// not mixed) before changing anything, then creates the netns file and
// connects every network. On any failure everything done is undone and
// berth::Error (exit 125) is thrown. "none"/"host" change nothing.
// "container:X" needs X running and shares its namespace and files.
ContainerNetwork setup_container_network(const runtime::Runtime& rt, const std::string& container_id,
                                         const std::string& container_name, const ContainerNetworkRequest& request);

// Copies mode, netns path, hostname, hosts and resolv.conf text into a spec.
void apply_container_network(const ContainerNetwork& network, const std::string& container_id,
                             const ContainerNetworkRequest& request, runtime::ContainerSpec& spec);

// Disconnects every endpoint connected through the container's netns file
// and deletes the file. Idempotent: safe for a container whose start was
// killed halfway, whose file is already gone, or that had no network.
void release_container_network(const runtime::Runtime& rt, const std::string& container_id);

// Releases endpoints whose netns file under <run_root>/netns/ is gone (a
// --rm container removed by its monitor). Cheap; called by setup.
void release_stale_endpoints(const runtime::Runtime& rt);

// Connects a running (or created) container with its own netns file to one
// more network; docker's `network connect`. Returns the endpoint.
net::EndpointRecord connect_container(const runtime::Runtime& rt, const std::string& container,
                                      const NetworkJoin& join);
// `network disconnect NETWORK CONTAINER`.
void disconnect_container(const runtime::Runtime& rt, const std::string& network, const std::string& container);

// The container's endpoints, network by network (for inspect/ps/port).
std::vector<JoinedNetwork> container_endpoints(const runtime::Runtime& rt, const runtime::Container& c);
// The same from networks already listed (net::NetworkManager::list), for
// callers that look at many containers (ps): the store is read once.
std::vector<JoinedNetwork> container_endpoints(const std::vector<net::NetworkRecord>& networks,
                                               const runtime::Container& c);

}  // namespace berth::reconciler
