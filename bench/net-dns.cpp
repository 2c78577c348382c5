// DNS bench: net::DnsServer on 127.0.0.1 (its own libuv loop on one
// thread), asked for A records of registered names over UDP.
//   latency: one query at a time, N queries -> p50/p99/max in µs
//   throughput: a window of W queries in flight for S seconds -> queries/s
// Prints one "key value" line per number and checks the targets
// (p99 < 1 ms, >= 20k q/s); exit 1 when a target is missed.
//
// Usage: bench_net_dns [queries=20000] [seconds=3] [window=32]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "net/dns.h"

namespace {

using Clock = std::chrono::steady_clock;

// A query for `name` IN A with id `id`, recursion desired.
std::vector<uint8_t> query(uint16_t id, const std::string& name) {
  std::vector<uint8_t> q = {static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id & 255), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string::npos) dot = name.size();
    q.push_back(static_cast<uint8_t>(dot - start));
    q.insert(q.end(), name.begin() + static_cast<long>(start), name.begin() + static_cast<long>(dot));
    start = dot + 1;
  }
  q.insert(q.end(), {0, 0, 1, 0, 1});
  return q;
}

// True when `r` answers `id` with NOERROR and one or more answers.
bool good_answer(const uint8_t* r, ssize_t n, uint16_t id) {
  return n >= 12 && ((r[0] << 8) | r[1]) == id && (r[2] & 0x80) && (r[3] & 0x0f) == 0 && ((r[6] << 8) | r[7]) > 0;
}

}  // namespace

int main(int argc, char** argv) {
  int queries = argc > 1 ? std::atoi(argv[1]) : 20000;
  double seconds = argc > 2 ? std::atof(argv[2]) : 3;
  int window = argc > 3 ? std::atoi(argv[3]) : 32;

  uv_loop_t loop;
  uv_loop_init(&loop);
  auto server = std::make_unique<berth::net::DnsServer>(&loop, berth::net::DnsServerOptions{{"127.0.0.1:9"}, 200});
  // 50 containers' names on the network, as a mid-size app would have.
  const std::string net = "benchnet";
  for (int i = 0; i < 50; ++i)
    server->names().add(net, "svc" + std::to_string(i), berth::net::Ipv4{static_cast<uint32_t>(0x0a000002 + i)});
  int id = server->listen_here("127.0.0.1", 0, {net});
  uint16_t port = server->udp_port_of(id);
  uv_async_t stop;
  uv_async_init(&loop, &stop, [](uv_async_t* h) { uv_stop(h->loop); });
  std::thread loop_thread([&] { uv_run(&loop, UV_RUN_DEFAULT); });

  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
  uint8_t buf[1500];
  int failures = 0;

  // Latency: one in flight.
  std::vector<double> us;
  us.reserve(static_cast<size_t>(queries));
  for (int i = 0; i < queries; ++i) {
    uint16_t qid = static_cast<uint16_t>(i);
    auto q = query(qid, "svc" + std::to_string(i % 50));
    auto t0 = Clock::now();
    ::send(fd, q.data(), q.size(), 0);
    pollfd p{fd, POLLIN, 0};
    ssize_t n = ::poll(&p, 1, 1000) == 1 ? ::recv(fd, buf, sizeof buf, 0) : -1;
    auto t1 = Clock::now();
    if (!good_answer(buf, n, qid)) {
      ++failures;
      continue;
    }
    us.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
  }
  std::sort(us.begin(), us.end());
  auto pct = [&](double p) { return us.empty() ? 0.0 : us[std::min(us.size() - 1, static_cast<size_t>(p * us.size()))]; };

  // Throughput: `window` in flight for `seconds`.
  long answered = 0;
  uint16_t next = 0;
  int in_flight = 0;
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (Clock::now() < end) {
    while (in_flight < window) {
      auto q = query(next, "svc" + std::to_string(next % 50));
      ++next;
      ::send(fd, q.data(), q.size(), 0);
      ++in_flight;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 1000) != 1) {
      failures += in_flight;  // lost: start a fresh window
      in_flight = 0;
      continue;
    }
    while (true) {
      ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n < 0) break;
      --in_flight;
      if (n >= 12 && (buf[3] & 0x0f) == 0) ++answered;
      else ++failures;
    }
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  double qps = answered / elapsed;

  uv_async_send(&stop);
  loop_thread.join();
  server.reset();
  uv_close(reinterpret_cast<uv_handle_t*>(&stop), nullptr);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  ::close(fd);

  std::printf("dns_latency_queries %zu\n", us.size());
  std::printf("dns_latency_p50_us %.1f\n", pct(0.50));
  std::printf("dns_latency_p99_us %.1f\n", pct(0.99));
  std::printf("dns_latency_max_us %.1f\n", us.empty() ? 0.0 : us.back());
  std::printf("dns_throughput_qps %.0f\n", qps);
  std::printf("dns_failures %d\n", failures);
  bool ok = pct(0.99) < 1000 && qps >= 20000 && failures == 0;
  std::printf("dns_targets %s (p99 < 1000 us, >= 20000 q/s, no failures)\n", ok ? "met" : "MISSED");
  return ok ? 0 : 1;
}
