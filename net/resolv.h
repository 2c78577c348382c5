// The files that make a container use berth's DNS: /etc/resolv.conf and
// /etc/hosts, from the compose keys dns, dns_search, dns_opt, extra_hosts.
// Pure text in, text out; the runtime writes them into the container.
#pragma once

#include <string>
#include <vector>

#include "net/address.h"

namespace berth::net {

struct ResolvOptions {
  bool embedded_dns = true;             // user-defined network: ask 127.0.0.11
  std::vector<std::string> dns;         // `dns:` servers
  std::vector<std::string> dns_search;  // `dns_search:`
  std::vector<std::string> dns_opt;     // `dns_opt:`
};

// Docker's rules: with the embedded DNS the file names 127.0.0.11 only (the
// `dns:` servers become the embedded server's upstreams for this
// container, see DnsServer::attach_netns); without it (the default bridge
// network) the `dns:` servers, or the host's non-loopback nameservers, are
// written directly. search/options come from the options, else the host's.
std::string container_resolv_conf(const std::string& host_resolv_conf, const ResolvOptions& options);

struct HostEntry {
  std::string name;
  std::string address;  // as given: extra_hosts may name IPv6 addresses too
};
// "name:ip" or "name=ip" (compose accepts both); throws berth::Error on bad input.
HostEntry parse_extra_host(const std::string& spec);

// localhost lines, the container's own names on its first address, then
// extra_hosts in order.
std::string container_hosts_file(const std::vector<std::string>& own_names, const std::vector<Ipv4>& own_addresses,
                                  const std::vector<HostEntry>& extra_hosts);

}  // namespace berth::net
