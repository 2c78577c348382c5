#include "tests/support/dockerd.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace berth::test {

namespace {

bool executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

std::string find_in_path(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/sbin:/usr/bin:/sbin:/bin");
  for (std::string dir; std::getline(ss, dir, ':');)
    if (executable(dir + "/" + name)) return dir + "/" + name;
  for (const char* dir : {"/usr/sbin", "/sbin"})
    if (executable(std::string(dir) + "/" + name)) return std::string(dir) + "/" + name;
  return "";
}

// Mount points at or below dir, deepest first.
std::vector<std::string> mounts_under(const std::string& dir) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string id, parent, devs, root, mount_point;
    fields >> id >> parent >> devs >> root >> mount_point;
    if (mount_point == dir || mount_point.rfind(dir + "/", 0) == 0) out.push_back(mount_point);
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.size() > b.size(); });
  return out;
}

}  // namespace

std::string PrivateDockerd::docker_client() {
  // Prefer the client packaged with the engine: same API version.
  if (executable("/usr/bin/docker")) return "/usr/bin/docker";
  return find_in_path("docker");
}

std::string PrivateDockerd::unavailable_reason() {
  if (find_in_path("dockerd").empty()) return "dockerd is not installed (Debian package docker.io)";
  if (docker_client().empty()) return "the docker client is not installed (Debian package docker.io)";
  if (find_in_path("containerd").empty()) return "containerd is not installed (Debian package containerd)";
  if (::geteuid() != 0) return "dockerd needs root";
  return "";
}

PrivateDockerd::PrivateDockerd(int timeout_seconds, const std::string& data_parent) {
  // Under /tmp: unix socket paths must stay short (108 bytes).
  char tmpl[] = "/tmp/berth-dockerd-XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  socket_ = dir_ + "/docker.sock";
  data_root_ = dir_ + "/data";
  if (!data_parent.empty()) {
    std::string data_tmpl = data_parent + "/dockerd-data-XXXXXX";
    if (!::mkdtemp(data_tmpl.data())) throw std::runtime_error("mkdtemp under " + data_parent + " failed");
    data_root_ = data_tmpl;
  }
  std::string dockerd = find_in_path("dockerd");
  std::vector<std::string> args = {dockerd,
                                   "--data-root=" + data_root_,
                                   "--exec-root=" + dir_ + "/exec",
                                   "--pidfile=" + dir_ + "/docker.pid",
                                   "--host=unix://" + socket_,
                                   "--bridge=none",
                                   "--iptables=false",
                                   "--ip6tables=false",
                                   "--ip-masq=false",
                                   "--userland-proxy=false",
                                   "--log-level=warn"};
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::setsid();  // its own process group: the destructor can stop dockerd and its containerd together
    int log = ::open((dir_ + "/dockerd.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(log, 1);
    ::dup2(log, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      std::string tail = log();
      stop();
      throw std::runtime_error("dockerd exited during startup:\n" + tail);
    }
    struct stat st {};
    if (::stat(socket_.c_str(), &st) == 0 && docker({"version"}).exit_code == 0) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::string tail = log();
  stop();
  throw std::runtime_error("dockerd did not answer within " + std::to_string(timeout_seconds) + "s:\n" + tail);
}

PrivateDockerd::~PrivateDockerd() { stop(); }

void PrivateDockerd::stop() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    int status = 0;
    bool exited = false;
    for (int i = 0; i < 300 && !exited; ++i) {  // dockerd stops its containerd first; give it 30s
      if (::waitpid(pid_, &status, WNOHANG) == pid_) exited = true;
      else std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!exited) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
    // Anything of its group still alive (containerd, shims) goes too.
    ::kill(-pid_, SIGKILL);
    pid_ = -1;
  }
  if (dir_.empty()) return;
  std::error_code ec;
  if (data_root_.rfind(dir_ + "/", 0) != 0) {
    for (auto& m : mounts_under(data_root_)) ::umount2(m.c_str(), MNT_DETACH);
    std::filesystem::remove_all(data_root_, ec);
  }
  for (auto& m : mounts_under(dir_)) ::umount2(m.c_str(), MNT_DETACH);
  std::filesystem::remove_all(dir_, ec);
  dir_.clear();
}

Result PrivateDockerd::docker(const std::vector<std::string>& args, const std::string& input) const {
  std::vector<std::string> argv = {docker_client(), "--host", "unix://" + socket_};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, input, {"DOCKER_CONFIG=" + dir_ + "/client-config"});
}

std::string PrivateDockerd::log() const {
  std::ifstream in(dir_ + "/dockerd.log");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string all = ss.str();
  return all.size() > 4000 ? all.substr(all.size() - 4000) : all;
}

}  // namespace berth::test
