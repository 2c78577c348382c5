#include "net/ports.h"

#include <charconv>
#include <utility>

#include "base/error.h"
#include "net/address.h"

namespace berth::net {

namespace {

std::pair<uint16_t, uint16_t> parse_range(std::string_view text, std::string_view spec, bool allow_zero) {
  auto parse_one = [&](std::string_view part) -> uint16_t {
    unsigned value = 0;
    auto [next, ec] = std::from_chars(part.data(), part.data() + part.size(), value);
    if (part.empty() || ec != std::errc{} || next != part.data() + part.size() || value > 65535 ||
        (value == 0 && !allow_zero))
      throw Error("invalid port \"" + std::string(part) + "\" in \"" + std::string(spec) + "\"");
    return static_cast<uint16_t>(value);
  };
  auto dash = text.find('-');
  if (dash == std::string_view::npos) {
    auto port = parse_one(text);
    return {port, port};
  }
  auto first = parse_one(text.substr(0, dash));
  auto last = parse_one(text.substr(dash + 1));
  if (last < first) throw Error("invalid port range \"" + std::string(text) + "\" in \"" + std::string(spec) + "\"");
  return {first, last};
}

}  // namespace

std::vector<PortMapping> parse_port_spec(std::string_view spec) {
  std::string_view rest = spec;
  std::string protocol = "tcp";
  if (auto slash = rest.rfind('/'); slash != std::string_view::npos) {
    protocol = std::string(rest.substr(slash + 1));
    rest = rest.substr(0, slash);
    if (protocol != "tcp" && protocol != "udp")
      throw Error("invalid protocol \"" + protocol + "\" in \"" + std::string(spec) + "\" (want tcp or udp)");
  }
  // Split from the right: container, then host port, then host ip (which may
  // itself be "[::]"-free IPv4 only here, so at most two colons).
  std::string host_ip;
  std::string_view host_part;
  std::string_view container_part = rest;
  if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    container_part = rest.substr(colon + 1);
    host_part = rest.substr(0, colon);
    if (auto ip_colon = host_part.rfind(':'); ip_colon != std::string_view::npos) {
      host_ip = std::string(host_part.substr(0, ip_colon));
      host_part = host_part.substr(ip_colon + 1);
      if (!host_ip.empty() && !Ipv4::try_parse(host_ip))
        throw Error("invalid host IP \"" + host_ip + "\" in \"" + std::string(spec) + "\"");
    }
  }
  if (container_part.empty()) throw Error("no container port in \"" + std::string(spec) + "\"");
  auto [container_first, container_last] = parse_range(container_part, spec, false);
  std::pair<uint16_t, uint16_t> host{0, 0};
  if (!host_part.empty()) host = parse_range(host_part, spec, true);

  std::vector<PortMapping> out;
  unsigned container_count = container_last - container_first + 1u;
  unsigned host_count = host.second - host.first + 1u;
  if (host_part.empty() || host.first == 0) {
    for (unsigned i = 0; i < container_count; ++i)
      out.push_back({host_ip, 0, 0, static_cast<uint16_t>(container_first + i), protocol});
  } else if (container_count == 1) {
    // A host range for one container port: any free port of the range.
    out.push_back({host_ip, host.first, host.second, container_first, protocol});
  } else if (host_count == container_count) {
    for (unsigned i = 0; i < container_count; ++i) {
      auto h = static_cast<uint16_t>(host.first + i);
      out.push_back({host_ip, h, h, static_cast<uint16_t>(container_first + i), protocol});
    }
  } else {
    throw Error("invalid ranges in \"" + std::string(spec) + "\": host and container ranges differ in size");
  }
  return out;
}

std::vector<std::string> parse_expose_spec(std::string_view spec) {
  if (spec.find(':') != std::string_view::npos)
    throw Error("invalid port format for --expose: \"" + std::string(spec) + "\" (want PORT[/PROTO] or START-END[/PROTO])");
  std::vector<std::string> out;
  for (auto& m : parse_port_spec(spec)) out.push_back(std::to_string(m.container_port) + "/" + m.protocol);
  return out;
}

std::string format_port(const std::string& host_ip, uint16_t host_port, uint16_t container_port,
                        const std::string& protocol) {
  return (host_ip.empty() ? std::string("0.0.0.0") : host_ip) + ":" + std::to_string(host_port) + "->" +
         std::to_string(container_port) + "/" + protocol;
}

}  // namespace berth::net
