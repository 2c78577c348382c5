// IPAM, the pure part: which subnet a new network gets and which address an
// endpoint gets. No I/O here — the caller supplies what is in use (other
// networks, host routes, allocated addresses) and persists the result, so
// every rule is unit-testable.
#pragma once

#include <optional>
#include <set>
#include <vector>

#include "net/address.h"

namespace berth::net {

// Docker's predefined local-scope pools, in its order: 172.17.0.0/16 ..
// 172.31.0.0/16, then 192.168.0.0/16 cut into /20s. The default `bridge`
// network takes the first (172.17.0.0/16) when it is free.
std::vector<Subnet> default_subnet_pool();

// The first candidate overlapping none of `in_use`; throws berth::Error when
// every candidate is taken.
Subnet choose_subnet(const std::vector<Subnet>& candidates, const std::vector<Subnet>& in_use);

// Addresses of one subnet. The network address, the broadcast address and the
// gateway are never handed out.
class AddressAllocator {
 public:
  // `taken` are allocated endpoint addresses; `last` is the address handed out
  // most recently (allocation continues after it, so a just-released address
  // is not reused at once while stale ARP and DNS entries may still name it).
  AddressAllocator(Subnet subnet, Ipv4 gateway, std::set<Ipv4> taken, std::optional<Ipv4> last = {});

  // The next free address after `last`, wrapping; throws when the subnet is full.
  Ipv4 allocate();
  // Takes a specific address (docker's --ip / ipv4_address); throws when it is
  // outside the subnet, reserved, or already taken.
  Ipv4 reserve(Ipv4 wanted);
  void release(Ipv4 ip) { taken_.erase(ip); }

  const std::set<Ipv4>& taken() const { return taken_; }
  std::optional<Ipv4> last() const { return last_; }

 private:
  bool usable(Ipv4 ip) const;

  Subnet subnet_;
  Ipv4 gateway_;
  std::set<Ipv4> taken_;
  std::optional<Ipv4> last_;
};

// Validates a user-given gateway against its subnet (inside, not the network
// or broadcast address); returns the subnet's first host when none is given.
Ipv4 choose_gateway(const Subnet& subnet, const std::optional<Ipv4>& wanted);

}  // namespace berth::net
