// DNS bench: berth's embedded DNS server asked for A records over UDP.
//   latency: one query at a time, N queries -> p50/p99/max in µs
//   throughput: a window of W queries in flight for S seconds -> queries/s
// Prints one "key value" line per number and checks the targets
// (p99 < 1 ms, >= 20k q/s); exit 1 when a target is missed.
//
// Two ways to run it:
//   bench_net_dns [queries=20000] [seconds=3] [window=32]
//     an in-process net::DnsServer on 127.0.0.1 (its own libuv loop on one
//     thread), with 50 registered names: the server alone.
//   bench_net_dns --netns PATH --name NAME [--server IP[:PORT]] [queries seconds window]
//     from inside a container: the client joins the network namespace PATH
//     (a container's <run_root>/netns/<id>) and asks the server there
//     (default 127.0.0.11:53, answered by `berth serve`) for NAME.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
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
  // Flags first, then the positional numbers.
  std::string netns, server_addr = "127.0.0.11:53", name;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--netns" || a == "--server" || a == "--name") && i + 1 < argc) {
      (a == "--netns" ? netns : a == "--server" ? server_addr : name) = argv[++i];
    } else if (a.rfind("--", 0) == 0) {
      std::fprintf(stderr, "bench_net_dns: unknown flag %s\n", a.c_str());
      return 2;
    } else {
      positional.push_back(a);
    }
  }
  int queries = positional.size() > 0 ? std::atoi(positional[0].c_str()) : 20000;
  double seconds = positional.size() > 1 ? std::atof(positional[1].c_str()) : 3;
  int window = positional.size() > 2 ? std::atoi(positional[2].c_str()) : 32;

  uv_loop_t loop;
  uv_async_t stop;
  std::unique_ptr<berth::net::DnsServer> server;
  std::thread loop_thread;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  std::vector<std::string> names;
  if (netns.empty()) {
    uv_loop_init(&loop);
    server = std::make_unique<berth::net::DnsServer>(&loop, berth::net::DnsServerOptions{{"127.0.0.1:9"}, 200});
    // 50 containers' names on the network, as a mid-size app would have.
    const std::string net = "benchnet";
    for (int i = 0; i < 50; ++i) {
      names.push_back("svc" + std::to_string(i));
      server->names().add(net, names.back(), berth::net::Ipv4{static_cast<uint32_t>(0x0a000002 + i)});
    }
    int id = server->listen_here("127.0.0.1", 0, {net});
    to.sin_port = htons(server->udp_port_of(id));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    uv_async_init(&loop, &stop, [](uv_async_t* h) { uv_stop(h->loop); });
    loop_thread = std::thread([&] { uv_run(&loop, UV_RUN_DEFAULT); });
  } else {
    if (name.empty()) {
      std::fprintf(stderr, "bench_net_dns: --netns needs --name NAME to ask for\n");
      return 2;
    }
    int ns = ::open(netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (ns < 0 || ::setns(ns, CLONE_NEWNET) != 0) {
      std::perror(("bench_net_dns: cannot join the network namespace " + netns).c_str());
      return 2;
    }
    ::close(ns);
    auto colon = server_addr.find(':');
    to.sin_port = htons(colon == std::string::npos ? 53 : static_cast<uint16_t>(std::atoi(server_addr.c_str() + colon + 1)));
    if (::inet_pton(AF_INET, server_addr.substr(0, colon).c_str(), &to.sin_addr) != 1) {
      std::fprintf(stderr, "bench_net_dns: bad --server %s (want IP[:PORT])\n", server_addr.c_str());
      return 2;
    }
    names.push_back(name);
  }

  int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to);
  uint8_t buf[1500];
  int failures = 0;

  // Latency: one in flight.
  std::vector<double> us;
  us.reserve(static_cast<size_t>(queries));
  for (int i = 0; i < queries; ++i) {
    uint16_t qid = static_cast<uint16_t>(i);
    auto q = query(qid, names[static_cast<size_t>(i) % names.size()]);
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
      auto q = query(next, names[next % names.size()]);
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

  if (server) {
    uv_async_send(&stop);
    loop_thread.join();
    server.reset();
    uv_close(reinterpret_cast<uv_handle_t*>(&stop), nullptr);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
  }
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
