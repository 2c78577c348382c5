#include "tests/support/run.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "base/fs.h"

extern char** environ;

namespace berth::test {

const std::string& berth_binary() {
  static const std::string path = BERTH_BINARY;
  return path;
}

std::string tests_dir() { return BERTH_TESTS_DIR; }

Result run(const std::vector<std::string>& argv, const std::string& input,
           const std::vector<std::string>& env, const std::string& cwd) {
  std::map<std::string, std::string> envmap;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    envmap[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  for (auto& kv : env) {
    auto eq = kv.find('=');
    envmap[kv.substr(0, eq)] = eq == std::string::npos ? "" : kv.substr(eq + 1);
  }
  std::vector<std::string> envs;
  for (auto& [k, v] : envmap) envs.push_back(k + "=" + v);
  std::vector<char*> envp, args;
  for (auto& s : envs) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (auto& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);

  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC))
    throw std::runtime_error("pipe failed");
  pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    execve(args[0], args.data(), envp.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  Result r;
  size_t written = 0;
  int in_fd = in[1];
  if (input.empty()) {
    close(in_fd);
    in_fd = -1;
  } else {
    fcntl(in_fd, F_SETFL, O_NONBLOCK);
  }
  int out_fd = out[0], err_fd = err[0];
  signal(SIGPIPE, SIG_IGN);
  while (out_fd >= 0 || err_fd >= 0) {
    pollfd fds[3];
    int n = 0;
    if (out_fd >= 0) fds[n++] = {out_fd, POLLIN, 0};
    if (err_fd >= 0) fds[n++] = {err_fd, POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == in_fd) {
        ssize_t w = write(in_fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 || written == input.size()) {
          close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      char buf[65536];
      ssize_t got = read(fds[i].fd, buf, sizeof buf);
      std::string& dst = fds[i].fd == out_fd ? r.out : r.err;
      if (got > 0) {
        dst.append(buf, static_cast<size_t>(got));
      } else {
        close(fds[i].fd);
        (fds[i].fd == out_fd ? out_fd : err_fd) = -1;
      }
    }
  }
  if (in_fd >= 0) close(in_fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

Result run_berth(const std::vector<std::string>& args, const std::string& input,
             const std::vector<std::string>& env, const std::string& cwd) {
  std::vector<std::string> argv{berth_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, input, env, cwd);
}

TempDir::TempDir() {
  std::string base = std::string(BERTH_TEST_SCRATCH);
  make_dirs(base);
  std::string tmpl = base + "/t.XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed in " + base);
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& rel, const std::string& content) const {
  std::string p = path_join(path_, rel);
  make_dirs(path_dirname(p));
  write_file_atomic(p, content);
  return p;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::string lines_of(const std::string& text, const std::string& needle) {
  std::string out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.find(needle) != std::string::npos) out += line + "\n";
  return out;
}

std::string slurp(const std::string& path) {
  std::string out;
  read_file_if_exists(path, out);
  return out;
}

namespace {
const char* const kPidsCgroups = "/sys/fs/cgroup/pids";
}  // namespace

bool have_pids_cgroup() {
  return ::geteuid() == 0 && ::access((std::string(kPidsCgroups) + "/cgroup.procs").c_str(), W_OK) == 0;
}

Result run_berth_with_pids_max(int max, const std::vector<std::string>& args) {
  static int serial = 0;
  std::string group = std::string(kPidsCgroups) + "/berth-test-" + std::to_string(::getpid()) + "-" + std::to_string(serial++);
  if (::mkdir(group.c_str(), 0755) != 0) throw std::runtime_error("cannot make " + group + ": " + std::strerror(errno));
  std::string value = std::to_string(max);
  berth::UniqueFd limit(::open((group + "/pids.max").c_str(), O_WRONLY | O_CLOEXEC));
  if (!limit || ::write(limit.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    ::rmdir(group.c_str());
    throw std::runtime_error("cannot set " + group + "/pids.max");
  }
  std::vector<std::string> argv{"/bin/sh", "-c", "echo $$ > " + group + "/cgroup.procs && exec \"$0\" \"$@\"", berth_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  Result r = run(argv);
  ::rmdir(group.c_str());
  return r;
}

}  // namespace berth::test
