// `berth port`, and the network side of run/create/ps/inspect/rm
// (cli/network_flags.h).
#include <algorithm>
#include <iostream>
#include <memory>
#include <set>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "cli/cli.h"
#include "cli/network_flags.h"
#include "net/net.h"
#include "reconciler/image_rootfs.h"

namespace berth::cli {

namespace {

nlohmann::json saved_flags(const runtime::Container& c) {
  auto it = c.spec.annotations.find(kNetworkAnnotation);
  if (it == c.spec.annotations.end()) return nlohmann::json::object();
  auto j = nlohmann::json::parse(it->second, nullptr, false);
  return j.is_object() ? j : nlohmann::json::object();
}

std::string port_key(const net::BoundPort& p) { return std::to_string(p.container_port) + "/" + p.protocol; }

}  // namespace

void add_network_flags(CLI::App* cmd, NetworkFlags& f) {
  cmd->add_option("--network,--net", f.network,
                  "Connect a container to a network (NAME|bridge|host|none|container:NAME_OR_ID)");
  cmd->add_option("--network-alias,--net-alias", f.aliases, "Add network-scoped alias for the container")
      ->allow_extra_args(false);
  cmd->add_option("--ip", f.ip, "IPv4 address (e.g. 172.30.100.104)");
  cmd->add_option("-p,--publish", f.publish, "Publish a container's port(s) to the host ([ip:][host:]ctr[/proto])")
      ->allow_extra_args(false);
  cmd->add_flag("-P,--publish-all", f.publish_all, "Publish all exposed ports to random ports");
  cmd->add_option("--expose", f.expose, "Expose a port or a range of ports")->allow_extra_args(false);
  cmd->add_option("--dns", f.dns, "Set custom DNS servers")->allow_extra_args(false);
  cmd->add_option("--dns-search", f.dns_search, "Set custom DNS search domains")->allow_extra_args(false);
  cmd->add_option("--dns-option,--dns-opt", f.dns_opt, "Set DNS options")->allow_extra_args(false);
  cmd->add_option("--add-host", f.add_host, "Add a custom host-to-IP mapping (host:ip)")->allow_extra_args(false);
}

runtime::Container create_with_network(runtime::Runtime& rt, runtime::ContainerSpec spec, const NetworkFlags& f) {
  reconciler::ContainerNetworkRequest req;
  std::string mode = f.network.empty() ? net::kDefaultNetworkName : f.network;
  reconciler::NetworkJoin join{mode, f.aliases, {}};
  if (!f.ip.empty()) join.ipv4_address = f.ip;
  req.networks.push_back(join);
  req.publish = f.publish;
  // --expose joins the image's ExposedPorts in the recorded Config.
  auto it = spec.annotations.find(reconciler::kConfigAnnotation);
  auto cfg = it == spec.annotations.end() ? nlohmann::json::object()
                                          : nlohmann::json::parse(it->second, nullptr, false);
  if (!cfg.is_object()) cfg = nlohmann::json::object();
  for (auto& e : f.expose)
    for (auto& key : net::parse_expose_spec(e)) cfg["ExposedPorts"][key] = nlohmann::json::object();
  if (!f.expose.empty()) spec.annotations[reconciler::kConfigAnnotation] = cfg.dump();
  if (f.publish_all && cfg.contains("ExposedPorts") && cfg["ExposedPorts"].is_object())
    // -P: every exposed port to a random host port.
    for (auto& [port, unused] : cfg["ExposedPorts"].items()) req.publish.push_back(port);
  req.dns = f.dns;
  req.dns_search = f.dns_search;
  req.dns_opt = f.dns_opt;
  req.extra_hosts = f.add_host;
  req.hostname = spec.hostname;
  if (mode.rfind("container:", 0) == 0 && !spec.hostname.empty())
    throw Error("conflicting options: hostname and the network mode", 0, 125);

  if (spec.name.empty()) spec.name = rt.unused_name();
  // A taken name fails before any network is made.
  for (auto& other : rt.list())
    if (other.spec.name == spec.name)
      throw Error("Conflict. The container name \"/" + spec.name + "\" is already in use by container \"" +
                      other.id + "\"",
                  0, 125);
  std::string id = runtime::new_container_id();
  auto network = reconciler::setup_container_network(rt, id, spec.name, req);
  reconciler::apply_container_network(network, id, req, spec);
  nlohmann::json saved = {{"mode", mode},
                          {"publish", f.publish},     {"publish_all", f.publish_all},
                          {"dns", f.dns},             {"dns_search", f.dns_search},
                          {"dns_opt", f.dns_opt},     {"add_host", f.add_host},
                          {"aliases", f.aliases},     {"ip", f.ip}};
  if (mode.rfind("container:", 0) == 0) {
    // Recorded by id, as docker does: a rename of the other container changes nothing.
    saved["mode"] = "container:" + rt.get(mode.substr(10)).id;
  }
  spec.annotations[kNetworkAnnotation] = saved.dump();
  try {
    return rt.create(spec, id);
  } catch (...) {
    try {
      reconciler::release_container_network(rt, id);
    } catch (const Error& e) {
      spdlog::warn("cleanup of the network of {}: {}", id.substr(0, 12), e.what());
    }
    throw;
  }
}

std::string network_mode_name(const runtime::Container& c) {
  auto saved = saved_flags(c);
  if (saved.contains("mode") && saved["mode"].is_string()) return saved["mode"].get<std::string>();
  switch (c.spec.network) {
    case runtime::NetworkMode::Host: return "host";
    case runtime::NetworkMode::None: return "none";
    default: return c.spec.remove_netns ? "bridge" : "container:" + c.spec.netns_path;
  }
}

nlohmann::json network_settings_json(const runtime::Runtime& rt, const runtime::Container& c,
                                     nlohmann::json& host_config) {
  auto saved = saved_flags(c);
  auto list = [&](const char* key) {
    return saved.contains(key) && saved[key].is_array() ? saved[key] : nlohmann::json::array();
  };
  host_config["NetworkMode"] = network_mode_name(c);
  host_config["Dns"] = list("dns");
  host_config["DnsSearch"] = list("dns_search");
  host_config["DnsOptions"] = list("dns_opt");
  host_config["ExtraHosts"] = list("add_host");
  host_config["PublishAllPorts"] = saved.value("publish_all", false);

  auto joined = reconciler::container_endpoints(rt, c);
  nlohmann::json ports = nlohmann::json::object(), bindings = nlohmann::json::object();
  nlohmann::json networks = nlohmann::json::object();
  for (auto& j : joined) {
    for (auto& p : j.endpoint.ports) {
      nlohmann::json b = {{"HostIp", p.host_ip.empty() ? "0.0.0.0" : p.host_ip},
                          {"HostPort", std::to_string(p.host_port)}};
      ports[port_key(p)].push_back(b);
      bindings[port_key(p)].push_back({{"HostIp", p.host_ip}, {"HostPort", std::to_string(p.host_port)}});
    }
    nlohmann::json dns_names = nlohmann::json::array();
    if (j.network.name != net::kDefaultNetworkName) {
      dns_names.push_back(j.endpoint.name);
      if (!j.endpoint.hostname.empty()) dns_names.push_back(j.endpoint.hostname);
      for (auto& a : j.endpoint.aliases) dns_names.push_back(a);
    }
    networks[j.network.name] = {
        {"IPAMConfig", nullptr},
        {"Links", nullptr},
        {"Aliases", j.endpoint.aliases.empty() ? nlohmann::json() : nlohmann::json(j.endpoint.aliases)},
        {"MacAddress", j.endpoint.mac},
        {"NetworkID", j.network.id},
        {"EndpointID", j.endpoint.id},
        {"Gateway", j.network.gateway.to_string()},
        {"IPAddress", j.endpoint.address.to_string()},
        {"IPPrefixLen", j.network.subnet.prefix},
        {"IPv6Gateway", ""},
        {"GlobalIPv6Address", ""},
        {"GlobalIPv6PrefixLen", 0},
        {"DNSNames", dns_names.empty() ? nlohmann::json() : dns_names},
        {"InterfaceName", j.endpoint.ifname},
    };
  }
  host_config["PortBindings"] = bindings;
  nlohmann::json s = {{"Bridge", ""},
                      {"SandboxID", c.spec.network == runtime::NetworkMode::Netns ? c.id : ""},
                      {"SandboxKey", c.spec.netns_path},
                      {"Ports", ports},
                      {"Networks", networks},
                      {"Gateway", ""},
                      {"IPAddress", ""},
                      {"IPPrefixLen", 0},
                      {"MacAddress", ""}};
  // Docker fills the top-level keys from the default bridge network only.
  for (auto& j : joined)
    if (j.network.name == net::kDefaultNetworkName) {
      s["Gateway"] = j.network.gateway.to_string();
      s["IPAddress"] = j.endpoint.address.to_string();
      s["IPPrefixLen"] = j.network.subnet.prefix;
      s["MacAddress"] = j.endpoint.mac;
    }
  return s;
}

std::vector<net::NetworkRecord> all_networks(const runtime::Runtime& rt) {
  net::NetworkManager mgr(rt.paths().root);
  if (!path_exists(mgr.store().dir())) return {};
  return mgr.list();
}

std::string ports_text(const std::vector<net::NetworkRecord>& networks, const runtime::Container& c) {
  std::vector<std::string> parts;
  std::set<std::string> published;
  for (auto& j : reconciler::container_endpoints(networks, c))
    for (auto& p : j.endpoint.ports) {
      parts.push_back(net::format_port(p.host_ip.empty() ? "0.0.0.0" : p.host_ip, p.host_port, p.container_port, p.protocol));
      published.insert(std::to_string(p.container_port) + "/" + p.protocol);
    }
  // A running container's exposed ports that are not published show bare, "80/tcp".
  auto it = c.spec.annotations.find(reconciler::kConfigAnnotation);
  if (it != c.spec.annotations.end() &&
      (c.state.status == runtime::Status::Running || c.state.status == runtime::Status::Paused)) {
    auto cfg = nlohmann::json::parse(it->second, nullptr, false);
    if (cfg.is_object() && cfg.contains("ExposedPorts") && cfg["ExposedPorts"].is_object())
      for (auto& [key, unused] : cfg["ExposedPorts"].items())
        if (!published.count(key)) parts.push_back(key);
  }
  std::string out;
  for (auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

void release_network(const runtime::Runtime& rt, const std::string& container_id) {
  reconciler::release_container_network(rt, container_id);
}

namespace {

void register_port_command(CLI::App& app, GlobalOptions& global) {
  auto* port = add_command(app, "port", "List port mappings or a specific mapping for the container");
  auto args = std::make_shared<std::vector<std::string>>();
  port->add_option("CONTAINER [PRIVATE_PORT[/PROTO]]", *args, "Container, and a port to show")->required();
  port->callback([args, &global] {
    if (args->size() > 2) throw UsageError("\"port\" requires 1 or 2 arguments: CONTAINER [PRIVATE_PORT[/PROTO]]");
    runtime::Runtime rt(runtime::Paths{global.root, global.run_root, {}});
    auto c = rt.get(args->front());
    std::string want;
    if (args->size() == 2) {
      want = (*args)[1];
      if (want.find('/') == std::string::npos) want += "/tcp";
      auto slash = want.find('/');
      std::string num = want.substr(0, slash), proto = want.substr(slash + 1);
      if (num.empty() || num.find_first_not_of("0123456789") != std::string::npos || (proto != "tcp" && proto != "udp"))
        throw Error("invalid port " + (*args)[1], 0, 1);
    }
    std::vector<net::BoundPort> ports;
    for (auto& j : reconciler::container_endpoints(rt, c))
      ports.insert(ports.end(), j.endpoint.ports.begin(), j.endpoint.ports.end());
    // By container port; the bindings of one port in the order they were given.
    std::stable_sort(ports.begin(), ports.end(), [](auto& a, auto& b) {
      return std::tie(a.container_port, a.protocol) < std::tie(b.container_port, b.protocol);
    });
    bool found = false;
    for (auto& p : ports) {
      std::string key = port_key(p);
      if (!want.empty() && key != want) continue;
      found = true;
      std::string where = (p.host_ip.empty() ? "0.0.0.0" : p.host_ip) + ":" + std::to_string(p.host_port);
      if (want.empty()) std::cout << key << " -> " << where << "\n";
      else std::cout << where << "\n";
    }
    if (!want.empty() && !found)
      throw Error("No public port '" + want + "' published for " + c.spec.name, 0, 1);
  });
}

}  // namespace

BERTH_REGISTER_COMMANDS(205, register_port_command, "port");

}  // namespace berth::cli
