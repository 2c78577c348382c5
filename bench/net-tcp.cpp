// TCP sender for bench/net: writes zeros to HOST:PORT for SECONDS and
// prints the rate in MB/s (bytes the kernel accepted, after a short
// warm-up). The receiver is whatever listens there (busybox nc in a
// container). Exit 1 when it cannot connect (after retrying ~5 s).
//
// Usage: bench_net_tcp HOST PORT [seconds=3]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s HOST PORT [seconds]\n", argv[0]);
    return 2;
  }
  double seconds = argc > 3 ? std::atof(argv[3]) : 3;
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(static_cast<uint16_t>(std::atoi(argv[2])));
  if (::inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) {
    std::fprintf(stderr, "bad address %s\n", argv[1]);
    return 2;
  }
  int fd = -1;
  for (int attempt = 0; attempt < 50; ++attempt) {
    fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) == 0) break;
    ::close(fd);
    fd = -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (fd < 0) {
    std::fprintf(stderr, "cannot connect to %s:%s\n", argv[1], argv[2]);
    return 1;
  }
  std::vector<char> buf(256 * 1024, 0);
  using Clock = std::chrono::steady_clock;
  auto warm = Clock::now() + std::chrono::milliseconds(300);
  while (Clock::now() < warm)
    if (::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL) < 0) return 1;
  auto start = Clock::now();
  auto end = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  long long bytes = 0;
  while (Clock::now() < end) {
    ssize_t n = ::send(fd, buf.data(), buf.size(), MSG_NOSIGNAL);
    if (n < 0) {
      std::perror("send");
      return 1;
    }
    bytes += n;
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  ::close(fd);
  std::printf("%.1f\n", bytes / elapsed / 1e6);
  return 0;
}
