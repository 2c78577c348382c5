// Published ports: docker's `-p [ip:][host:]container[/proto]` syntax, with
// ranges ("8000-8001:80-81") and a random host port when none is given.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace berth::net {

struct PortMapping {
  std::string host_ip;         // empty: every host address
  uint16_t host_port_first = 0;  // 0: any free port (docker's "-p 80")
  uint16_t host_port_last = 0;   // == first unless a host range maps to one container port
  uint16_t container_port = 0;
  std::string protocol = "tcp";  // tcp | udp

  bool operator==(const PortMapping&) const = default;
};

// One spec can map several ports ("8000-8002:80-82" is three mappings).
// Throws berth::Error with docker-like wording on bad input.
std::vector<PortMapping> parse_port_spec(std::string_view spec);

// docker's `--expose` / compose `expose:`: "80", "53/udp", "7000-7002" to
// ExposedPorts keys ("80/tcp", ...). Throws berth::Error on bad input.
std::vector<std::string> parse_expose_spec(std::string_view spec);

// The "0.0.0.0:8080->80/tcp" text docker prints, for one bound port.
std::string format_port(const std::string& host_ip, uint16_t host_port, uint16_t container_port,
                        const std::string& protocol);

}  // namespace berth::net
