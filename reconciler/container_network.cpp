#include "reconciler/container_network.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "net/net.h"

namespace berth::reconciler {

namespace {

[[noreturn]] void fail(const std::string& msg) { throw Error(msg, 0, 125); }

const runtime::Paths& paths_of(const runtime::Runtime& rt) { return rt.paths(); }

bool is_special(const std::string& n) { return n == "none" || n == "host" || n.rfind("container:", 0) == 0; }

std::string host_resolv_conf() {
  std::string text;
  read_file_if_exists("/etc/resolv.conf", text);
  return text;
}

std::vector<net::HostEntry> parse_extra_hosts(const std::vector<std::string>& specs) {
  std::vector<net::HostEntry> out;
  for (auto& s : specs) {
    try {
      out.push_back(net::parse_extra_host(s));
    } catch (const Error& e) {
      fail(std::string("invalid argument \"") + s + "\" for \"--add-host\" flag: " + e.what());
    }
  }
  return out;
}

// The netns a "container:X" request joins, and X's files.
ContainerNetwork join_container(const runtime::Runtime& rt, const std::string& ref, const ContainerNetworkRequest& req) {
  if (!req.publish.empty()) fail("conflicting options: port publishing and the container type network mode");
  if (!req.dns.empty() || !req.extra_hosts.empty())
    fail("conflicting options: dns and the network mode container:" + ref);
  runtime::Container other;
  try {
    other = rt.get(ref);
  } catch (const Error& e) {
    fail("cannot join network of container " + ref + ": " + e.what());
  }
  if (other.state.status != runtime::Status::Running && other.state.status != runtime::Status::Paused)
    fail("cannot join network of a non running container: " + other.spec.name);
  ContainerNetwork n;
  read_file_if_exists(other.dir + "/hosts", n.hosts_file);
  read_file_if_exists(other.dir + "/resolv.conf", n.resolv_conf);
  if (other.spec.network == runtime::NetworkMode::Host) {
    n.mode = runtime::NetworkMode::Host;
    return n;
  }
  n.mode = runtime::NetworkMode::Netns;
  n.netns_path = other.spec.network == runtime::NetworkMode::Netns
                     ? other.spec.netns_path
                     : "/proc/" + std::to_string(other.state.pid) + "/ns/net";
  return n;
}

void disconnect_all(net::NetworkManager& mgr, const std::string& netns_path) {
  std::string first_error;
  for (auto& n : mgr.list())
    for (auto& [id, e] : n.endpoints) {
      if (e.netns != netns_path) continue;
      try {
        mgr.disconnect(n.id, e.id);
      } catch (const Error& err) {
        if (first_error.empty()) first_error = err.what();
      }
    }
  if (!first_error.empty()) fail("cannot release the network of " + netns_path + ": " + first_error);
}

}  // namespace

std::string container_netns_path(const std::string& run_root, const std::string& container_id) {
  return run_root + "/netns/" + container_id;
}

ContainerNetwork setup_container_network(const runtime::Runtime& rt, const std::string& container_id,
                                         const std::string& container_name, const ContainerNetworkRequest& req) {
  std::vector<NetworkJoin> joins = req.networks;
  if (joins.empty()) joins.push_back({net::kDefaultNetworkName, {}, {}});
  auto extra = parse_extra_hosts(req.extra_hosts);
  for (auto& j : joins)
    if (is_special(j.network) && joins.size() > 1)
      fail("conflicting options: cannot attach both user-defined and non-user-defined network-modes");

  const std::string& mode = joins.front().network;
  if (mode == "none" || mode == "host") {
    ContainerNetwork n;
    n.mode = mode == "host" ? runtime::NetworkMode::Host : runtime::NetworkMode::None;
    if (!joins.front().aliases.empty() || joins.front().ipv4_address)
      fail("network-scoped aliases and --ip are only supported for user-defined networks");
    if (!req.publish.empty() && mode == "host")
      spdlog::warn("Published ports are discarded when using host network mode");
    if (mode == "none" && (!req.dns.empty() || !req.dns_search.empty() || !req.dns_opt.empty()))
      n.resolv_conf = net::container_resolv_conf(host_resolv_conf(), {false, req.dns, req.dns_search, req.dns_opt});
    if (mode == "none" && !extra.empty()) n.hosts_file = net::container_hosts_file({}, {}, extra);
    return n;
  }
  if (mode.rfind("container:", 0) == 0) return join_container(rt, mode.substr(10), req);

  // Bridge networks: check everything before changing anything.
  for (auto& spec : req.publish) {
    try {
      net::parse_port_spec(spec);
    } catch (const Error& e) {
      fail(e.what());
    }
  }
  net::NetworkManager mgr(paths_of(rt).root);
  release_stale_endpoints(rt);
  std::vector<std::string> ids;
  bool embedded_dns = false;
  for (auto& j : joins) {
    if (j.network == net::kDefaultNetworkName) {
      if (!j.aliases.empty()) fail("network-scoped alias is supported only for containers in user defined networks");
      if (j.ipv4_address) fail("user specified IP address is supported on user defined networks only");
      ids.push_back(mgr.ensure_default_network().id);
      continue;
    }
    auto found = mgr.store().find(j.network);
    if (!found) fail("network " + j.network + " not found");
    if (j.ipv4_address) {
      auto ip = net::Ipv4::parse(*j.ipv4_address, "--ip");
      if (!found->subnet.contains(ip))
        fail("invalid IP address " + *j.ipv4_address + ": not in the subnet " + found->subnet.to_string() +
             " of network " + found->name);
    }
    if (std::find(ids.begin(), ids.end(), found->id) != ids.end())
      fail("container cannot be connected to network " + found->name + " twice");
    ids.push_back(found->id);
    embedded_dns = true;
  }

  ContainerNetwork n;
  n.mode = runtime::NetworkMode::Netns;
  n.netns_path = container_netns_path(paths_of(rt).run_root, container_id);
  n.owns_netns = true;
  net::NetnsFile file(n.netns_path);
  try {
    for (size_t i = 0; i < joins.size(); ++i) {
      net::ConnectOptions o;
      o.netns = n.netns_path;
      o.name = container_name;
      o.hostname = req.hostname;  // explicit only: the default (id prefix) is no DNS name
      o.aliases = joins[i].aliases;
      o.ipv4_address = joins[i].ipv4_address;
      if (i == 0) o.publish = req.publish;
      o.dns = req.dns;
      if (joins[i].network == net::kDefaultNetworkName) o.hostname.clear();
      auto e = mgr.connect(ids[i], o);
      n.joined.push_back({mgr.inspect(ids[i]), e});
    }
  } catch (const Error& e) {
    for (auto& j : n.joined) {
      try {
        mgr.disconnect(j.network.id, j.endpoint.id);
      } catch (const Error& cleanup) {
        spdlog::warn("cleanup of endpoint {}: {}", j.endpoint.id.substr(0, 12), cleanup.what());
      }
    }
    fail(e.what());
  }
  std::string hostname = req.hostname.empty() ? container_id.substr(0, 12) : req.hostname;
  n.hosts_file = net::container_hosts_file({hostname}, {n.joined.front().endpoint.address}, extra);
  n.resolv_conf =
      net::container_resolv_conf(host_resolv_conf(), {embedded_dns, req.dns, req.dns_search, req.dns_opt});
  file.release();
  return n;
}

void apply_container_network(const ContainerNetwork& n, const std::string& container_id,
                             const ContainerNetworkRequest& req, runtime::ContainerSpec& spec) {
  spec.network = n.mode;
  spec.netns_path = n.netns_path;
  spec.remove_netns = n.owns_netns;
  spec.hosts_file = n.hosts_file;
  spec.resolv_conf = n.resolv_conf;
  if (n.mode == runtime::NetworkMode::Netns && spec.hostname.empty())
    spec.hostname = req.hostname.empty() ? container_id.substr(0, 12) : req.hostname;
}

void release_container_network(const runtime::Runtime& rt, const std::string& container_id) {
  std::string path = container_netns_path(paths_of(rt).run_root, container_id);
  net::NetworkManager mgr(paths_of(rt).root);
  // Endpoints first: a failure leaves the file, so a retry finds them again.
  if (path_exists(mgr.store().dir())) disconnect_all(mgr, path);
  try {
    net::delete_netns_file(path);
  } catch (const Error& e) {
    fail(e.what());
  }
}

void release_stale_endpoints(const runtime::Runtime& rt) {
  std::string dir = paths_of(rt).run_root + "/netns/";
  net::NetworkManager mgr(paths_of(rt).root);
  std::set<std::string> stale;
  for (auto& n : mgr.list())
    for (auto& [id, e] : n.endpoints)
      if (e.netns.rfind(dir, 0) == 0 && !path_exists(e.netns)) stale.insert(e.netns);
  for (auto& path : stale) {
    try {
      disconnect_all(mgr, path);
    } catch (const Error& e) {
      spdlog::warn("{}", e.what());
    }
  }
}

static runtime::Container own_netns_container(const runtime::Runtime& rt, const std::string& ref) {
  runtime::Container c = rt.get(ref);
  if (c.spec.network != runtime::NetworkMode::Netns || !c.spec.remove_netns)
    fail("container " + c.spec.name + " is not on a bridge network (its network mode is " +
         (c.spec.network == runtime::NetworkMode::Host ? "host" : c.spec.network == runtime::NetworkMode::None
                                                                      ? "none"
                                                                      : "container") +
         ")");
  return c;
}

net::EndpointRecord connect_container(const runtime::Runtime& rt, const std::string& ref, const NetworkJoin& join) {
  runtime::Container c = own_netns_container(rt, ref);
  if (is_special(join.network)) fail("container cannot be disconnected from host network or connected to " + join.network);
  net::NetworkManager mgr(paths_of(rt).root);
  std::string id = join.network == net::kDefaultNetworkName ? mgr.ensure_default_network().id : mgr.inspect(join.network).id;
  net::ConnectOptions o;
  o.netns = c.spec.netns_path;
  o.name = c.spec.name;
  o.aliases = join.aliases;
  o.ipv4_address = join.ipv4_address;
  for (auto& n : mgr.list())
    for (auto& [eid, e] : n.endpoints)
      if (e.netns == c.spec.netns_path && o.dns.empty()) o.dns = e.dns;
  return mgr.connect(id, o);
}

void disconnect_container(const runtime::Runtime& rt, const std::string& network, const std::string& ref) {
  runtime::Container c = own_netns_container(rt, ref);
  net::NetworkManager mgr(paths_of(rt).root);
  auto n = mgr.inspect(network);
  for (auto& [id, e] : n.endpoints)
    if (e.netns == c.spec.netns_path) return mgr.disconnect(n.id, id);
  fail("container " + c.spec.name + " is not connected to network " + n.name);
}

std::vector<JoinedNetwork> container_endpoints(const runtime::Runtime& rt, const runtime::Container& c) {
  if (c.spec.network != runtime::NetworkMode::Netns || !c.spec.remove_netns) return {};
  net::NetworkManager mgr(paths_of(rt).root);
  if (!path_exists(mgr.store().dir())) return {};
  return container_endpoints(mgr.list(), c);
}

std::vector<JoinedNetwork> container_endpoints(const std::vector<net::NetworkRecord>& networks,
                                               const runtime::Container& c) {
  std::vector<JoinedNetwork> out;
  if (c.spec.network != runtime::NetworkMode::Netns || !c.spec.remove_netns) return out;
  for (auto& n : networks)
    for (auto& [id, e] : n.endpoints)
      if (e.netns == c.spec.netns_path) out.push_back({n, e});
  return out;
}

}  // namespace berth::reconciler
