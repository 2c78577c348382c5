#include "net/netlink.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/rtnetlink.h>
#include <netlink/netlink.h>
#include <netlink/route/addr.h>
#include <netlink/route/link.h>
#include <netlink/route/link/bridge.h>
#include <netlink/route/link/veth.h>
#include <netlink/route/route.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <exception>
#include <thread>

#include "base/error.h"

namespace berth::net {

namespace {

[[noreturn]] void throw_nl(const std::string& what, int err) {
  throw Error(what + ": " + nl_geterror(err < 0 ? -err : err));
}

template <typename T, void (*Free)(T*)>
struct NlFree {
  void operator()(T* p) const { Free(p); }
};
using LinkPtr = std::unique_ptr<rtnl_link, NlFree<rtnl_link, rtnl_link_put>>;
using AddrPtr = std::unique_ptr<rtnl_addr, NlFree<rtnl_addr, rtnl_addr_put>>;
using RoutePtr = std::unique_ptr<rtnl_route, NlFree<rtnl_route, rtnl_route_put>>;
using NlAddrPtr = std::unique_ptr<nl_addr, NlFree<nl_addr, nl_addr_put>>;
using CachePtr = std::unique_ptr<nl_cache, NlFree<nl_cache, nl_cache_free>>;

NlAddrPtr make_nl_addr(Ipv4 ip, int prefix) {
  uint32_t be = ip.network_order();
  NlAddrPtr addr(nl_addr_build(AF_INET, &be, sizeof be));
  if (!addr) throw Error("out of memory building a netlink address");
  nl_addr_set_prefixlen(addr.get(), prefix);
  return addr;
}

std::unique_ptr<nl_sock, void (*)(nl_sock*)> connect_route_socket() {
  std::unique_ptr<nl_sock, void (*)(nl_sock*)> sock(nl_socket_alloc(), nl_socket_free);
  if (!sock) throw Error("cannot allocate a netlink socket");
  if (int err = nl_connect(sock.get(), NETLINK_ROUTE); err < 0) throw_nl("cannot open a netlink route socket", err);
  return sock;
}

}  // namespace

void RouteSocket::Deleter::operator()(nl_sock* sock) const { nl_socket_free(sock); }
RouteSocket::~RouteSocket() = default;

UniqueFd open_netns(const std::string& path_or_pid) {
  std::string path = path_or_pid;
  if (!path.empty() && std::all_of(path.begin(), path.end(), [](unsigned char c) { return std::isdigit(c); }))
    path = "/proc/" + path + "/ns/net";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("cannot open network namespace " + path);
  return fd;
}

RouteSocket RouteSocket::in_current_netns() {
  auto sock = connect_route_socket();
  return RouteSocket(std::unique_ptr<nl_sock, Deleter>(sock.release()));
}

RouteSocket RouteSocket::in_netns(int netns_fd) {
  nl_sock* result = nullptr;
  std::exception_ptr failure;
  // setns() changes only the calling thread, and the socket keeps the
  // namespace it was created in after the thread is gone.
  std::thread helper([&] {
    try {
      if (::setns(netns_fd, CLONE_NEWNET) != 0) throw_errno("cannot enter network namespace");
      result = connect_route_socket().release();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  helper.join();
  if (failure) std::rethrow_exception(failure);
  return RouteSocket(std::unique_ptr<nl_sock, Deleter>(result));
}

int RouteSocket::link_index(const std::string& name) {
  rtnl_link* raw = nullptr;
  int err = rtnl_link_get_kernel(sock_.get(), 0, name.c_str(), &raw);
  LinkPtr link(raw);
  if (err == -NLE_OBJ_NOTFOUND || err == -NLE_NODEV) return 0;
  if (err < 0) throw_nl("cannot look up link " + name, err);
  return rtnl_link_get_ifindex(link.get());
}

std::vector<std::string> RouteSocket::link_names() {
  nl_cache* raw = nullptr;
  if (int err = rtnl_link_alloc_cache(sock_.get(), AF_UNSPEC, &raw); err < 0) throw_nl("cannot list links", err);
  CachePtr cache(raw);
  std::vector<std::string> names;
  for (nl_object* obj = nl_cache_get_first(cache.get()); obj; obj = nl_cache_get_next(obj))
    names.emplace_back(rtnl_link_get_name(reinterpret_cast<rtnl_link*>(obj)));
  return names;
}

void RouteSocket::create_bridge(const std::string& name, int mtu) {
  LinkPtr link(rtnl_link_alloc());
  if (!link) throw Error("out of memory");
  if (int err = rtnl_link_set_type(link.get(), "bridge"); err < 0) throw_nl("bridge link type", err);
  rtnl_link_set_name(link.get(), name.c_str());
  if (mtu > 0) rtnl_link_set_mtu(link.get(), static_cast<unsigned>(mtu));
  if (int err = rtnl_link_add(sock_.get(), link.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0)
    throw_nl("cannot create bridge " + name, err);
}

void RouteSocket::delete_link(const std::string& name) {
  LinkPtr link(rtnl_link_alloc());
  if (!link) throw Error("out of memory");
  rtnl_link_set_name(link.get(), name.c_str());
  int err = rtnl_link_delete(sock_.get(), link.get());
  if (err < 0 && err != -NLE_OBJ_NOTFOUND && err != -NLE_NODEV) throw_nl("cannot delete link " + name, err);
}

void RouteSocket::set_up(const std::string& name) {
  int index = link_index(name);
  if (!index) throw Error("link " + name + " not found");
  LinkPtr change(rtnl_link_alloc());
  LinkPtr orig(rtnl_link_alloc());
  rtnl_link_set_ifindex(orig.get(), index);
  rtnl_link_set_flags(change.get(), IFF_UP);
  if (int err = rtnl_link_change(sock_.get(), orig.get(), change.get(), 0); err < 0)
    throw_nl("cannot bring up " + name, err);
}

void RouteSocket::set_master(const std::string& name, const std::string& master) {
  int master_index = link_index(master);
  int index = link_index(name);
  if (!master_index || !index) throw Error("cannot attach " + name + " to " + master + ": link not found");
  if (int err = rtnl_link_enslave_ifindex(sock_.get(), master_index, index); err < 0)
    throw_nl("cannot attach " + name + " to " + master, err);
}

void RouteSocket::add_address(const std::string& link, Ipv4 address, int prefix) {
  int index = link_index(link);
  if (!index) throw Error("link " + link + " not found");
  AddrPtr addr(rtnl_addr_alloc());
  rtnl_addr_set_ifindex(addr.get(), index);
  rtnl_addr_set_family(addr.get(), AF_INET);
  auto local = make_nl_addr(address, prefix);
  if (int err = rtnl_addr_set_local(addr.get(), local.get()); err < 0) throw_nl("address", err);
  Subnet subnet{Ipv4{address.value & Subnet{Ipv4{0}, prefix}.mask()}, prefix};
  auto broadcast = make_nl_addr(subnet.broadcast(), prefix);
  if (prefix < 31) rtnl_addr_set_broadcast(addr.get(), broadcast.get());
  if (int err = rtnl_addr_add(sock_.get(), addr.get(), 0); err < 0)
    throw_nl("cannot add address " + address.to_string() + "/" + std::to_string(prefix) + " to " + link, err);
}

void RouteSocket::create_veth(const std::string& host_name, const std::string& peer_name, int peer_netns_fd,
                              int mtu, const std::string& peer_mac) {
  LinkPtr host(rtnl_link_veth_alloc());
  if (!host) throw Error("out of memory");
  rtnl_link* peer = rtnl_link_veth_get_peer(host.get());  // owned by host
  LinkPtr peer_ref(peer);                                  // get_peer took a reference
  rtnl_link_set_name(host.get(), host_name.c_str());
  rtnl_link_set_name(peer, peer_name.c_str());
  rtnl_link_set_ns_fd(peer, peer_netns_fd);
  if (mtu > 0) {
    rtnl_link_set_mtu(host.get(), static_cast<unsigned>(mtu));
    rtnl_link_set_mtu(peer, static_cast<unsigned>(mtu));
  }
  if (!peer_mac.empty()) {
    nl_addr* raw = nullptr;
    if (int err = nl_addr_parse(peer_mac.c_str(), AF_LLC, &raw); err < 0) throw_nl("MAC address " + peer_mac, err);
    NlAddrPtr mac(raw);
    rtnl_link_set_addr(peer, mac.get());
  }
  if (int err = rtnl_link_add(sock_.get(), host.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0)
    throw_nl("cannot create veth pair " + host_name + "/" + peer_name, err);
}

bool RouteSocket::has_default_route() {
  nl_cache* raw = nullptr;
  if (int err = rtnl_route_alloc_cache(sock_.get(), AF_INET, 0, &raw); err < 0) throw_nl("cannot list routes", err);
  CachePtr cache(raw);
  for (nl_object* obj = nl_cache_get_first(cache.get()); obj; obj = nl_cache_get_next(obj)) {
    auto* route = reinterpret_cast<rtnl_route*>(obj);
    if (rtnl_route_get_table(route) == RT_TABLE_MAIN && nl_addr_get_prefixlen(rtnl_route_get_dst(route)) == 0)
      return true;
  }
  return false;
}

void RouteSocket::add_default_route(Ipv4 gateway, const std::string& link) {
  int index = link_index(link);
  if (!index) throw Error("link " + link + " not found");
  RoutePtr route(rtnl_route_alloc());
  rtnl_route_set_family(route.get(), AF_INET);
  rtnl_route_set_table(route.get(), RT_TABLE_MAIN);
  rtnl_route_set_scope(route.get(), RT_SCOPE_UNIVERSE);
  rtnl_route_set_protocol(route.get(), RTPROT_BOOT);
  rtnl_route_set_type(route.get(), RTN_UNICAST);
  auto dst = make_nl_addr(Ipv4{0}, 0);
  rtnl_route_set_dst(route.get(), dst.get());
  rtnl_nexthop* hop = rtnl_route_nh_alloc();
  auto via = make_nl_addr(gateway, 32);
  rtnl_route_nh_set_gateway(hop, via.get());
  rtnl_route_nh_set_ifindex(hop, index);
  rtnl_route_add_nexthop(route.get(), hop);  // the route owns the hop now
  if (int err = rtnl_route_add(sock_.get(), route.get(), NLM_F_CREATE | NLM_F_EXCL); err < 0)
    throw_nl("cannot add default route via " + gateway.to_string(), err);
}

std::vector<Subnet> RouteSocket::ipv4_routes() {
  nl_cache* raw = nullptr;
  if (int err = rtnl_route_alloc_cache(sock_.get(), AF_INET, 0, &raw); err < 0) throw_nl("cannot list routes", err);
  CachePtr cache(raw);
  std::vector<Subnet> out;
  for (nl_object* obj = nl_cache_get_first(cache.get()); obj; obj = nl_cache_get_next(obj)) {
    auto* route = reinterpret_cast<rtnl_route*>(obj);
    if (rtnl_route_get_table(route) != RT_TABLE_MAIN) continue;
    nl_addr* dst = rtnl_route_get_dst(route);
    int prefix = static_cast<int>(nl_addr_get_prefixlen(dst));
    if (prefix == 0 || nl_addr_get_len(dst) != 4) continue;
    uint32_t be = 0;
    std::memcpy(&be, nl_addr_get_binary_addr(dst), 4);
    Subnet s{Ipv4::from_network_order(be), prefix};
    s.base.value &= s.mask();
    out.push_back(s);
  }
  return out;
}

static std::string sysctl_path(std::string key) {
  std::replace(key.begin(), key.end(), '.', '/');
  return "/proc/sys/" + key;
}

std::string read_sysctl(const std::string& key) {
  std::string value = read_file(sysctl_path(key));
  while (!value.empty() && (value.back() == '\n' || value.back() == ' ')) value.pop_back();
  return value;
}

std::string write_sysctl(const std::string& key, const std::string& value) {
  std::string previous = read_sysctl(key);
  std::string path = sysctl_path(key);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throw_errno("cannot open " + path);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    throw_errno("cannot write " + path);
  return previous;
}

}  // namespace berth::net
