// IPv4 addresses and subnets: parsing, formatting and the arithmetic IPAM
// needs. Values are kept in host byte order so that "next address" is ++.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace berth::net {

struct Ipv4 {
  uint32_t value = 0;  // host byte order

  // Strict dotted quad ("10.0.0.1"); nullopt on anything else.
  static std::optional<Ipv4> try_parse(std::string_view text);
  // Like try_parse, but throws berth::Error naming `what`.
  static Ipv4 parse(std::string_view text, std::string_view what = "IP address");
  std::string to_string() const;
  // Network byte order, for sockaddr_in and netlink.
  uint32_t network_order() const;
  static Ipv4 from_network_order(uint32_t be);

  auto operator<=>(const Ipv4&) const = default;
};

struct Subnet {
  Ipv4 base;       // always the network address (host bits zero)
  int prefix = 0;  // 0..32

  // "a.b.c.d/n". Host bits set ("10.0.0.1/24") are rejected, as docker does,
  // because a subnet that is not its own network address is almost always a typo.
  static std::optional<Subnet> try_parse(std::string_view text);
  static Subnet parse(std::string_view text);
  std::string to_string() const;

  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  Ipv4 network() const { return base; }
  Ipv4 broadcast() const { return Ipv4{base.value | ~mask()}; }
  // First address usable by a host (the gateway by convention).
  Ipv4 first_host() const { return Ipv4{prefix >= 31 ? base.value : base.value + 1}; }
  Ipv4 last_host() const { return Ipv4{prefix >= 31 ? broadcast().value : broadcast().value - 1}; }
  bool contains(Ipv4 ip) const { return (ip.value & mask()) == base.value; }
  bool overlaps(const Subnet& other) const;

  auto operator<=>(const Subnet&) const = default;
};

}  // namespace berth::net
