#include "net/ipam.h"

#include "base/error.h"

namespace berth::net {

std::vector<Subnet> default_subnet_pool() {
  std::vector<Subnet> pool;
  for (uint32_t second = 17; second <= 31; ++second)
    pool.push_back(Subnet{Ipv4{(172u << 24) | (second << 16)}, 16});
  for (uint32_t third = 0; third < 256; third += 16)
    pool.push_back(Subnet{Ipv4{(192u << 24) | (168u << 16) | (third << 8)}, 20});
  return pool;
}

Subnet choose_subnet(const std::vector<Subnet>& candidates, const std::vector<Subnet>& in_use) {
  for (const auto& candidate : candidates) {
    bool free = true;
    for (const auto& used : in_use)
      if (candidate.overlaps(used)) {
        free = false;
        break;
      }
    if (free) return candidate;
  }
  throw Error("all predefined address pools have been fully subnetted");
}

Ipv4 choose_gateway(const Subnet& subnet, const std::optional<Ipv4>& wanted) {
  if (subnet.prefix > 30)
    throw Error("subnet " + subnet.to_string() + " is too small for a bridge network (need /30 or larger)");
  if (!wanted) return subnet.first_host();
  if (!subnet.contains(*wanted))
    throw Error("gateway " + wanted->to_string() + " is not in subnet " + subnet.to_string());
  if (*wanted == subnet.network() || *wanted == subnet.broadcast())
    throw Error("gateway " + wanted->to_string() + " is the network or broadcast address of " +
                subnet.to_string());
  return *wanted;
}

AddressAllocator::AddressAllocator(Subnet subnet, Ipv4 gateway, std::set<Ipv4> taken, std::optional<Ipv4> last)
    : subnet_(subnet), gateway_(gateway), taken_(std::move(taken)), last_(last) {}

bool AddressAllocator::usable(Ipv4 ip) const {
  return subnet_.contains(ip) && ip != subnet_.network() && ip != subnet_.broadcast() && ip != gateway_;
}

Ipv4 AddressAllocator::allocate() {
  uint32_t first = subnet_.first_host().value;
  uint32_t last = subnet_.last_host().value;
  uint32_t count = last - first + 1;
  uint32_t start = (last_ && subnet_.contains(*last_) && last_->value >= first && last_->value < last)
                       ? last_->value + 1
                       : first;
  for (uint32_t i = 0; i < count; ++i) {
    Ipv4 candidate{first + (start - first + i) % count};
    if (usable(candidate) && !taken_.count(candidate)) {
      taken_.insert(candidate);
      last_ = candidate;
      return candidate;
    }
  }
  throw Error("no available IPv4 addresses on subnet " + subnet_.to_string());
}

Ipv4 AddressAllocator::reserve(Ipv4 wanted) {
  if (!subnet_.contains(wanted))
    throw Error("address " + wanted.to_string() + " is not in subnet " + subnet_.to_string());
  if (!usable(wanted))
    throw Error("address " + wanted.to_string() + " is reserved in subnet " + subnet_.to_string() +
                " (network, broadcast or gateway)");
  if (taken_.count(wanted)) throw Error("address " + wanted.to_string() + " is already in use");
  taken_.insert(wanted);
  return wanted;
}

}  // namespace berth::net
