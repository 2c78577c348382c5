// Links, addresses and routes through libnl-route-3 (netlink only: berth
// never runs `ip` or `brctl`). Works on any network namespace: a socket
// opened "in" a netns stays bound to it, so callers open one per namespace.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/fs.h"
#include "net/address.h"

struct nl_sock;

namespace berth::net {

// Opens a network namespace: "/proc/<pid>/ns/net", "/run/netns/NAME", or a
// bare pid ("1234"). Throws when it cannot be opened.
UniqueFd open_netns(const std::string& path_or_pid);

class RouteSocket {
 public:
  // A NETLINK_ROUTE socket in the caller's current namespace.
  static RouteSocket in_current_netns();
  // A NETLINK_ROUTE socket inside `netns_fd`: created on a helper thread that
  // setns()es there, so the calling thread never changes namespace.
  static RouteSocket in_netns(int netns_fd);

  RouteSocket(RouteSocket&&) noexcept = default;
  RouteSocket& operator=(RouteSocket&&) noexcept = default;
  ~RouteSocket();

  // 0 when there is no such link.
  int link_index(const std::string& name);
  bool link_exists(const std::string& name) { return link_index(name) != 0; }
  std::vector<std::string> link_names();

  void create_bridge(const std::string& name, int mtu);
  // Deletes a link (both ends, for a veth); missing links are not an error,
  // so cleanup can be retried.
  void delete_link(const std::string& name);
  void set_up(const std::string& name);
  void set_master(const std::string& name, const std::string& master);
  void add_address(const std::string& link, Ipv4 address, int prefix);
  // A veth pair: `host_name` here, `peer_name` created directly inside
  // `peer_netns_fd` (so the name is checked there and nothing is ever
  // visible under a temporary name), with the MTU and MAC given.
  void create_veth(const std::string& host_name, const std::string& peer_name, int peer_netns_fd, int mtu,
                   const std::string& peer_mac);
  bool has_default_route();
  void add_default_route(Ipv4 gateway, const std::string& link);
  // IPv4 destinations of the main routing table, the default route excluded:
  // what a new subnet must not overlap.
  std::vector<Subnet> ipv4_routes();

 private:
  struct Deleter {
    void operator()(nl_sock* sock) const;
  };
  explicit RouteSocket(std::unique_ptr<nl_sock, Deleter> sock) : sock_(std::move(sock)) {}
  std::unique_ptr<nl_sock, Deleter> sock_;
};

// Writes a sysctl under /proc/sys (path relative, dots or slashes); returns
// the previous value.
std::string write_sysctl(const std::string& key, const std::string& value);
std::string read_sysctl(const std::string& key);

}  // namespace berth::net
