// The network flags of `berth run/create` (--network, -p, --dns, ...), and
// how a container's network shows in ps/inspect/port. Creation goes
// through reconciler/container_network, as `berth up` does.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reconciler/container_network.h"
#include "runtime/runtime.h"

namespace berth::cli {

// The flags as given, kept on the container (annotation, JSON) for inspect.
inline constexpr const char* kNetworkAnnotation = "berth.network";

struct NetworkFlags {
  std::string network;  // empty: docker's default network, "bridge"
  std::vector<std::string> aliases;
  std::string ip;
  std::vector<std::string> publish;
  bool publish_all = false;
  std::vector<std::string> expose;  // --expose: ExposedPorts beyond the image's (-P publishes them)
  std::vector<std::string> dns, dns_search, dns_opt, add_host;
};

void add_network_flags(CLI::App* cmd, NetworkFlags& flags);

// Makes the container's network (netns, endpoints, hosts, resolv.conf),
// then the container; undoes the network when creating fails. The spec's
// name is chosen here when empty (the DNS needs it before create).
runtime::Container create_with_network(runtime::Runtime& rt, runtime::ContainerSpec spec, const NetworkFlags& flags);

// HostConfig.NetworkMode as docker prints it: bridge, NAME, host, none, container:ID.
std::string network_mode_name(const runtime::Container& c);
// docker inspect's NetworkSettings, and HostConfig's network keys merged into `host_config`.
nlohmann::json network_settings_json(const runtime::Runtime& rt, const runtime::Container& c,
                                     nlohmann::json& host_config);
// Every network in the store (none when there is no store yet): ps reads
// them once for all the containers it shows.
std::vector<net::NetworkRecord> all_networks(const runtime::Runtime& rt);
// ps's PORTS column: "0.0.0.0:8080->80/tcp, 127.0.0.1:9000->9000/udp", from
// the networks of all_networks.
std::string ports_text(const std::vector<net::NetworkRecord>& networks, const runtime::Container& c);
// After `rm`: endpoints, veths, nft rules and IPAM entries of the container go.
void release_network(const runtime::Runtime& rt, const std::string& container_id);

}  // namespace berth::cli
