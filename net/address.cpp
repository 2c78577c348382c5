#include "net/address.h"

#include <arpa/inet.h>

#include <charconv>

#include "base/error.h"

namespace berth::net {

std::optional<Ipv4> Ipv4::try_parse(std::string_view text) {
  uint32_t value = 0;
  const char* p = text.data();
  const char* end = text.data() + text.size();
  for (int octet = 0; octet < 4; ++octet) {
    if (octet > 0) {
      if (p == end || *p != '.') return std::nullopt;
      ++p;
    }
    // At most three digits and no leading zeros: "010" is octal to inet_aton
    // and decimal to others, so it is refused rather than guessed.
    const char* start = p;
    unsigned part = 0;
    auto [next, ec] = std::from_chars(p, end, part);
    if (ec != std::errc{} || next == start || next - start > 3 || part > 255) return std::nullopt;
    if (next - start > 1 && *start == '0') return std::nullopt;
    value = (value << 8) | part;
    p = next;
  }
  if (p != end) return std::nullopt;
  return Ipv4{value};
}

Ipv4 Ipv4::parse(std::string_view text, std::string_view what) {
  auto ip = try_parse(text);
  if (!ip) throw Error("invalid " + std::string(what) + " \"" + std::string(text) + "\"");
  return *ip;
}

std::string Ipv4::to_string() const {
  return std::to_string(value >> 24) + "." + std::to_string((value >> 16) & 255) + "." +
         std::to_string((value >> 8) & 255) + "." + std::to_string(value & 255);
}

uint32_t Ipv4::network_order() const { return htonl(value); }
Ipv4 Ipv4::from_network_order(uint32_t be) { return Ipv4{ntohl(be)}; }

std::optional<Subnet> Subnet::try_parse(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto ip = Ipv4::try_parse(text.substr(0, slash));
  auto bits = text.substr(slash + 1);
  int prefix = -1;
  auto [next, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
  if (!ip || ec != std::errc{} || next != bits.data() + bits.size() || bits.empty() || prefix < 0 ||
      prefix > 32)
    return std::nullopt;
  Subnet s{*ip, prefix};
  if ((ip->value & s.mask()) != ip->value) return std::nullopt;
  return s;
}

Subnet Subnet::parse(std::string_view text) {
  auto s = try_parse(text);
  if (!s) throw Error("invalid CIDR address: " + std::string(text));
  return *s;
}

std::string Subnet::to_string() const { return base.to_string() + "/" + std::to_string(prefix); }

bool Subnet::overlaps(const Subnet& other) const {
  int common = std::min(prefix, other.prefix);
  uint32_t m = common == 0 ? 0 : ~uint32_t{0} << (32 - common);
  return (base.value & m) == (other.base.value & m);
}

}  // namespace berth::net
