// A `berth serve` of the test's own: started in the background on the
// test's --root/--run-root with its output in a log file, stopped (and
// reaped) at TearDown after the containers are gone. Also plain HTTP over
// its socket and the events it kept.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/integration/container_fixture.h"

namespace berth::test {

inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One HTTP/1.1 request over a unix socket; returns the whole response text.
inline std::string http_unix(const std::string& socket, const std::string& target, const std::string& method = "GET",
                             const std::string& body = {}) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return "";
  }
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n";
  if (!body.empty()) req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n" + body;
  if (::write(fd, req.data(), req.size()) < 0) {
    ::close(fd);
    return "";
  }
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

inline bool alive(pid_t pid) {
  std::string stat;
  if (!read_file_if_exists("/proc/" + std::to_string(pid) + "/stat", stat)) return false;
  auto rp = stat.rfind(')');
  return rp != std::string::npos && rp + 2 < stat.size() && stat[rp + 2] != 'Z';
}

class ServeFixture : public ContainerTest {
 protected:
  void SetUp() override {
    ContainerTest::SetUp();
    if (IsSkipped()) return;
    socket_ = run_root_ + "/berth.sock";
    log_ = tmp_.path() + "/serve.log";
  }

  void TearDown() override {
    // Containers first (the serve would restart some of them), then serve.
    if (!root_.empty()) {
      stop_serve(SIGKILL);
      ContainerTest::TearDown();
    }
  }

  // Starts `berth serve EXTRA...` in the background; waits until it answers.
  pid_t start_serve(std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{berth_binary(), "--root", root_, "--run-root", run_root_, "serve"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    pid_t pid = ::fork();
    if (pid == 0) {
      int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      int null = ::open("/dev/null", O_RDONLY);
      ::dup2(null, 0);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    serve_pid_ = pid;
    // Ours answers (not a serve the CLI started, which ours takes over from).
    bool up = eventually(
        [&] {
          std::string pidfile;
          read_file_if_exists(run_root_ + "/berth.pid", pidfile);
          return std::atoi(pidfile.c_str()) == pid &&
                 http_unix(socket_, "/_ping").find("\r\n\r\nOK") != std::string::npos;
        },
        10000);
    EXPECT_TRUE(up) << serve_log();
    return pid;
  }

  // Signals our serve and reaps it; returns its wait status (-1 if none).
  int stop_serve(int sig = SIGTERM) {
    if (serve_pid_ <= 0) return -1;
    ::kill(serve_pid_, sig);
    int st = 0;
    ::waitpid(serve_pid_, &st, 0);
    serve_pid_ = 0;
    return st;
  }

  std::string serve_log() {
    std::string s;
    read_file_if_exists(log_, s);
    return s;
  }

  // Every event the daemon kept, as JSON objects.
  std::vector<nlohmann::json> events(const std::vector<std::string>& filters = {}) {
    std::vector<std::string> args{"events", "--json", "--since", "1", "--until",
                                  std::to_string(now_ms() / 1000 + 1)};
    for (auto& f : filters) args.insert(args.end(), {"--filter", f});
    // --until in the future: streams until then.
    auto r = berth(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<nlohmann::json> out;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object()) out.push_back(j);
    }
    return out;
  }

  std::string socket_, log_;
  pid_t serve_pid_ = 0;
};

}  // namespace berth::test
