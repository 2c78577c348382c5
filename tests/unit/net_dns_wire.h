// Test-only DNS helpers, written independently of the server's ldns code so
// the tests do not check the server against itself: a query builder, a
// reply reader, loopback UDP/TCP exchanges, and a fake upstream resolver on
// 127.0.0.1 (the tests never ask a real resolver).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include <atomic>
#include <functional>
#include <memory>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "net/dns.h"

namespace berth::net::testwire {

constexpr uint16_t kTypeA = 1, kTypePTR = 12, kTypeAAAA = 28;

inline std::vector<uint8_t> build_query(uint16_t id, const std::string& name, uint16_t type) {
  std::vector<uint8_t> q = {static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id & 0xff), 0x01, 0x00, 0, 1, 0, 0,
                            0, 0, 0, 0};
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    if (dot > start) {
      q.push_back(static_cast<uint8_t>(dot - start));
      q.insert(q.end(), name.begin() + static_cast<long>(start), name.begin() + static_cast<long>(dot));
    }
    start = dot + 1;
  }
  q.push_back(0);
  q.insert(q.end(), {static_cast<uint8_t>(type >> 8), static_cast<uint8_t>(type & 0xff), 0, 1});
  return q;
}

struct Reply {
  uint16_t id = 0;
  int rcode = -1;
  std::vector<std::string> a;
  std::string ptr;
};

// Reads a (possibly compressed) name at `pos`, advancing pos past it.
inline std::string read_name(const std::vector<uint8_t>& m, size_t& pos) {
  std::string out;
  size_t p = pos;
  bool jumped = false;
  for (int guard = 0; guard < 128; ++guard) {
    if (p >= m.size()) throw std::runtime_error("truncated name");
    uint8_t len = m[p];
    if ((len & 0xc0) == 0xc0) {
      if (!jumped) pos = p + 2;
      p = static_cast<size_t>(((len & 0x3f) << 8) | m.at(p + 1));
      jumped = true;
      continue;
    }
    if (len == 0) {
      if (!jumped) pos = p + 1;
      return out.empty() ? "." : out;
    }
    out.append(reinterpret_cast<const char*>(&m.at(p + 1)), len);
    out += '.';
    p += 1 + len;
  }
  throw std::runtime_error("name loop");
}

inline Reply parse_reply(const std::vector<uint8_t>& m) {
  if (m.size() < 12) throw std::runtime_error("short reply");
  Reply r;
  r.id = static_cast<uint16_t>((m[0] << 8) | m[1]);
  r.rcode = m[3] & 0x0f;
  int qd = (m[4] << 8) | m[5], an = (m[6] << 8) | m[7];
  size_t pos = 12;
  for (int i = 0; i < qd; ++i) {
    read_name(m, pos);
    pos += 4;
  }
  for (int i = 0; i < an; ++i) {
    read_name(m, pos);
    uint16_t type = static_cast<uint16_t>((m.at(pos) << 8) | m.at(pos + 1));
    uint16_t rdlen = static_cast<uint16_t>((m.at(pos + 8) << 8) | m.at(pos + 9));
    pos += 10;
    if (type == kTypeA && rdlen == 4) {
      r.a.push_back(std::to_string(m.at(pos)) + "." + std::to_string(m[pos + 1]) + "." + std::to_string(m[pos + 2]) +
                    "." + std::to_string(m[pos + 3]));
    } else if (type == kTypePTR) {
      size_t p = pos;
      r.ptr = read_name(m, p);
    }
    pos += rdlen;
  }
  return r;
}

inline sockaddr_in loopback(uint16_t port) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(port);
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return sin;
}

inline std::vector<uint8_t> udp_exchange(uint16_t port, const std::vector<uint8_t>& query, int timeout_ms = 2000) {
  berth::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  auto to = loopback(port);
  ::sendto(fd.get(), query.data(), query.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  pollfd p{fd.get(), POLLIN, 0};
  if (::poll(&p, 1, timeout_ms) != 1) throw std::runtime_error("no DNS reply over UDP");
  std::vector<uint8_t> buf(4096);
  ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
  buf.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return buf;
}

inline std::vector<uint8_t> tcp_exchange(uint16_t port, const std::vector<uint8_t>& query) {
  berth::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto to = loopback(port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) throw std::runtime_error("connect");
  std::vector<uint8_t> framed = {static_cast<uint8_t>(query.size() >> 8), static_cast<uint8_t>(query.size() & 0xff)};
  framed.insert(framed.end(), query.begin(), query.end());
  if (::write(fd.get(), framed.data(), framed.size()) != static_cast<ssize_t>(framed.size()))
    throw std::runtime_error("write");
  std::vector<uint8_t> in;
  uint8_t buf[4096];
  while (in.size() < 2 || in.size() < 2u + ((in[0] << 8) | in[1])) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 2000) != 1) throw std::runtime_error("no DNS reply over TCP");
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n <= 0) throw std::runtime_error("TCP DNS connection closed");
    in.insert(in.end(), buf, buf + n);
  }
  return {in.begin() + 2, in.end()};
}

// Answers "upstream.test" with 10.99.0.1 and NXDOMAIN for anything else.
class FakeUpstream {
 public:
  FakeUpstream() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    auto sin = loopback(0);
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) throw std::runtime_error("bind");
    socklen_t len = sizeof sin;
    ::getsockname(fd_.get(), reinterpret_cast<sockaddr*>(&sin), &len);
    port_ = ntohs(sin.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeUpstream() {
    stop_ = true;
    thread_.join();
  }
  uint16_t port() const { return port_; }
  int queries() const { return queries_; }

 private:
  void serve() {
    while (!stop_) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) != 1) continue;
      std::vector<uint8_t> m(4096);
      sockaddr_in from{};
      socklen_t len = sizeof from;
      ssize_t n = ::recvfrom(fd_.get(), m.data(), m.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
      if (n < 12) continue;
      m.resize(static_cast<size_t>(n));
      ++queries_;
      size_t pos = 12;
      std::string name = read_name(m, pos);
      m.resize(pos + 4);  // header + question
      m[2] |= 0x80;       // QR
      m[3] = 0x80;        // RA, NOERROR
      if (name == "upstream.test.") {
        m[7] = 1;  // one answer, pointing back at the question name
        m.insert(m.end(), {0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 10, 99, 0, 1});
      } else {
        m[3] |= 3;  // NXDOMAIN
      }
      ::sendto(fd_.get(), m.data(), m.size(), 0, reinterpret_cast<sockaddr*>(&from), len);
    }
  }
  berth::UniqueFd fd_;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> queries_{0};
  std::thread thread_;
};

// A libuv loop on its own thread running a DnsServer; `setup` runs before
// the loop starts (DnsServer is used from its loop thread only). Stopped
// and joined at scope exit.
class ServerThread {
 public:
  ServerThread(std::vector<std::string> upstreams, std::function<void(DnsServer&)> setup) {
    uv_loop_init(&loop_);
    server_ = std::make_unique<DnsServer>(&loop_, DnsServerOptions{std::move(upstreams), 500});
    setup(*server_);
    uv_async_init(&loop_, &stop_, [](uv_async_t* a) {
      auto* self = static_cast<ServerThread*>(a->data);
      self->server_.reset();
      uv_close(reinterpret_cast<uv_handle_t*>(a), nullptr);
    });
    stop_.data = this;
    thread_ = std::thread([this] { uv_run(&loop_, UV_RUN_DEFAULT); });
  }
  ~ServerThread() {
    uv_async_send(&stop_);
    thread_.join();
    uv_loop_close(&loop_);
  }

 private:
  uv_loop_t loop_;
  uv_async_t stop_;
  std::unique_ptr<DnsServer> server_;
  std::thread thread_;
};

}  // namespace berth::net::testwire
