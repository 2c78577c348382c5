// NAT, published ports and isolation through libnftables, only ever in
// berth's own tables:
//
//   table ip berth            shared by all berth networks on the host:
//                             the set of berth bridges and the isolation
//                             rule (no traffic between two berth bridges)
//   table ip berth-<net12>    one per network: masquerade, forward policy
//                             and the DNAT rules of its endpoints' ports
//
// A network's rules go away with `delete table`, so removal is exact; an
// endpoint's DNAT rules carry the comment "endpoint:<id>" and are deleted by
// handle. Nothing here lists, flushes or touches another table, so docker's
// and the distribution's rules are left alone. Every change is one nft
// transaction, serialised host-wide by an flock.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "net/address.h"
#include "net/store.h"

struct nft_ctx;

namespace berth::net {

// One libnftables context with buffered output and errors.
class Nft {
 public:
  Nft();
  ~Nft();
  Nft(const Nft&) = delete;
  Nft& operator=(const Nft&) = delete;
  // Runs nft commands as one transaction; returns nft's output; throws
  // berth::Error carrying nft's own error text.
  std::string run(const std::string& commands, bool json_with_handles = false);
  // Like run, but returns false (and no output) when nft reports an error.
  bool try_run(const std::string& commands, std::string* output = nullptr, bool json_with_handles = false);

 private:
  int execute(const std::string& commands, bool json_with_handles, std::string& out, std::string& err);
  nft_ctx* ctx_;
};

struct FirewallNetwork {
  std::string id;
  std::string bridge;
  Subnet subnet;
  bool internal = false;
};

std::string network_table_name(const std::string& network_id);

class Firewall {
 public:
  // Installs a network's table and registers its bridge for isolation; turns
  // on net.ipv4.ip_forward (as docker does) for non-internal networks and
  // route_localnet on the bridge so 127.0.0.1-published ports can be DNATed.
  void add_network(const FirewallNetwork& net);
  // Idempotent: removes what add_network made, and the shared table when
  // no berth bridge is left on the host.
  void remove_network(const FirewallNetwork& net);
  void add_ports(const FirewallNetwork& net, const std::string& endpoint_id, Ipv4 container,
                 const std::vector<BoundPort>& ports);
  // Idempotent: deletes exactly the rules commented "endpoint:<id>".
  void remove_ports(const FirewallNetwork& net, const std::string& endpoint_id);
  // True when the network's table exists and its bridge is registered for
  // isolation (false after a reboot or someone's `nft flush ruleset`).
  bool network_installed(const FirewallNetwork& net);

 private:
  Nft nft_;
};

// The nft text add_network/add_ports send, exposed for unit tests.
std::string network_table_rules(const FirewallNetwork& net);
std::string port_rules(const FirewallNetwork& net, const std::string& endpoint_id, Ipv4 container,
                       const std::vector<BoundPort>& ports);

}  // namespace berth::net
