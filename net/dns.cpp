#include "net/dns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "net/firewall.h"

// Last: ldns's headers define macros (true/false) that break C++ headers after them.
#include <ldns/ldns.h>

#include <dlfcn.h>

namespace berth::net {

namespace {

// libldns, loaded (dlopen) by the first DNS message berth reads or writes:
// only `berth serve` answers DNS, and linking ldns (and the libssl it
// needs) made every berth command map them at start-up. The function
// types come from <ldns/ldns.h>.
#define BERTH_LDNS_FUNCTIONS(X) \
  X(ldns_dname_new_frm_str) \
  X(ldns_pkt2wire) \
  X(ldns_pkt_clone) \
  X(ldns_pkt_edns_udp_size) \
  X(ldns_pkt_free) \
  X(ldns_pkt_get_opcode) \
  X(ldns_pkt_id) \
  X(ldns_pkt_new) \
  X(ldns_pkt_push_rr) \
  X(ldns_pkt_qr) \
  X(ldns_pkt_question) \
  X(ldns_pkt_rd) \
  X(ldns_pkt_set_aa) \
  X(ldns_pkt_set_edns_udp_size) \
  X(ldns_pkt_set_id) \
  X(ldns_pkt_set_qr) \
  X(ldns_pkt_set_ra) \
  X(ldns_pkt_set_rcode) \
  X(ldns_pkt_set_rd) \
  X(ldns_pkt_set_tc) \
  X(ldns_rdf2str) \
  X(ldns_rdf_clone) \
  X(ldns_rdf_new_frm_data) \
  X(ldns_rr_clone) \
  X(ldns_rr_get_type) \
  X(ldns_rr_list_rr) \
  X(ldns_rr_list_rr_count) \
  X(ldns_rr_new) \
  X(ldns_rr_owner) \
  X(ldns_rr_push_rdf) \
  X(ldns_rr_set_class) \
  X(ldns_rr_set_owner) \
  X(ldns_rr_set_ttl) \
  X(ldns_rr_set_type) \
  X(ldns_wire2pkt)

struct Libldns {
#define X(f) decltype(&::f) f = nullptr;
  BERTH_LDNS_FUNCTIONS(X)
#undef X
};

constexpr const char* kLibldns = "libldns.so.3";

const Libldns& ldns() {
  static Libldns lib;
  static std::once_flag once;
  std::call_once(once, [] {
    void* h = ::dlopen(kLibldns, RTLD_NOW | RTLD_LOCAL);
    if (!h) throw Error(std::string("cannot load ") + kLibldns + " (" + ::dlerror() + "): install Debian's libldns3");
    Libldns l;
#define X(f)                                                      \
  l.f = reinterpret_cast<decltype(l.f)>(::dlsym(h, #f));          \
  if (!l.f) throw Error(std::string(kLibldns) + ": no symbol " #f);
    BERTH_LDNS_FUNCTIONS(X)
#undef X
    lib = l;
  });
  return lib;
}

}  // namespace

}  // namespace berth::net

namespace berth::net {

// ---------------------------------------------------------------- names

std::string normalize_dns_name(std::string_view name) {
  std::string out(name);
  while (!out.empty() && out.back() == '.') out.pop_back();
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

void NameTable::add(const std::string& network_id, const std::string& name, Ipv4 ip) {
  std::string key = normalize_dns_name(name);
  if (key.empty()) return;
  std::unique_lock lock(mutex_);
  auto& entries = by_network_[network_id];
  for (auto& e : entries)
    if (e.name == key && e.ip == ip) return;
  entries.push_back({key, ip});
}

void NameTable::remove_address(const std::string& network_id, Ipv4 ip) {
  std::unique_lock lock(mutex_);
  auto it = by_network_.find(network_id);
  if (it == by_network_.end()) return;
  std::erase_if(it->second, [&](const Entry& e) { return e.ip == ip; });
}

void NameTable::remove_network(const std::string& network_id) {
  std::unique_lock lock(mutex_);
  by_network_.erase(network_id);
}

void NameTable::replace_with(const NameTable& other) {
  if (&other == this) return;
  std::shared_lock read(other.mutex_);
  auto copy = other.by_network_;
  read.unlock();
  std::unique_lock write(mutex_);
  by_network_ = std::move(copy);
}

std::vector<Ipv4> NameTable::lookup(std::string_view name, const std::vector<std::string>& networks) const {
  std::string key = normalize_dns_name(name);
  std::shared_lock lock(mutex_);
  std::vector<Ipv4> out;
  for (auto& net : networks) {
    auto it = by_network_.find(net);
    if (it == by_network_.end()) continue;
    for (auto& e : it->second)
      if (e.name == key && std::find(out.begin(), out.end(), e.ip) == out.end()) out.push_back(e.ip);
  }
  return out;
}

std::optional<std::string> NameTable::reverse(Ipv4 ip, const std::vector<std::string>& networks) const {
  std::shared_lock lock(mutex_);
  for (auto& net : networks) {
    auto it = by_network_.find(net);
    if (it == by_network_.end()) continue;
    for (auto& e : it->second)
      if (e.ip == ip) return e.name;
  }
  return std::nullopt;
}

// ---------------------------------------------------------------- messages

namespace {

constexpr uint32_t kTtlSeconds = 600;  // docker's embedded DNS uses the same

struct PktFree {
  void operator()(ldns_pkt* p) const { ldns().ldns_pkt_free(p); }
};
using PktPtr = std::unique_ptr<ldns_pkt, PktFree>;

std::string rdf_text(const ldns_rdf* rdf) {
  char* s = ldns().ldns_rdf2str(rdf);
  std::string out = s ? s : "";
  free(s);
  return out;
}

// "4.3.2.1.in-addr.arpa" -> 1.2.3.4
std::optional<Ipv4> ptr_name_to_ip(const std::string& name) {
  const std::string suffix = ".in-addr.arpa";
  if (!name.ends_with(suffix)) return std::nullopt;
  std::string reversed = name.substr(0, name.size() - suffix.size());
  std::vector<std::string> parts;
  std::stringstream ss(reversed);
  for (std::string part; std::getline(ss, part, '.');) parts.push_back(part);
  if (parts.size() != 4) return std::nullopt;
  return Ipv4::try_parse(parts[3] + "." + parts[2] + "." + parts[1] + "." + parts[0]);
}

std::vector<uint8_t> to_wire(const ldns_pkt* pkt) {
  uint8_t* wire = nullptr;
  size_t size = 0;
  if (ldns().ldns_pkt2wire(&wire, pkt, &size) != LDNS_STATUS_OK) throw Error("cannot encode a DNS reply");
  std::vector<uint8_t> out(wire, wire + size);
  free(wire);
  return out;
}

// A header-only reply with `rcode` (the question is not echoed: it may be
// what could not be parsed).
std::vector<uint8_t> header_reply(const uint8_t* data, size_t size, uint8_t rcode) {
  std::vector<uint8_t> out(12, 0);
  if (size >= 2) {
    out[0] = data[0];
    out[1] = data[1];
  }
  out[2] = 0x80 | (size >= 3 ? (data[2] & 0x79) : 0);  // QR, keep opcode and RD
  out[3] = 0x80 | (rcode & 0x0f);                     // RA
  return out;
}

}  // namespace

std::vector<uint8_t> dns_servfail(const uint8_t* data, size_t size) {
  return header_reply(data, size, LDNS_RCODE_SERVFAIL);
}

DnsDecision handle_dns_query(const uint8_t* data, size_t size, const NameTable& names,
                             const std::vector<std::string>& networks, uint32_t rotation, bool over_tcp) {
  ldns_pkt* raw = nullptr;
  if (size < 12 || ldns().ldns_wire2pkt(&raw, data, size) != LDNS_STATUS_OK) {
    if (size < 2) return {std::vector<uint8_t>{}};  // not even an id: nothing to answer
    return {header_reply(data, size, LDNS_RCODE_FORMERR)};
  }
  PktPtr query(raw);
  ldns_rr_list* questions = ldns().ldns_pkt_question(query.get());
  if (ldns().ldns_pkt_qr(query.get()) || ldns().ldns_pkt_get_opcode(query.get()) != LDNS_PACKET_QUERY ||
      ldns().ldns_rr_list_rr_count(questions) != 1)
    return {header_reply(data, size, LDNS_RCODE_NOTIMPL)};
  ldns_rr* question = ldns().ldns_rr_list_rr(questions, 0);
  ldns_rr_type type = ldns().ldns_rr_get_type(question);
  std::string qname = normalize_dns_name(rdf_text(ldns().ldns_rr_owner(question)));

  PktPtr reply(ldns().ldns_pkt_new());
  ldns().ldns_pkt_set_id(reply.get(), ldns().ldns_pkt_id(query.get()));
  ldns().ldns_pkt_set_qr(reply.get(), true);
  ldns().ldns_pkt_set_aa(reply.get(), true);
  ldns().ldns_pkt_set_rd(reply.get(), ldns().ldns_pkt_rd(query.get()));
  ldns().ldns_pkt_set_ra(reply.get(), true);
  ldns().ldns_pkt_set_rcode(reply.get(), LDNS_RCODE_NOERROR);
  ldns().ldns_pkt_push_rr(reply.get(), LDNS_SECTION_QUESTION, ldns().ldns_rr_clone(question));

  if (auto ptr_ip = ptr_name_to_ip(qname); ptr_ip && type == LDNS_RR_TYPE_PTR) {
    auto name = names.reverse(*ptr_ip, networks);
    if (!name) return {};  // not a container address: the upstream may know it
    ldns_rr* rr = ldns().ldns_rr_new();
    ldns().ldns_rr_set_owner(rr, ldns().ldns_rdf_clone(ldns().ldns_rr_owner(question)));
    ldns().ldns_rr_set_type(rr, LDNS_RR_TYPE_PTR);
    ldns().ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
    ldns().ldns_rr_set_ttl(rr, kTtlSeconds);
    ldns().ldns_rr_push_rdf(rr, ldns().ldns_dname_new_frm_str((*name + ".").c_str()));
    ldns().ldns_pkt_push_rr(reply.get(), LDNS_SECTION_ANSWER, rr);
    return {to_wire(reply.get())};
  }

  auto addresses = names.lookup(qname, networks);
  if (addresses.empty()) return {};  // not ours: forward
  // A known name answers every type itself (A with records, others empty),
  // so an AAAA query for a container does not leak to the upstream.
  if (type != LDNS_RR_TYPE_A && type != LDNS_RR_TYPE_ANY) return {to_wire(reply.get())};

  // UDP replies fit the asker's buffer: 512 bytes, or its EDNS size; what
  // does not fit is cut and flagged TC so the asker retries over TCP.
  uint16_t edns_size = ldns().ldns_pkt_edns_udp_size(query.get());
  size_t limit = over_tcp ? 65535 : std::max<size_t>(512, std::min<size_t>(edns_size, 4096));
  if (edns_size > 0) ldns().ldns_pkt_set_edns_udp_size(reply.get(), 4096);
  size_t total = addresses.size();
  auto build = [&](size_t count) {
    PktPtr answer(ldns().ldns_pkt_clone(reply.get()));
    for (size_t i = 0; i < count; ++i) {
      Ipv4 ip = addresses[(i + rotation) % total];
      uint32_t be = ip.network_order();
      ldns_rr* rr = ldns().ldns_rr_new();
      ldns().ldns_rr_set_owner(rr, ldns().ldns_rdf_clone(ldns().ldns_rr_owner(question)));
      ldns().ldns_rr_set_type(rr, LDNS_RR_TYPE_A);
      ldns().ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
      ldns().ldns_rr_set_ttl(rr, kTtlSeconds);
      ldns().ldns_rr_push_rdf(rr, ldns().ldns_rdf_new_frm_data(LDNS_RDF_TYPE_A, 4, &be));
      ldns().ldns_pkt_push_rr(answer.get(), LDNS_SECTION_ANSWER, rr);
    }
    if (count < total) ldns().ldns_pkt_set_tc(answer.get(), true);
    return to_wire(answer.get());
  };
  auto wire = build(total);
  for (size_t count = total; wire.size() > limit && count > 0;) {
    // An A record costs at least 16 bytes; shrink by the overshoot at once.
    size_t drop = std::max<size_t>(1, (wire.size() - limit + 15) / 16);
    count = count > drop ? count - drop : 0;
    wire = build(count);
  }
  return {std::move(wire)};
}

std::vector<std::string> upstreams_from_resolv_conf(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    std::stringstream words(line);
    std::string keyword, address;
    words >> keyword >> address;
    if (keyword != "nameserver" || !Ipv4::try_parse(address)) continue;  // IPv6 upstreams: later
    if (address == "127.0.0.11") continue;                                // never ourselves
    out.push_back(address + ":53");
  }
  return out;
}

// ---------------------------------------------------------------- server

struct DnsServer::Listener {
  DnsServer* server;
  int id;
  std::vector<std::string> networks;
  uv_udp_t udp;
  uv_tcp_t tcp;
  int open_handles = 0;
  UniqueFd netns;  // when serving inside a container's netns
  uint16_t udp_port = 0;
  uint16_t tcp_port = 0;
  std::vector<sockaddr_storage> upstreams;  // empty: the server's
};

struct DnsServer::TcpConnection {
  DnsServer* server;
  uint64_t id;
  int listener_id;
  uv_tcp_t handle;
  std::string buffer;
};

namespace {

uint64_t now_ms(uv_loop_t* loop) { return uv_now(loop); }

sockaddr_storage parse_endpoint(const std::string& text) {
  std::string host = text;
  unsigned port = 53;
  if (auto colon = text.rfind(':'); colon != std::string::npos) {
    host = text.substr(0, colon);
    std::string digits = text.substr(colon + 1);
    auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), port);
    if (digits.empty() || ec != std::errc{} || end != digits.data() + digits.size() || port == 0 || port > 65535)
      throw Error("invalid DNS upstream \"" + text + "\"");
  }
  sockaddr_storage ss{};
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(static_cast<uint16_t>(port));
  sin->sin_addr.s_addr = Ipv4::parse(host, "DNS upstream").network_order();
  return ss;
}

uint16_t bound_port(int fd) {
  sockaddr_in sin{};
  socklen_t len = sizeof sin;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len) != 0) throw_errno("getsockname");
  return ntohs(sin.sin_port);
}

UniqueFd bound_socket(int type, const std::string& address, uint16_t port) {
  UniqueFd fd(::socket(AF_INET, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("cannot create a DNS socket");
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = Ipv4::parse(address).network_order();
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0)
    throw_errno("cannot bind the DNS server to " + address + ":" + std::to_string(port));
  if (type == SOCK_STREAM && ::listen(fd.get(), 128) != 0) throw_errno("listen");
  return fd;
}

std::string dns_dnat_rules(uint16_t udp_port, uint16_t tcp_port) {
  std::string t = "ip berth-dns";
  return "add table " + t + "\ndelete table " + t + "\nadd table " + t + "\n" + "add chain " + t +
         " output { type nat hook output priority -100; policy accept; }\n" + "add rule " + t +
         " output ip daddr 127.0.0.11 udp dport 53 dnat to 127.0.0.11:" + std::to_string(udp_port) + "\n" +
         "add rule " + t + " output ip daddr 127.0.0.11 tcp dport 53 dnat to 127.0.0.11:" +
         std::to_string(tcp_port) + "\n";
}

// Runs `fn` on a helper thread inside the netns; rethrows its failure.
template <typename Fn>
void in_netns(int netns_fd, Fn fn) {
  std::exception_ptr failure;
  std::thread helper([&] {
    try {
      if (::setns(netns_fd, CLONE_NEWNET) != 0) throw_errno("cannot enter the container's network namespace");
      fn();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  helper.join();
  if (failure) std::rethrow_exception(failure);
}

void alloc_buffer(uv_handle_t*, size_t suggested, uv_buf_t* buf) {
  buf->base = new char[suggested];
  buf->len = suggested;
}

}  // namespace

struct DnsServerInternals {
  static void on_listener_closed(uv_handle_t* handle) {
    auto* l = static_cast<DnsServer::Listener*>(handle->data);
    if (--l->open_handles == 0) delete l;
  }

  static void on_udp_query(uv_udp_t* handle, ssize_t n, const uv_buf_t* buf, const sockaddr* peer, unsigned) {
    std::unique_ptr<char[]> owned(buf->base);
    if (n <= 0 || !peer) return;
    auto* l = static_cast<DnsServer::Listener*>(handle->data);
    try {
      l->server->handle_query(*l, reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(n), peer, 0);
    } catch (const std::exception& e) {
      spdlog::warn("dns: {}", e.what());
    }
  }

  static void on_connection_closed(uv_handle_t* handle) {
    delete static_cast<DnsServer::TcpConnection*>(handle->data);
  }

  static void close_connection(DnsServer::TcpConnection* c) {
    c->server->connections_.erase(c->id);
    uv_close(reinterpret_cast<uv_handle_t*>(&c->handle), on_connection_closed);
  }

  static void on_tcp_read(uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
    std::unique_ptr<char[]> owned(buf->base);
    auto* c = static_cast<DnsServer::TcpConnection*>(stream->data);
    if (n < 0) {
      close_connection(c);
      return;
    }
    c->buffer.append(buf->base, static_cast<size_t>(n));
    // DNS over TCP: each message is preceded by its 16-bit length.
    while (c->buffer.size() >= 2) {
      size_t len = (static_cast<uint8_t>(c->buffer[0]) << 8) | static_cast<uint8_t>(c->buffer[1]);
      if (c->buffer.size() < 2 + len) break;
      std::string message = c->buffer.substr(2, len);
      c->buffer.erase(0, 2 + len);
      auto it = c->server->listeners_.find(c->listener_id);
      if (it == c->server->listeners_.end()) {
        close_connection(c);
        return;
      }
      sockaddr_storage none{};
      try {
        c->server->handle_query(*it->second, reinterpret_cast<const uint8_t*>(message.data()), message.size(),
                                reinterpret_cast<sockaddr*>(&none), c->id);
      } catch (const std::exception& e) {
        spdlog::warn("dns: {}", e.what());
      }
    }
  }

  static void on_tcp_connection(uv_stream_t* server_stream, int status) {
    if (status < 0) return;
    auto* l = static_cast<DnsServer::Listener*>(server_stream->data);
    auto* c = new DnsServer::TcpConnection{l->server, l->server->next_conn_id_++, l->id, {}, {}};
    uv_tcp_init(l->server->loop_, &c->handle);
    c->handle.data = c;
    if (uv_accept(server_stream, reinterpret_cast<uv_stream_t*>(&c->handle)) != 0) {
      uv_close(reinterpret_cast<uv_handle_t*>(&c->handle), on_connection_closed);
      return;
    }
    l->server->connections_[c->id] = c;
    uv_read_start(reinterpret_cast<uv_stream_t*>(&c->handle), alloc_buffer, on_tcp_read);
  }

  static void on_upstream(uv_udp_t* handle, ssize_t n, const uv_buf_t* buf, const sockaddr* peer, unsigned) {
    std::unique_ptr<char[]> owned(buf->base);
    if (n <= 0) return;
    auto* server = static_cast<DnsServer*>(handle->data);
    server->on_upstream_reply(reinterpret_cast<const uint8_t*>(buf->base), static_cast<size_t>(n), peer);
  }

  static void on_sweep(uv_timer_t* timer) { static_cast<DnsServer*>(timer->data)->expire_pending(); }
};

DnsServer::DnsServer(uv_loop_t* loop, DnsServerOptions options) : loop_(loop), options_(std::move(options)) {
  if (options_.upstreams.empty()) {
    std::string text;
    if (read_file_if_exists("/etc/resolv.conf", text)) options_.upstreams = upstreams_from_resolv_conf(text);
  }
  for (auto& u : options_.upstreams) upstream_addrs_.push_back(parse_endpoint(u));
  upstream_ = new uv_udp_t;
  uv_udp_init(loop_, upstream_);
  upstream_->data = this;
  sockaddr_in any{};
  any.sin_family = AF_INET;
  if (int err = uv_udp_bind(upstream_, reinterpret_cast<sockaddr*>(&any), 0); err < 0)
    throw Error(std::string("cannot bind the DNS forwarding socket: ") + uv_strerror(err));
  uv_udp_recv_start(upstream_, alloc_buffer, DnsServerInternals::on_upstream);
  sweep_ = new uv_timer_t;
  uv_timer_init(loop_, sweep_);
  sweep_->data = this;
  uv_timer_start(sweep_, DnsServerInternals::on_sweep, 250, 250);
}

DnsServer::~DnsServer() {
  for (auto [id, c] : std::map<uint64_t, TcpConnection*>(connections_)) DnsServerInternals::close_connection(c);
  for (auto [id, l] : std::map<int, Listener*>(listeners_)) detach(id);
  uv_close(reinterpret_cast<uv_handle_t*>(upstream_), [](uv_handle_t* h) { delete reinterpret_cast<uv_udp_t*>(h); });
  uv_close(reinterpret_cast<uv_handle_t*>(sweep_), [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
}

int DnsServer::add_listener(int udp_fd, int tcp_fd, std::vector<std::string> networks, int netns_fd,
                            std::vector<std::string> upstreams) {
  std::vector<sockaddr_storage> upstream_addrs;
  try {
    for (auto& u : upstreams) upstream_addrs.push_back(parse_endpoint(u));
  } catch (...) {
    ::close(udp_fd);
    ::close(tcp_fd);
    if (netns_fd >= 0) ::close(netns_fd);
    throw;
  }
  auto* l = new Listener{this, next_listener_id_++, std::move(networks), {}, {}, 0, UniqueFd(netns_fd), 0, 0,
                         std::move(upstream_addrs)};
  l->udp_port = bound_port(udp_fd);
  l->tcp_port = bound_port(tcp_fd);
  uv_udp_init(loop_, &l->udp);
  uv_tcp_init(loop_, &l->tcp);
  l->udp.data = l;
  l->tcp.data = l;
  l->open_handles = 2;
  int err = uv_udp_open(&l->udp, udp_fd);
  if (err == 0) err = uv_tcp_open(&l->tcp, tcp_fd);
  if (err == 0) err = uv_udp_recv_start(&l->udp, alloc_buffer, DnsServerInternals::on_udp_query);
  if (err == 0) err = uv_listen(reinterpret_cast<uv_stream_t*>(&l->tcp), 128, DnsServerInternals::on_tcp_connection);
  listeners_[l->id] = l;
  if (err != 0) {
    int id = l->id;
    detach(id);
    throw Error(std::string("cannot serve DNS: ") + uv_strerror(err));
  }
  return l->id;
}

int DnsServer::listen_here(const std::string& address, uint16_t port, std::vector<std::string> networks,
                           std::vector<std::string> upstreams) {
  UniqueFd udp = bound_socket(SOCK_DGRAM, address, port);
  UniqueFd tcp = bound_socket(SOCK_STREAM, address, port);
  // The handles own the fds from here on.
  return add_listener(udp.release(), tcp.release(), std::move(networks), -1, std::move(upstreams));
}

int DnsServer::attach_netns(int netns_fd, std::vector<std::string> networks, std::vector<std::string> upstreams) {
  UniqueFd udp, tcp;
  UniqueFd netns(::fcntl(netns_fd, F_DUPFD_CLOEXEC, 0));
  if (!netns) throw_errno("dup netns fd");
  in_netns(netns_fd, [&] {
    udp = bound_socket(SOCK_DGRAM, "127.0.0.11", 0);
    tcp = bound_socket(SOCK_STREAM, "127.0.0.11", 0);
    Nft nft;  // created here, so its netlink socket is in the container's netns
    nft.run(dns_dnat_rules(bound_port(udp.get()), bound_port(tcp.get())));
  });
  return add_listener(udp.release(), tcp.release(), std::move(networks), netns.release(), std::move(upstreams));
}

void DnsServer::set_networks(int id, std::vector<std::string> networks) {
  auto it = listeners_.find(id);
  if (it != listeners_.end()) it->second->networks = std::move(networks);
}

void DnsServer::detach(int id) {
  auto it = listeners_.find(id);
  if (it == listeners_.end()) return;
  Listener* l = it->second;
  listeners_.erase(it);
  if (l->netns) {
    try {
      in_netns(l->netns.get(), [] {
        Nft nft;
        nft.try_run("add table ip berth-dns\ndelete table ip berth-dns\n");
      });
    } catch (const std::exception& e) {
      spdlog::debug("dns: cannot clean the container's DNS table: {}", e.what());
    }
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&l->udp), DnsServerInternals::on_listener_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&l->tcp), DnsServerInternals::on_listener_closed);
}

uint16_t DnsServer::udp_port_of(int id) const { return listeners_.at(id)->udp_port; }
uint16_t DnsServer::tcp_port_of(int id) const { return listeners_.at(id)->tcp_port; }

void DnsServer::handle_query(Listener& from, const uint8_t* data, size_t size, const sockaddr* peer,
                             uint64_t tcp_conn) {
  auto decision = handle_dns_query(data, size, names_, from.networks, rotation_++, tcp_conn != 0);
  sockaddr_storage peer_copy{};
  std::memcpy(&peer_copy, peer, peer->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_storage));
  if (decision.reply) {
    if (!decision.reply->empty()) send_reply(from.id, peer_copy, tcp_conn, std::move(*decision.reply));
    return;
  }
  forward(from, data, size, peer, tcp_conn);
}

void DnsServer::forward(Listener& from, const uint8_t* data, size_t size, const sockaddr* peer, uint64_t tcp_conn) {
  sockaddr_storage peer_copy{};
  std::memcpy(&peer_copy, peer, peer->sa_family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_storage));
  const auto& upstreams = from.upstreams.empty() ? upstream_addrs_ : from.upstreams;
  if (upstreams.empty() || pending_.size() >= 60000) {
    send_reply(from.id, peer_copy, tcp_conn, dns_servfail(data, size));
    return;
  }
  // Queries from many containers share one upstream socket, so each gets a
  // fresh id; the original is restored on the way back.
  uint16_t id = next_upstream_id_;
  while (pending_.count(id) || id == 0) ++id;
  next_upstream_id_ = static_cast<uint16_t>(id + 1);
  std::vector<uint8_t> query(data, data + size);
  uint16_t original = static_cast<uint16_t>((query[0] << 8) | query[1]);
  query[0] = static_cast<uint8_t>(id >> 8);
  query[1] = static_cast<uint8_t>(id & 0xff);
  auto& p = pending_[id] = Pending{original, now_ms(loop_) + options_.upstream_timeout_ms, from.id, peer_copy,
                                   tcp_conn, std::move(query), upstreams, 0};
  send_upstream(p);
}

void DnsServer::send_upstream(Pending& p) {
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(p.query.data()), static_cast<unsigned>(p.query.size()));
  uv_udp_try_send(upstream_, &buf, 1, reinterpret_cast<const sockaddr*>(&p.upstreams[p.attempt]));
}

static bool same_endpoint(const sockaddr_storage& a, const sockaddr* b) {
  if (!b || b->sa_family != AF_INET || a.ss_family != AF_INET) return false;
  auto* x = reinterpret_cast<const sockaddr_in*>(&a);
  auto* y = reinterpret_cast<const sockaddr_in*>(b);
  return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
}

void DnsServer::on_upstream_reply(const uint8_t* data, size_t size, const sockaddr* from) {
  if (size < 12) return;
  uint16_t id = static_cast<uint16_t>((data[0] << 8) | data[1]);
  auto it = pending_.find(id);
  if (it == pending_.end()) return;  // late
  // Only an upstream that was asked may answer (a local process could
  // otherwise guess ids and inject answers).
  bool asked = false;
  for (size_t i = 0; i <= it->second.attempt; ++i) asked = asked || same_endpoint(it->second.upstreams[i], from);
  if (!asked) return;
  Pending p = std::move(it->second);
  pending_.erase(it);
  std::vector<uint8_t> reply(data, data + size);
  reply[0] = static_cast<uint8_t>(p.original_id >> 8);
  reply[1] = static_cast<uint8_t>(p.original_id & 0xff);
  send_reply(p.listener_id, p.peer, p.tcp_conn, std::move(reply));
}

void DnsServer::expire_pending() {
  uint64_t now = now_ms(loop_);
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline_ms > now) {
      ++it;
      continue;
    }
    if (it->second.attempt + 1 < it->second.upstreams.size()) {
      ++it->second.attempt;
      it->second.deadline_ms = now + options_.upstream_timeout_ms;
      send_upstream(it->second);
      ++it;
      continue;
    }
    Pending p = std::move(it->second);
    it = pending_.erase(it);
    p.query[0] = static_cast<uint8_t>(p.original_id >> 8);
    p.query[1] = static_cast<uint8_t>(p.original_id & 0xff);
    send_reply(p.listener_id, p.peer, p.tcp_conn, dns_servfail(p.query.data(), p.query.size()));
  }
}

void DnsServer::send_reply(int listener_id, const sockaddr_storage& peer, uint64_t tcp_conn,
                           std::vector<uint8_t> reply) {
  if (tcp_conn) {
    auto it = connections_.find(tcp_conn);
    if (it == connections_.end()) return;  // the asker hung up
    struct Write {
      uv_write_t req;
      std::vector<uint8_t> data;
    };
    // DNS over TCP: the 16-bit length, then the message.
    auto* w = new Write{{}, std::vector<uint8_t>(2 + reply.size())};
    w->data[0] = static_cast<uint8_t>(reply.size() >> 8);
    w->data[1] = static_cast<uint8_t>(reply.size() & 0xff);
    std::copy(reply.begin(), reply.end(), w->data.begin() + 2);
    uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(w->data.data()), static_cast<unsigned>(w->data.size()));
    w->req.data = w;
    if (uv_write(&w->req, reinterpret_cast<uv_stream_t*>(&it->second->handle), &buf, 1,
                 [](uv_write_t* req, int) { delete static_cast<Write*>(req->data); }) != 0)
      delete w;
    return;
  }
  auto it = listeners_.find(listener_id);
  if (it == listeners_.end()) return;  // the container went away meanwhile
  uv_buf_t buf = uv_buf_init(reinterpret_cast<char*>(reply.data()), static_cast<unsigned>(reply.size()));
  int sent = uv_udp_try_send(&it->second->udp, &buf, 1, reinterpret_cast<const sockaddr*>(&peer));
  if (sent == UV_EAGAIN) {
    struct Send {
      uv_udp_send_t req;
      std::vector<uint8_t> data;
    };
    auto* s = new Send{{}, std::move(reply)};
    s->req.data = s;
    uv_buf_t again = uv_buf_init(reinterpret_cast<char*>(s->data.data()), static_cast<unsigned>(s->data.size()));
    if (uv_udp_send(&s->req, &it->second->udp, &again, 1, reinterpret_cast<const sockaddr*>(&peer),
                    [](uv_udp_send_t* req, int) { delete static_cast<Send*>(req->data); }) != 0)
      delete s;
  }
}

}  // namespace berth::net
