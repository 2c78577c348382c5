#include "net/network.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <time.h>

#include <cctype>
#include <set>

#include "base/error.h"
#include "base/time.h"
#include "base/log.h"
#include "net/dns.h"
#include "net/firewall.h"
#include "net/ipam.h"
#include "net/netlink.h"
#include "net/ports.h"

namespace berth::net {

namespace {

std::string now_rfc3339() { return now_rfc3339_nano(); }

FirewallNetwork firewall_view(const NetworkRecord& r) { return {r.id, r.bridge, r.subnet, r.internal}; }

// Docker's scheme: 02:42 followed by the IPv4 address, so a MAC never
// collides on a bridge while addresses do not.
std::string mac_for(Ipv4 ip) {
  char buf[18];
  std::snprintf(buf, sizeof buf, "02:42:%02x:%02x:%02x:%02x", ip.value >> 24, (ip.value >> 16) & 255,
                (ip.value >> 8) & 255, ip.value & 255);
  return buf;
}

// True when nothing on the host holds (ip, port, protocol): berth's DNAT
// would silently shadow a listener, so a busy port is refused up front.
bool host_port_free(const std::string& host_ip, uint16_t port, const std::string& protocol) {
  UniqueFd fd(::socket(AF_INET, (protocol == "udp" ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("socket");
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = host_ip.empty() ? htonl(INADDR_ANY) : Ipv4::parse(host_ip).network_order();
  return ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0;
}

bool ips_collide(const std::string& a, const std::string& b) {
  auto any = [](const std::string& ip) { return ip.empty() || ip == "0.0.0.0"; };
  return any(a) || any(b) || a == b;
}

// Resolves "-p" specs to concrete host ports, refusing ports that another
// berth endpoint publishes or that a host process has bound.
std::vector<BoundPort> bind_ports(const std::vector<std::string>& specs, const std::vector<NetworkRecord>& networks) {
  std::vector<BoundPort> taken;
  for (auto& n : networks)
    for (auto& [id, e] : n.endpoints) taken.insert(taken.end(), e.ports.begin(), e.ports.end());
  auto in_use = [&](const std::string& ip, uint16_t port, const std::string& proto) {
    for (auto& t : taken)
      if (t.host_port == port && t.protocol == proto && ips_collide(t.host_ip, ip)) return true;
    return !host_port_free(ip, port, proto);
  };
  std::vector<BoundPort> out;
  for (auto& spec : specs) {
    for (auto& m : parse_port_spec(spec)) {
      BoundPort bound{m.host_ip == "0.0.0.0" ? "" : m.host_ip, 0, m.container_port, m.protocol};
      if (m.host_port_first != 0) {
        for (uint32_t p = m.host_port_first; p <= m.host_port_last && !bound.host_port; ++p)
          if (!in_use(bound.host_ip, static_cast<uint16_t>(p), m.protocol)) bound.host_port = static_cast<uint16_t>(p);
        if (!bound.host_port) {
          std::string where = (bound.host_ip.empty() ? "0.0.0.0" : bound.host_ip) + ":" +
                              std::to_string(m.host_port_first) +
                              (m.host_port_last != m.host_port_first ? "-" + std::to_string(m.host_port_last) : "");
          throw Error("Bind for " + where + " failed: port is already allocated");
        }
      } else {
        // A random port from the kernel's ephemeral range, as docker does.
        std::string range = read_sysctl("net.ipv4.ip_local_port_range");
        unsigned low = 32768, high = 60999;
        std::sscanf(range.c_str(), "%u %u", &low, &high);
        unsigned span = high - low + 1;
        unsigned start = static_cast<unsigned>(std::stoul(random_hex_id(8), nullptr, 16)) % span;
        for (unsigned i = 0; i < span && !bound.host_port; ++i) {
          auto p = static_cast<uint16_t>(low + (start + i) % span);
          if (!in_use(bound.host_ip, p, m.protocol)) bound.host_port = p;
        }
        if (!bound.host_port) throw Error("no free host port for " + spec);
      }
      taken.push_back(bound);
      out.push_back(bound);
    }
  }
  return out;
}

// Host-wide: berth processes with different --root share the host's
// routes and link names, so choosing a subnet or a bridge name and creating
// the bridge happen under one flock for the whole host. The lock file lives
// in /run (tmpfs, gone at reboot with the bridges it protected).
class HostNetLock {
 public:
  HostNetLock() {
    const char* path = "/run/berth-net.lock";
    fd_ = UniqueFd(::open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd_) throw_errno(std::string("cannot open ") + path);
    while (::flock(fd_.get(), LOCK_EX) != 0)
      if (errno != EINTR) throw_errno(std::string("cannot lock ") + path);
  }

 private:
  UniqueFd fd_;
};

std::string choose_ifname(RouteSocket& inside) {
  auto names = inside.link_names();
  std::set<std::string> existing(names.begin(), names.end());
  for (int i = 0;; ++i)
    if (!existing.count("eth" + std::to_string(i))) return "eth" + std::to_string(i);
}

}  // namespace

bool valid_network_name(const std::string& name) {
  if (name.empty() || !std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') return false;
  return true;
}

NetworkRecord NetworkManager::create(const CreateNetworkOptions& options) {
  auto lock = store_.lock();
  return create_locked(options, false);
}

NetworkRecord NetworkManager::ensure_default_network() {
  auto lock = store_.lock();
  if (auto existing = store_.find(kDefaultNetworkName)) return *existing;
  CreateNetworkOptions options;
  options.name = kDefaultNetworkName;
  return create_locked(options, true);
}

NetworkRecord NetworkManager::create_locked(const CreateNetworkOptions& options, bool default_network) {
  if (!valid_network_name(options.name))
    throw Error("invalid network name \"" + options.name + "\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
  if (options.driver != "bridge")
    throw Error("network driver \"" + options.driver + "\" is not supported (berth has: bridge)");
  if (options.mtu < 68 || options.mtu > 65535) throw Error("invalid MTU " + std::to_string(options.mtu));
  auto existing = store_.list();
  for (auto& n : existing)
    if (n.name == options.name) throw Error("network with name " + options.name + " already exists");
  HostNetLock host_lock;

  NetworkRecord r;
  r.id = random_hex_id();
  r.name = options.name;
  r.driver = options.driver;
  r.created = now_rfc3339();
  r.internal = options.internal;
  r.labels = options.labels;
  r.mtu = options.mtu;
  r.bridge = default_network ? kDefaultBridgeName : "br-" + r.short_id();

  auto host = RouteSocket::in_current_netns();
  // Another --root's default network may hold berth0: take the next free one.
  for (int i = 1; default_network && host.link_exists(r.bridge); ++i) r.bridge = "berth" + std::to_string(i);
  if (options.subnet) {
    r.subnet = Subnet::parse(*options.subnet);
    for (auto& n : existing)
      if (n.subnet.overlaps(r.subnet))
        throw Error("invalid pool request: Pool overlaps with other one on this address space (" +
                    r.subnet.to_string() + " overlaps network " + n.name + " " + n.subnet.to_string() + ")");
  } else {
    if (options.gateway) throw Error("a gateway needs a subnet (--subnet)");
    std::vector<Subnet> in_use = host.ipv4_routes();
    for (auto& n : existing) in_use.push_back(n.subnet);
    // 172.17.0.0/16 is kept for the default `bridge` network, as docker
    // keeps it for docker0; user networks start at 172.18.0.0/16.
    auto pool = default_subnet_pool();
    if (!default_network) pool.erase(pool.begin());
    r.subnet = choose_subnet(pool, in_use);
  }
  r.gateway = choose_gateway(r.subnet, options.gateway ? std::optional(Ipv4::parse(*options.gateway, "gateway"))
                                                       : std::nullopt);
  if (host.link_exists(r.bridge)) throw Error("cannot create network " + r.name + ": link " + r.bridge + " exists");

  store_.save(r);
  Firewall firewall;
  try {
    host.create_bridge(r.bridge, r.mtu);
    host.add_address(r.bridge, r.gateway, r.subnet.prefix);
    host.set_up(r.bridge);
    // 127.0.0.1-published ports are DNATed out this bridge; without
    // route_localnet the kernel drops loopback-sourced packets there.
    write_sysctl("net.ipv4.conf." + r.bridge + ".route_localnet", "1");
    firewall.add_network(firewall_view(r));
  } catch (...) {
    try {
      firewall.remove_network(firewall_view(r));
    } catch (const std::exception& e) {
      spdlog::warn("cleanup of network {}: {}", r.name, e.what());
    }
    try {
      host.delete_link(r.bridge);
    } catch (const std::exception& e) {
      spdlog::warn("cleanup of network {}: {}", r.name, e.what());
    }
    store_.remove(r.id);
    throw;
  }
  return r;
}

void NetworkManager::remove(const std::string& name_or_id) {
  auto lock = store_.lock();
  auto r = store_.get(name_or_id);
  if (!r.endpoints.empty())
    throw Error("error while removing network: network " + r.name + " id " + r.id + " has active endpoints");
  Firewall().remove_network(firewall_view(r));
  RouteSocket::in_current_netns().delete_link(r.bridge);
  store_.remove(r.id);
}

std::vector<std::string> NetworkManager::prune(const std::vector<std::string>& label_filters) {
  std::vector<std::string> removed;
  for (auto& r : store_.list()) {
    bool match = true;
    for (auto& f : label_filters) {
      auto eq = f.find('=');
      auto it = r.labels.find(f.substr(0, eq));
      if (it == r.labels.end() || (eq != std::string::npos && it->second != f.substr(eq + 1))) match = false;
    }
    if (!match || !r.endpoints.empty()) continue;
    try {
      remove(r.id);
      removed.push_back(r.name);
    } catch (const Error& e) {
      // Another process attached an endpoint meanwhile: not prunable now.
      spdlog::debug("prune {}: {}", r.name, e.what());
    }
  }
  return removed;
}

EndpointRecord NetworkManager::connect(const std::string& network, const ConnectOptions& options) {
  auto lock = store_.lock();
  auto r = store_.get(network);
  UniqueFd netns = open_netns(options.netns);
  for (auto& [id, e] : r.endpoints) {
    if (!options.name.empty() && e.name == options.name)
      throw Error("endpoint with name " + options.name + " already exists in network " + r.name);
    if (e.netns == options.netns)
      throw Error("network namespace " + options.netns + " is already connected to network " + r.name);
  }

  std::set<Ipv4> taken;
  for (auto& [id, e] : r.endpoints) taken.insert(e.address);
  AddressAllocator allocator(r.subnet, r.gateway, taken, r.last_allocated);

  EndpointRecord e;
  e.id = random_hex_id();
  e.name = options.name;
  e.hostname = options.hostname;
  e.aliases = options.aliases;
  e.netns = options.netns;
  e.dns = options.dns;
  if (options.ipv4_address) {
    e.address = allocator.reserve(Ipv4::parse(*options.ipv4_address));
  } else {
    e.address = allocator.allocate();
    r.last_allocated = e.address;
  }
  e.ports = bind_ports(options.publish, store_.list());
  e.mac = mac_for(e.address);
  e.host_veth = "veth" + random_hex_id(7);
  auto inside = RouteSocket::in_netns(netns.get());
  e.ifname = choose_ifname(inside);

  r.endpoints[e.id] = e;
  store_.save(r);
  auto host = RouteSocket::in_current_netns();
  Firewall firewall;
  try {
    host.create_veth(e.host_veth, e.ifname, netns.get(), r.mtu, e.mac);
    host.set_master(e.host_veth, r.bridge);
    host.set_up(e.host_veth);
    inside.set_up("lo");
    inside.add_address(e.ifname, e.address, r.subnet.prefix);
    inside.set_up(e.ifname);
    // The first non-internal network gives the default route; later ones
    // add only their subnet (docker keeps the existing gateway too).
    if (!r.internal && !inside.has_default_route()) inside.add_default_route(r.gateway, e.ifname);
    firewall.add_ports(firewall_view(r), e.id, e.address, e.ports);
  } catch (...) {
    try {
      firewall.remove_ports(firewall_view(r), e.id);
      host.delete_link(e.host_veth);
    } catch (const std::exception& cleanup) {
      spdlog::warn("cleanup of endpoint {}: {}", e.id.substr(0, 12), cleanup.what());
    }
    r.endpoints.erase(e.id);
    store_.save(r);
    throw;
  }
  return e;
}

namespace {

// The netns file of an endpoint whose container is gone (an absolute path
// no longer there; a netns named otherwise is never judged gone).
bool netns_gone(const EndpointRecord& e) { return !e.netns.empty() && e.netns[0] == '/' && !path_exists(e.netns); }

}  // namespace

void NetworkManager::disconnect(const std::string& network, const std::string& endpoint) {
  auto lock = store_.lock();
  auto r = store_.get(network);
  const EndpointRecord* found = nullptr;
  for (auto& [id, e] : r.endpoints)
    if (id == endpoint || (!e.name.empty() && e.name == endpoint)) found = &e;
  if (!found)
    for (auto& [id, e] : r.endpoints)
      if (endpoint.size() >= 4 && id.starts_with(endpoint)) {
        if (found) throw Error("endpoint \"" + endpoint + "\" is ambiguous in network " + r.name);
        found = &e;
      }
  if (!found) throw Error("endpoint " + endpoint + " is not connected to network " + r.name);
  EndpointRecord e = *found;
  Firewall().remove_ports(firewall_view(r), e.id);
  // Deleting the host end deletes the pair; a netns already gone took its end along.
  RouteSocket::in_current_netns().delete_link(e.host_veth);
  r.endpoints.erase(e.id);
  store_.save(r);
  // A netns file already deleted (its container is gone) has nothing to restore.
  if (!r.internal && !netns_gone(e)) restore_default_route(e.netns);
}

void NetworkManager::restore_default_route(const std::string& netns_path) {
  // The netns may have lost its default route with the veth: like docker,
  // fall back to the gateway of another (non-internal) network it is on.
  for (auto& other : store_.list()) {
    if (other.internal) continue;
    for (auto& [id, e] : other.endpoints) {
      if (e.netns != netns_path) continue;
      try {
        UniqueFd netns = open_netns(netns_path);
        auto inside = RouteSocket::in_netns(netns.get());
        if (!inside.has_default_route()) inside.add_default_route(other.gateway, e.ifname);
      } catch (const Error& err) {
        spdlog::warn("cannot restore the default route of {}: {}", netns_path, err.what());
      }
      return;
    }
  }
}

NetworkManager::ReconcileReport NetworkManager::reconcile() {
  auto lock = store_.lock();
  ReconcileReport report;
  auto host = RouteSocket::in_current_netns();
  Firewall firewall;
  for (auto r : store_.list()) {
    // An endpoint is dead once its veth or its netns file is gone. The
    // kernel removes a dead netns's veth pair a moment after the netns (in
    // a work queue): its host end may still be there, or vanish while the
    // endpoint is being re-attached below.
    auto release = [&](const std::string& id) {
      firewall.remove_ports(firewall_view(r), id);
      host.delete_link(r.endpoints.at(id).host_veth);
      report.released_endpoints.push_back(id);
      r.endpoints.erase(id);
      store_.save(r);
    };
    std::vector<std::string> dead;
    for (auto& [id, e] : r.endpoints)
      if (netns_gone(e) || !host.link_exists(e.host_veth)) dead.push_back(id);
    for (auto& id : dead) release(id);

    bool repaired = false;
    if (!host.link_exists(r.bridge)) {
      host.create_bridge(r.bridge, r.mtu);
      host.add_address(r.bridge, r.gateway, r.subnet.prefix);
      repaired = true;
    }
    host.set_up(r.bridge);
    write_sysctl("net.ipv4.conf." + r.bridge + ".route_localnet", "1");
    dead.clear();
    for (auto& [id, e] : r.endpoints) {
      // A recreated bridge has no ports: the surviving veths join it again.
      try {
        host.set_master(e.host_veth, r.bridge);
        host.set_up(e.host_veth);
      } catch (const Error&) {
        if (host.link_exists(e.host_veth)) throw;
        dead.push_back(id);  // died meanwhile
      }
    }
    for (auto& id : dead) release(id);
    if (repaired || !firewall.network_installed(firewall_view(r))) {
      firewall.add_network(firewall_view(r));  // replaces the table, so every port rule is re-added
      for (auto& [id, e] : r.endpoints) firewall.add_ports(firewall_view(r), e.id, e.address, e.ports);
      repaired = true;
    }
    if (repaired) report.repaired_networks.push_back(r.name);
  }
  return report;
}

void sync_names(NameTable& names, const std::vector<NetworkRecord>& networks) {
  NameTable fresh;
  register_names(fresh, networks);
  names.replace_with(fresh);
}

void register_names(NameTable& names, const std::vector<NetworkRecord>& networks) {
  for (auto& n : networks)
    for (auto& [id, e] : n.endpoints) {
      names.add(n.id, e.name, e.address);
      if (!e.hostname.empty()) names.add(n.id, e.hostname, e.address);
      for (auto& alias : e.aliases) names.add(n.id, alias, e.address);
    }
}

}  // namespace berth::net
