#include "reconciler/process_driver.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <limits>
#include <optional>

#include "base/error.h"

namespace berth::reconciler {

namespace {

// The child's report: "ok" for success, else "error <exit code>\n<message>".
// Error messages are one line or a few; the pipe holds far more.
constexpr std::size_t kMaxMessage = 16 * 1024;

void write_all(int fd, const std::string& s) {
  const char* p = s.data();
  std::size_t left = s.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::optional<Error> parse_report(const std::string& report, int status) {
  if (report == "ok" && WIFEXITED(status) && WEXITSTATUS(status) == 0) return std::nullopt;
  if (report.rfind("error ", 0) == 0) {
    std::size_t nl = report.find('\n');
    int code = std::atoi(report.substr(6, nl == std::string::npos ? std::string::npos : nl - 6).c_str());
    std::string message = nl == std::string::npos ? std::string() : report.substr(nl + 1);
    return Error(message, 0, code ? code : 1);
  }
  if (WIFSIGNALED(status))
    return Error(std::string("the worker process died of signal ") + std::to_string(WTERMSIG(status)) + " (" +
                 strsignal(WTERMSIG(status)) + ")");
  return Error("the worker process exited with status " + std::to_string(WEXITSTATUS(status)) +
               " without reporting a result");
}

}  // namespace

ProcessDriver::ProcessDriver(Driver& inner) : inner_(inner) {}

ProcessDriver::~ProcessDriver() {
  for (auto& c : children_) {
    int st = 0;
    while (::waitpid(c.pid, &st, 0) < 0 && errno == EINTR) {
    }
  }
}

void ProcessDriver::spawn(const std::function<void(Driver&, Completion)>& op, Completion done) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return done(Error("cannot run the operation: pipe", errno));
  UniqueFd read_end(p[0]), write_end(p[1]);
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) return done(Error("cannot run the operation: fork", errno));
  if (pid == 0) {
    read_end.reset();
    // The parent's other children are not this one's business.
    for (auto& c : children_) {
      c.pidfd.reset();
      c.report.reset();
    }
    std::optional<Error> error;
    try {
      op(inner_, [&](std::optional<Error> e) { error = std::move(e); });
    } catch (const Error& e) {
      error = e;
    } catch (const std::exception& e) {
      error = Error(e.what(), 0, 125);
    }
    std::string report = "ok";
    if (error) {
      std::string message = error->what();
      if (message.size() > kMaxMessage) message.resize(kMaxMessage);
      report = "error " + std::to_string(error->exit_code()) + "\n" + message;
    }
    std::cout.flush();
    std::cerr.flush();
    std::fflush(nullptr);
    write_all(write_end.get(), report);
    ::_exit(0);
  }
  write_end.reset();
  // Non-blocking: a process the operation forked (a container's monitor)
  // may hold the write end for a moment, so EOF is not the signal; the
  // child's exit (its pidfd) is.
  ::fcntl(read_end.get(), F_SETFL, O_NONBLOCK);
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    int err = errno;
    ::kill(pid, SIGKILL);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
    }
    return done(Error("cannot watch the operation's process: pidfd_open", err));
  }
  Child c;
  c.pid = pid;
  c.pidfd = UniqueFd(pidfd);
  c.report = std::move(read_end);
  c.done = std::move(done);
  children_.push_back(std::move(c));
}

void ProcessDriver::finish(Child& child) {
  int st = 0;
  while (::waitpid(child.pid, &st, 0) < 0 && errno == EINTR) {
  }
  std::string report;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(child.report.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    report.append(buf, static_cast<std::size_t>(n));
  }
  child.done(parse_report(report, st));
}

bool ProcessDriver::drain() {
  if (children_.empty()) return false;
  std::vector<pollfd> fds;
  fds.reserve(children_.size());
  for (auto& c : children_) fds.push_back(pollfd{c.pidfd.get(), POLLIN, 0});
  while (::poll(fds.data(), fds.size(), -1) < 0) {
    if (errno != EINTR) throw_errno("poll");
  }
  // Take the finished children out before running any completion: a
  // completion starts new operations (spawn appends to children_).
  std::vector<Child> finished;
  std::vector<Child> still;
  for (std::size_t i = 0; i < children_.size(); ++i) {
    if (fds[i].revents) finished.push_back(std::move(children_[i]));
    else still.push_back(std::move(children_[i]));
  }
  children_ = std::move(still);
  for (auto& c : finished) finish(c);
  return true;
}

// Each operation runs in the child before spawn returns: the closures may
// hold references.
void ProcessDriver::create_network(const NetworkSpec& network, Completion done) {
  spawn([&](Driver& d, Completion c) { d.create_network(network, std::move(c)); }, std::move(done));
}

void ProcessDriver::remove_network(const std::string& name, Completion done) {
  spawn([&](Driver& d, Completion c) { d.remove_network(name, std::move(c)); }, std::move(done));
}

void ProcessDriver::create_volume(const VolumeSpec& volume, Completion done) {
  spawn([&](Driver& d, Completion c) { d.create_volume(volume, std::move(c)); }, std::move(done));
}

void ProcessDriver::remove_volume(const std::string& name, Completion done) {
  spawn([&](Driver& d, Completion c) { d.remove_volume(name, std::move(c)); }, std::move(done));
}

void ProcessDriver::create_container(const ContainerSpec& container, Completion done) {
  spawn([&](Driver& d, Completion c) { d.create_container(container, std::move(c)); }, std::move(done));
}

void ProcessDriver::start_container(const std::string& container, Completion done) {
  spawn([&](Driver& d, Completion c) { d.start_container(container, std::move(c)); }, std::move(done));
}

void ProcessDriver::stop_container(const std::string& container, std::chrono::seconds timeout, Completion done) {
  spawn([&](Driver& d, Completion c) { d.stop_container(container, timeout, std::move(c)); },
        std::move(done));
}

void ProcessDriver::remove_container(const std::string& container, Completion done) {
  spawn([&](Driver& d, Completion c) { d.remove_container(container, std::move(c)); }, std::move(done));
}

void ProcessDriver::rename_container(const std::string& container, const std::string& new_name, Completion done) {
  spawn([&](Driver& d, Completion c) { d.rename_container(container, new_name, std::move(c)); },
        std::move(done));
}

void ProcessDriver::wait_condition(const WaitFor& wait, Completion done) {
  spawn([&](Driver& d, Completion c) { d.wait_condition(wait, std::move(c)); }, std::move(done));
}

std::size_t parallel_limit(int flag, std::size_t fallback) {
  if (flag > 0) return static_cast<std::size_t>(flag);
  if (flag == -1) return std::numeric_limits<std::size_t>::max();
  if (const char* env = std::getenv("COMPOSE_PARALLEL_LIMIT"); env && *env) {
    char* end = nullptr;
    long v = std::strtol(env, &end, 10);
    if (end && *end == '\0' && v > 0) return static_cast<std::size_t>(v);
  }
  return fallback;
}

}  // namespace berth::reconciler
