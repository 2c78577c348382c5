#include "tests/support/registry.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace berth::test {

bool have_docker_registry() { return ::access("/usr/bin/docker-registry", X_OK) == 0; }

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    throw std::runtime_error("cannot find a free port");
  int port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

// True when something answers HTTP on 127.0.0.1:port at /v2/.
static bool answers(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = false;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    const char req[] = "GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::write(fd, req, sizeof req - 1) == static_cast<ssize_t>(sizeof req - 1)) {
      char buf[16] = {};
      ok = ::read(fd, buf, 5) == 5 && std::string(buf, 5) == "HTTP/";
    }
  }
  ::close(fd);
  return ok;
}

RegistryServer::RegistryServer(const std::string& htpasswd_file) {
  int port = free_port();
  address_ = "127.0.0.1:" + std::to_string(port);
  log_path_ = dir_.path() + "/registry.log";
  std::string config = "version: 0.1\n"
                       "log:\n  level: info\n  accesslog:\n    disabled: false\n"
                       "storage:\n  filesystem:\n    rootdirectory: " + dir_.path() + "/data\n"
                       "  delete:\n    enabled: true\n"
                       "http:\n  addr: " + address_ + "\n";
  if (!htpasswd_file.empty()) config += "auth:\n  htpasswd:\n    realm: berth-test\n    path: " + htpasswd_file + "\n";
  std::string config_path = dir_.write("config.yml", config);
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    ::execl("/usr/bin/docker-registry", "docker-registry", "serve", config_path.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!answers(port)) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("docker-registry exited at startup:\n" + log());
    }
    if (std::chrono::steady_clock::now() > deadline) throw std::runtime_error("docker-registry did not answer on " + address_ + ":\n" + log());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

RegistryServer::~RegistryServer() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    int status = 0;
    while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
}

std::string RegistryServer::log() const {
  std::ifstream in(log_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int RegistryServer::blob_gets() const {
  std::istringstream in(log());
  std::string line;
  int n = 0;
  while (std::getline(in, line))
    if (line.find("\"GET /v2/") != std::string::npos && line.find("/blobs/sha256:") != std::string::npos) ++n;
  return n;
}

}  // namespace berth::test
