// `berth network create|ls|inspect|rm|prune|connect|disconnect`, docker's
// flags and output. connect/disconnect take a container (name or id), or a
// network namespace (a path such as /run/netns/NAME, or a pid).
#include <unistd.h>

#include <algorithm>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/template.h"
#include "cli/cli.h"
#include "cli/table.h"
#include "net/net.h"
#include "reconciler/container_network.h"

namespace berth::cli {

namespace {

std::map<std::string, std::string> parse_labels(const std::vector<std::string>& labels) {
  std::map<std::string, std::string> out;
  for (auto& l : labels) {
    auto eq = l.find('=');
    if (l.empty() || eq == 0) throw UsageError("invalid label \"" + l + "\" (want key=value)");
    out[l.substr(0, eq)] = eq == std::string::npos ? "" : l.substr(eq + 1);
  }
  return out;
}

// The container `ref` names, when berth has one by that name or id.
std::optional<runtime::Container> container_named(const runtime::Runtime& rt, const std::string& ref) {
  try {
    return rt.get(ref);
  } catch (const Error&) {
    return std::nullopt;
  }
}

// docker keys inspect's Containers by container id. An endpoint made for a
// container was connected through <run_root>/netns/<container id>; one
// connected by hand through another namespace path keeps its endpoint id.
std::string endpoint_owner(const std::string& run_root, const net::EndpointRecord& e) {
  std::string dir = reconciler::container_netns_path(run_root, "");
  if (e.netns.starts_with(dir) && e.netns.find('/', dir.size()) == std::string::npos && e.netns.size() > dir.size())
    return e.netns.substr(dir.size());
  return e.id;
}

nlohmann::json inspect_json(const std::string& run_root, const net::NetworkRecord& n) {
  nlohmann::json containers = nlohmann::json::object();
  for (auto& [id, e] : n.endpoints)
    containers[endpoint_owner(run_root, e)] = {{"Name", e.name},
                      {"EndpointID", e.id},
                      {"MacAddress", e.mac},
                      {"IPv4Address", e.address.to_string() + "/" + std::to_string(n.subnet.prefix)},
                      {"IPv6Address", ""}};
  nlohmann::json options = {{"com.docker.network.bridge.name", n.bridge},
                            {"com.docker.network.driver.mtu", std::to_string(n.mtu)}};
  return {{"Name", n.name},
          {"Id", n.id},
          {"Created", n.created},
          {"Scope", "local"},
          {"Driver", n.driver},
          {"EnableIPv6", false},
          {"IPAM",
           {{"Driver", "default"},
            {"Options", nlohmann::json::object()},
            {"Config", {{{"Subnet", n.subnet.to_string()}, {"Gateway", n.gateway.to_string()}}}}}},
          {"Internal", n.internal},
          {"Attachable", false},
          {"Ingress", false},
          {"ConfigFrom", {{"Network", ""}}},
          {"ConfigOnly", false},
          {"Containers", containers},
          {"Options", options},
          {"Labels", n.labels}};
}

// docker's ls filters: name= (substring), id= (prefix), label=k[=v], driver=.
bool matches_filters(const net::NetworkRecord& n, const std::vector<std::string>& filters) {
  for (auto& f : filters) {
    auto eq = f.find('=');
    if (eq == std::string::npos) throw UsageError("bad format of filter (expected name=value): " + f);
    std::string key = f.substr(0, eq), value = f.substr(eq + 1);
    if (key == "name") {
      if (n.name.find(value) == std::string::npos) return false;
    } else if (key == "id") {
      if (!n.id.starts_with(value)) return false;
    } else if (key == "driver") {
      if (n.driver != value) return false;
    } else if (key == "label") {
      auto leq = value.find('=');
      auto it = n.labels.find(value.substr(0, leq));
      if (it == n.labels.end() || (leq != std::string::npos && it->second != value.substr(leq + 1))) return false;
    } else {
      throw UsageError("invalid filter '" + key + "'");
    }
  }
  return true;
}

struct CreateFlags {
  std::string name;
  std::string driver = "bridge";
  std::vector<std::string> subnets;
  std::vector<std::string> gateways;
  bool internal = false;
  std::vector<std::string> labels;
  std::vector<std::string> options;
};

void register_network_commands(CLI::App& app, GlobalOptions& global) {
  auto* network = add_command(app, "network", "Manage networks");
  network->require_subcommand(1);

  auto create_flags = std::make_shared<CreateFlags>();
  auto* create = add_command(*network, "create", "Create a network");
  create->add_option("NETWORK", create_flags->name, "Network name")->required();
  create->add_option("-d,--driver", create_flags->driver, "Driver to manage the Network")->capture_default_str();
  create->add_option("--subnet", create_flags->subnets, "Subnet in CIDR format that represents a network segment");
  create->add_option("--gateway", create_flags->gateways, "IPv4 Gateway for the master subnet");
  create->add_flag("--internal", create_flags->internal, "Restrict external access to the network");
  create->add_option("--label", create_flags->labels, "Set metadata on a network");
  create->add_option("-o,--opt", create_flags->options, "Set driver specific options (com.docker.network.driver.mtu)");
  create->callback([&global, create_flags] {
    auto& f = *create_flags;
    if (f.subnets.size() > 1 || f.gateways.size() > 1)
      throw UsageError("berth networks have one IPv4 subnet: give --subnet and --gateway at most once");
    if (!f.gateways.empty() && f.subnets.empty()) throw UsageError("--gateway needs --subnet");
    net::CreateNetworkOptions o;
    o.name = f.name;
    o.driver = f.driver;
    if (!f.subnets.empty()) o.subnet = f.subnets[0];
    if (!f.gateways.empty()) o.gateway = f.gateways[0];
    o.internal = f.internal;
    o.labels = parse_labels(f.labels);
    for (auto& opt : f.options) {
      auto eq = opt.find('=');
      std::string key = opt.substr(0, eq), value = eq == std::string::npos ? "" : opt.substr(eq + 1);
      if (key == "com.docker.network.driver.mtu") {
        try {
          o.mtu = std::stoi(value);
        } catch (const std::exception&) {
          throw UsageError("invalid MTU \"" + value + "\"");
        }
      } else {
        throw UsageError("unsupported network option \"" + key + "\"");
      }
    }
    std::cout << net::NetworkManager(global.root).create(o).id << "\n";
  });

  struct LsFlags {
    bool quiet = false;
    bool no_trunc = false;
    std::vector<std::string> filters;
    std::string format;
  };
  auto ls_flags = std::make_shared<LsFlags>();
  auto* ls = add_command(*network, "ls", "List networks");
  ls->alias("list");
  ls->add_flag("-q,--quiet", ls_flags->quiet, "Only display network IDs");
  ls->add_flag("--no-trunc", ls_flags->no_trunc, "Do not truncate the output");
  ls->add_option("-f,--filter", ls_flags->filters, "Provide filter values (e.g. 'driver=bridge')");
  ls->add_option("--format", ls_flags->format, "Format output: json");
  ls->callback([&global, ls_flags] {
    auto& f = *ls_flags;
    std::vector<net::NetworkRecord> shown;
    for (auto& n : net::NetworkManager(global.root).list())
      if (matches_filters(n, f.filters)) shown.push_back(n);
    auto id_of = [&](const net::NetworkRecord& n) { return f.no_trunc ? n.id : n.short_id(); };
    if (f.format == "json") {
      for (auto& n : shown)
        std::cout << nlohmann::json{{"ID", id_of(n)}, {"Name", n.name}, {"Driver", n.driver}, {"Scope", "local"},
                                    {"Internal", n.internal ? "true" : "false"}}
                         .dump()
                  << "\n";
      return;
    }
    if (!f.format.empty()) throw UsageError("--format: unknown format \"" + f.format + "\" (want json)");
    if (f.quiet) {
      for (auto& n : shown) std::cout << id_of(n) << "\n";
      return;
    }
    std::vector<std::vector<std::string>> rows = {{"NETWORK ID", "NAME", "DRIVER", "SCOPE"}};
    for (auto& n : shown) rows.push_back({id_of(n), n.name, n.driver, "local"});
    print_table(rows, 10);
  });

  auto inspect_names = std::make_shared<std::vector<std::string>>();
  auto inspect_format = std::make_shared<std::string>();
  auto* inspect = add_command(*network, "inspect", "Display detailed information on one or more networks");
  inspect->add_option("NETWORK", *inspect_names, "Network names or ids")->required();
  inspect->add_option("-f,--format", *inspect_format, "Format the output: json (the default) or a Go template");
  inspect->callback([&global, inspect_names, inspect_format] {
    net::NetworkManager manager(global.root);
    nlohmann::json out = nlohmann::json::array();
    std::vector<std::string> missing;
    for (auto& name : *inspect_names) {
      auto n = manager.store().find(name);
      if (n)
        out.push_back(inspect_json(global.run_root, *n));
      else
        missing.push_back(name);
    }
    if (inspect_format->empty() || *inspect_format == "json") {
      std::cout << out.dump(4) << "\n";
    } else {
      for (auto& j : out) std::cout << render_template(*inspect_format, j) << "\n";
    }
    if (!missing.empty()) {
      for (auto& m : missing) std::cerr << "Error: No such network: " << m << "\n";
      exit_with(1);
    }
  });

  auto rm_names = std::make_shared<std::vector<std::string>>();
  auto rm_force = std::make_shared<bool>(false);
  auto* rm = add_command(*network, "rm", "Remove one or more networks");
  rm->alias("remove");
  rm->add_option("NETWORK", *rm_names, "Network names or ids")->required();
  rm->add_flag("-f,--force", *rm_force, "Do not error if the network does not exist");
  rm->callback([&global, rm_names, rm_force] {
    // Endpoints of --rm containers the monitor removed hold no network.
    reconciler::release_stale_endpoints(runtime::Runtime(runtime::Paths{global.root, global.run_root, {}}));
    net::NetworkManager manager(global.root);
    bool failed = false;
    for (auto& name : *rm_names) {
      try {
        if (!manager.store().find(name)) {
          if (*rm_force) continue;
          throw Error("No such network: " + name);
        }
        manager.remove(name);
        std::cout << name << "\n";
      } catch (const Error& e) {
        std::cerr << "Error: " << e.what() << "\n";
        failed = true;
      }
    }
    if (failed) exit_with(1);
  });

  auto prune_force = std::make_shared<bool>(false);
  auto prune_filters = std::make_shared<std::vector<std::string>>();
  auto* prune = add_command(*network, "prune", "Remove all unused networks");
  prune->add_flag("-f,--force", *prune_force, "Do not prompt for confirmation");
  prune->add_option("--filter", *prune_filters, "Provide filter values (e.g. 'label=<key>=<value>')");
  prune->callback([&global, prune_force, prune_filters] {
    reconciler::release_stale_endpoints(runtime::Runtime(runtime::Paths{global.root, global.run_root, {}}));
    std::vector<std::string> labels;
    for (auto& f : *prune_filters) {
      if (!f.starts_with("label=")) throw UsageError("invalid filter \"" + f + "\" (berth supports label=)");
      labels.push_back(f.substr(6));
    }
    if (!*prune_force) {
      std::cout << "WARNING! This will remove all custom networks not used by at least one container.\n"
                << "Are you sure you want to continue? [y/N] " << std::flush;
      std::string answer;
      std::getline(std::cin, answer);
      if (answer != "y" && answer != "Y" && answer != "yes") return;
    }
    auto removed = net::NetworkManager(global.root).prune(labels);
    if (removed.empty()) return;
    std::cout << "Deleted Networks:\n";
    for (auto& name : removed) std::cout << name << "\n";
  });

  struct ConnectFlags {
    std::string network;
    std::string target;
    std::string ip;
    std::vector<std::string> aliases;
    std::vector<std::string> publish;
    std::string name;
  };
  auto connect_flags = std::make_shared<ConnectFlags>();
  auto* connect = add_command(*network, "connect", "Connect a container to a network");
  connect->add_option("NETWORK", connect_flags->network, "Network name or id")->required();
  connect->add_option("CONTAINER", connect_flags->target,
                      "Container name or id, or a network namespace: a path (/run/netns/NAME, "
                      "/proc/PID/ns/net) or a pid")
      ->required();
  connect->add_option("--ip", connect_flags->ip, "IPv4 address (e.g. 172.30.100.104)");
  connect->add_option("--alias", connect_flags->aliases, "Add network-scoped alias");
  connect->add_option("--name", connect_flags->name, "Name the endpoint answers to in the embedded DNS");
  connect->add_option("-p,--publish", connect_flags->publish, "Publish a port ([ip:]host:container[/proto])");
  connect->callback([&global, connect_flags] {
    auto& f = *connect_flags;
    runtime::Runtime rt(runtime::Paths{global.root, global.run_root, {}});
    if (auto c = container_named(rt, f.target)) {
      if (!f.publish.empty() || !f.name.empty())
        throw UsageError("-p and --name are for network namespaces; a container keeps its name and ports");
      reconciler::NetworkJoin join{f.network, f.aliases, {}};
      if (!f.ip.empty()) join.ipv4_address = f.ip;
      reconciler::connect_container(rt, c->id, join);
      return;
    }
    if (f.target.find('/') == std::string::npos && f.target.find_first_not_of("0123456789") != std::string::npos)
      throw Error("No such container: " + f.target, 0, 1);
    net::ConnectOptions o;
    o.netns = f.target;
    o.name = f.name;
    o.aliases = f.aliases;
    o.publish = f.publish;
    if (!f.ip.empty()) o.ipv4_address = f.ip;
    auto e = net::NetworkManager(global.root).connect(f.network, o);
    std::cout << e.id << "\n";
  });

  auto disconnect_network = std::make_shared<std::string>();
  auto disconnect_endpoint = std::make_shared<std::string>();
  auto* disconnect = add_command(*network, "disconnect", "Disconnect a container from a network");
  disconnect->add_option("NETWORK", *disconnect_network, "Network name or id")->required();
  disconnect->add_option("CONTAINER", *disconnect_endpoint, "Container name or id, or an endpoint id (or prefix)")
      ->required();
  disconnect->callback([&global, disconnect_network, disconnect_endpoint] {
    runtime::Runtime rt(runtime::Paths{global.root, global.run_root, {}});
    if (auto c = container_named(rt, *disconnect_endpoint)) {
      reconciler::disconnect_container(rt, *disconnect_network, c->id);
      return;
    }
    net::NetworkManager(global.root).disconnect(*disconnect_network, *disconnect_endpoint);
  });
}

}  // namespace

BERTH_REGISTER_COMMANDS(400, register_network_commands, "network");

}  // namespace berth::cli
