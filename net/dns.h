// The embedded DNS server. Containers on berth networks ask 127.0.0.11 in
// their own network namespace; the server answers A (and PTR) for the names
// registered on the networks the asking container is on, and forwards
// everything else to the host's upstream resolvers.
//
// How 127.0.0.11 is served (the choice, and why): for each container the
// server opens a UDP and a TCP socket *inside the container's netns* (a
// helper thread setns()es there, creates and binds the sockets, and hands
// the fds to the libuv loop — a socket keeps the namespace it was made in).
// The sockets are bound to 127.0.0.11 on kernel-chosen ports, and a small
// nft table in the container's netns (table ip berth-dns) DNATs
// 127.0.0.11:53 to them, as docker does, so a container that runs its own
// DNS server on 0.0.0.0:53 still can. Which socket a query arrived on tells
// which container asks, so "only names on a shared network" needs no
// address lookup. Forwarding happens from the server's own (host) netns, so
// a host resolver on loopback (127.0.0.53) still works as an upstream.
//
// The wire format is parsed and built with ldns (libldns-dev): c-ares in
// Debian 12 (1.18) can parse answers but cannot build responses.
#pragma once

#include <uv.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "net/address.h"

namespace berth::net {

// Names per network. Thread-safe: the loop thread reads while others update.
class NameTable {
 public:
  // Names are case-insensitive; a trailing dot is ignored.
  void add(const std::string& network_id, const std::string& name, Ipv4 ip);
  // Forgets every name of `ip` on the network (an endpoint going away).
  void remove_address(const std::string& network_id, Ipv4 ip);
  void remove_network(const std::string& network_id);
  // Replaces every name with `other`'s in one step, so a resync never
  // answers from a half-built table (and removed containers vanish).
  void replace_with(const NameTable& other);
  // Addresses for `name` on any of `networks`, in registration order.
  std::vector<Ipv4> lookup(std::string_view name, const std::vector<std::string>& networks) const;
  // The first name registered for `ip` on any of `networks`.
  std::optional<std::string> reverse(Ipv4 ip, const std::vector<std::string>& networks) const;

 private:
  struct Entry {
    std::string name;
    Ipv4 ip;
  };
  mutable std::shared_mutex mutex_;
  std::map<std::string, std::vector<Entry>> by_network_;
};

std::string normalize_dns_name(std::string_view name);

// What to do with one query. `reply` is set for answered (and malformed)
// queries; otherwise the query should be forwarded upstream unchanged.
struct DnsDecision {
  std::optional<std::vector<uint8_t>> reply;
};
// Pure: answers from `names` for an asker on `networks`. `rotation` rotates
// multiple A records (round-robin across queries). UDP answers are cut to
// the asker's buffer (512 bytes or its EDNS size) with TC set.
DnsDecision handle_dns_query(const uint8_t* data, size_t size, const NameTable& names,
                             const std::vector<std::string>& networks, uint32_t rotation, bool over_tcp = false);
// A SERVFAIL reply to `query` (upstream unreachable or timed out).
std::vector<uint8_t> dns_servfail(const uint8_t* data, size_t size);

// "nameserver" lines of a resolv.conf, as "ip:port" (port 53).
std::vector<std::string> upstreams_from_resolv_conf(const std::string& text);

struct DnsServerOptions {
  // "ip" or "ip:port". Empty: read from /etc/resolv.conf.
  std::vector<std::string> upstreams;
  // Per upstream: on silence the next one is asked, then SERVFAIL.
  unsigned upstream_timeout_ms = 3000;
};

class DnsServer {
 public:
  // Everything runs on `loop`; call the methods from the loop's thread (or
  // before the loop runs). Destroying the server closes its handles; run the
  // loop once more afterwards so libuv finishes closing them.
  DnsServer(uv_loop_t* loop, DnsServerOptions options);
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  NameTable& names() { return names_; }

  // Serves 127.0.0.11:53 inside the netns for a container on `networks`.
  // `upstreams` (the container's `dns:` servers, "ip[:port]") replace the
  // server's for this container when given. Returns an id for detach().
  int attach_netns(int netns_fd, std::vector<std::string> networks, std::vector<std::string> upstreams = {});
  // Serves on address:port in the current netns (tests, bench). Port 0:
  // kernel-chosen; see port_of().
  int listen_here(const std::string& address, uint16_t port, std::vector<std::string> networks,
                  std::vector<std::string> upstreams = {});
  void set_networks(int id, std::vector<std::string> networks);
  // Stops serving and removes the DNAT table from the container's netns.
  void detach(int id);
  uint16_t udp_port_of(int id) const;
  uint16_t tcp_port_of(int id) const;

  struct Listener;
  struct TcpConnection;

 private:
  friend struct DnsServerInternals;
  int add_listener(int udp_fd, int tcp_fd, std::vector<std::string> networks, int netns_fd,
                   std::vector<std::string> upstreams = {});
  void handle_query(Listener& from, const uint8_t* data, size_t size, const sockaddr* peer, uint64_t tcp_conn);
  void forward(Listener& from, const uint8_t* data, size_t size, const sockaddr* peer, uint64_t tcp_conn);
  void on_upstream_reply(const uint8_t* data, size_t size, const sockaddr* from);
  void expire_pending();
  void send_reply(int listener_id, const sockaddr_storage& peer, uint64_t tcp_conn, std::vector<uint8_t> reply);

  struct Pending {
    uint16_t original_id;
    uint64_t deadline_ms;
    int listener_id;
    sockaddr_storage peer;
    uint64_t tcp_conn;  // 0: the query came over UDP
    std::vector<uint8_t> query;  // with the upstream-side id
    std::vector<sockaddr_storage> upstreams;
    size_t attempt = 0;  // index into upstreams of the one asked last
  };
  void send_upstream(Pending& p);

  uv_loop_t* loop_;
  DnsServerOptions options_;
  NameTable names_;
  uint32_t rotation_ = 0;
  int next_listener_id_ = 1;
  std::map<int, Listener*> listeners_;
  uint64_t next_conn_id_ = 1;
  std::map<uint64_t, TcpConnection*> connections_;
  uv_udp_t* upstream_ = nullptr;
  uv_timer_t* sweep_ = nullptr;
  std::vector<sockaddr_storage> upstream_addrs_;
  uint16_t next_upstream_id_ = 1;
  std::map<uint16_t, Pending> pending_;
};

}  // namespace berth::net
