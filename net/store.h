// What berth remembers about its networks, under <root>/network/: one JSON
// file per network (networks/<id>.json), each replaced atomically, holding
// the network's settings and its endpoints with their IPAM allocations.
// Every read-modify-write happens under NetworkStore::Lock (an flock on
// <root>/network/lock), so concurrent berth processes never hand out the
// same subnet, name or address.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/fs.h"
#include "net/address.h"

namespace berth::net {

struct BoundPort {
  std::string host_ip;  // empty: all host addresses
  uint16_t host_port = 0;
  uint16_t container_port = 0;
  std::string protocol = "tcp";
  bool operator==(const BoundPort&) const = default;
};

struct EndpointRecord {
  std::string id;             // 64 hex
  std::string name;           // container name (DNS name)
  std::string hostname;       // DNS name too, when set
  std::vector<std::string> aliases;  // network aliases / service name
  Ipv4 address;
  std::string mac;            // "02:42:..."
  std::string ifname;         // inside the netns: eth0, eth1, ...
  std::string host_veth;      // veth<7 hex>, on the bridge
  std::string netns;          // path the endpoint was connected through
  // The container's `dns:` servers ("ip[:port]"): the embedded DNS
  // server's upstreams for queries from this netns (empty = the host's).
  std::vector<std::string> dns;
  std::vector<BoundPort> ports;
};

struct NetworkRecord {
  std::string id;  // 64 hex
  std::string name;
  std::string driver = "bridge";
  std::string created;  // RFC 3339
  bool internal = false;
  std::map<std::string, std::string> labels;
  Subnet subnet;
  Ipv4 gateway;
  std::string bridge;  // br-<12 hex> or berth0
  int mtu = 1500;
  std::optional<Ipv4> last_allocated;
  std::map<std::string, EndpointRecord> endpoints;  // by endpoint id

  std::string short_id() const { return id.substr(0, 12); }
};

class NetworkStore {
 public:
  // `root` is berth's --root; the store lives in <root>/network.
  explicit NetworkStore(const std::string& root);

  // Exclusive for the whole store: held across read-decide-write sequences.
  class Lock {
   public:
    explicit Lock(UniqueFd fd) : fd_(std::move(fd)) {}
   private:
    UniqueFd fd_;  // the flock is released when the fd closes
  };
  Lock lock() const;

  std::vector<NetworkRecord> list() const;
  // By exact name, full id, or unique id prefix (docker's rules: a name wins).
  std::optional<NetworkRecord> find(std::string_view name_or_id) const;
  NetworkRecord get(std::string_view name_or_id) const;  // throws "network X not found"
  void save(const NetworkRecord& record) const;
  void remove(const std::string& id) const;

  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
  std::string networks_dir_;
};

// JSON form used on disk (and by tests); round-trips every field.
std::string to_json_text(const NetworkRecord& record);
NetworkRecord network_from_json_text(const std::string& text, const std::string& origin);

// 64 random hex digits, as docker's ids.
std::string random_hex_id(size_t hex_digits = 64);

}  // namespace berth::net
