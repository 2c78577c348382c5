// net/: berth's networking, the one header other areas include.
//   NetworkManager  create/remove/prune networks, connect/disconnect netns
//   DnsServer       the embedded DNS (127.0.0.11 in each container's netns)
//   parse_port_spec docker's -p syntax
//   open_netns, RouteSocket  netlink on any network namespace
//   container_resolv_conf, container_hosts_file  dns/dns_search/dns_opt/extra_hosts
#pragma once

#include "net/address.h"
#include "net/dns.h"
#include "net/ipam.h"
#include "net/netlink.h"
#include "net/netns.h"
#include "net/network.h"
#include "net/ports.h"
#include "net/resolv.h"
#include "net/store.h"
