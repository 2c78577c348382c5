#include "runtime/monitor.h"

#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>

#include "base/error.h"
#include "base/fs.h"
#include "runtime/logfile.h"
#include "runtime/state.h"
#include "runtime/volume.h"

namespace berth::runtime {

namespace {

void report(int fd, const std::string& line) {
  if (fd < 0) return;
  std::string l = line + "\n";
  ssize_t n = ::write(fd, l.data(), l.size());
  (void)n;
}

void write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

// Updates state.json, keeping what create() recorded; never throws (the
// container may be being removed concurrently).
void record(const std::string& dir, const std::function<void(ContainerState&)>& change, bool durable = true) {
  try {
    ContainerState st = state::load_state(dir);
    change(st);
    state::save_state(dir, st, durable);
  } catch (const std::exception&) {
  }
}

// The monitor lives as long as the container: it must not keep the
// caller's other files (pipes, sockets, locks) open all that time.
void close_inherited_fds(int keep) {
  std::vector<int> fds;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (auto* e = ::readdir(d)) {
      int fd = std::atoi(e->d_name);
      if (fd > 2 && fd != keep && fd != ::dirfd(d)) fds.push_back(fd);
    }
    ::closedir(d);
  }
  for (int fd : fds) ::close(fd);
}

struct Stream {
  UniqueFd fd;
  const char* name;
  int forward_to;  // -1 = not attached
};

}  // namespace

void run_monitor(MonitorLaunch& m) {
  int report_fd = m.report_fd;
  const ContainerSpec& spec = m.init.spec;
  pid_t pid = -1;
  try {
    close_inherited_fds(report_fd);
    ::setsid();
    ::signal(SIGPIPE, SIG_IGN);
    if (::chdir("/") != 0) throw_errno("chdir /");
    UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
    if (!devnull) throw_errno("/dev/null");
    if (!m.attach.attach) {
      // Detached: hold nothing of the caller's terminal or pipes.
      ::dup2(devnull.get(), 1);
      ::dup2(devnull.get(), 2);
    }

    // The container's stdio: a pty, or one pipe per stream.
    UniqueFd child_in, child_out, child_err, pty_master;
    std::vector<Stream> streams;
    UniqueFd console_mine, console_theirs;
    if (spec.process.tty) {
      int sp[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) throw_errno("socketpair");
      console_mine.reset(sp[0]);
      console_theirs.reset(sp[1]);
      m.init.console_socket = console_theirs.get();
      // Placeholders until the init replaces them with its pty.
      child_in.reset(::dup(devnull.get()));
      child_out.reset(::dup(devnull.get()));
      child_err.reset(::dup(devnull.get()));
    } else {
      int out[2], err[2];
      if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) throw_errno("pipe");
      streams.push_back({UniqueFd(out[0]), "stdout", m.attach.attach ? 1 : -1});
      streams.push_back({UniqueFd(err[0]), "stderr", m.attach.attach ? 2 : -1});
      child_out.reset(out[1]);
      child_err.reset(err[1]);
      child_in.reset(::dup(m.attach.stdin ? 0 : devnull.get()));
    }
    if (!m.attach.stdin || !spec.process.tty) ::dup2(devnull.get(), 0);

    int go[2], errp[2];
    if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(errp, O_CLOEXEC) != 0) throw_errno("pipe");
    UniqueFd go_r(go[0]), go_w(go[1]), err_r(errp[0]), err_w(errp[1]);

    // SIGCHLD is blocked before the clone so the init's exit cannot be
    // missed; the init unblocks it first thing.
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &chld, nullptr);
    UniqueFd sfd(::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!sfd) throw_errno("signalfd");

    // A fork-like clone (no new stack): the child gets a copy of this one.
    pid = static_cast<pid_t>(::syscall(SYS_clone, clone_flags(spec) | SIGCHLD, nullptr, nullptr, nullptr, 0));
    if (pid < 0) throw_errno("cannot create the container's namespaces (clone)");
    if (pid == 0) {
      ::dup2(child_in.get(), 0);
      ::dup2(child_out.get(), 1);
      ::dup2(child_err.get(), 2);
      container_init(m.init, go_r.get(), err_w.get());
    }
    child_in.reset();
    child_out.reset();
    child_err.reset();
    console_theirs.reset();
    go_r.reset();
    err_w.reset();

    m.cgroup->add_process(pid);
    if (::write(go_w.get(), "1", 1) != 1) throw_errno("cannot release the container's init");
    go_w.reset();
    int code = 0;
    std::string why;
    if (read_child_error(err_r.get(), code, why)) {
      ::waitpid(pid, nullptr, 0);
      pid = -1;
      m.cgroup->destroy();
      record(m.container_dir, [&](ContainerState& st) {
        st.status = Status::Exited;
        st.exit_code = code;
        st.error = why;
        st.finished_at = state::now_rfc3339nano();
      });
      report(report_fd, "error " + std::to_string(code) + " " + why);
      ::_exit(0);
    }
    err_r.reset();
    if (console_mine) {
      pty_master.reset(receive_fd(console_mine.get()));
      if (!pty_master) throw Error("the container did not pass its pty");
      struct winsize ws {};
      if (m.attach.attach && ::ioctl(0, TIOCGWINSZ, &ws) == 0) ::ioctl(pty_master.get(), TIOCSWINSZ, &ws);
      streams.push_back({UniqueFd(::dup(pty_master.get())), "stdout", m.attach.attach ? 1 : -1});
      console_mine.reset();
    }

    state::RuntimeRecord rec{pid, state::process_start_time(pid), ::getpid(),
                             state::process_start_time(::getpid())};
    state::save_runtime(m.run_dir, rec);
    record(m.container_dir, [&](ContainerState& st) {
      st.status = Status::Running;
      st.exit_code = 0;
      st.oom_killed = false;
      st.error.clear();
      st.started_at = state::now_rfc3339nano();
      st.finished_at.clear();
    }, /*durable=*/false);  // after a host crash it is not running anyway
    report(report_fd, "ok " + std::to_string(pid));
    if (!m.attach.attach) {
      ::close(report_fd);
      report_fd = -1;
    }

    // The monitor is a fork of the CLI: give back the heap the CLI used.
    ::malloc_trim(0);
    std::unique_ptr<JsonLogWriter> log;
    if (spec.log.driver == "json-file")
      log = std::make_unique<JsonLogWriter>(m.container_dir + "/" + m.id + "-json.log", spec.log.max_size,
                                            spec.log.max_file);
    bool forward_stdin = m.attach.stdin && spec.process.tty;
    int status = 0;
    bool exited = false;
    int drain_polls = 0;
    char buf[65536];
    for (;;) {
      bool open_streams = false;
      for (auto& s : streams) open_streams |= static_cast<bool>(s.fd);
      if (exited && (!open_streams || drain_polls > 20)) break;
      std::vector<pollfd> fds;
      fds.push_back({sfd.get(), POLLIN, 0});
      for (auto& s : streams)
        if (s.fd) fds.push_back({s.fd.get(), POLLIN, 0});
      if (forward_stdin) fds.push_back({0, POLLIN, 0});
      // After the init died its pid namespace is gone, so the pipes reach
      // EOF at once; the timeout only guards against a stray holder.
      int rc = ::poll(fds.data(), fds.size(), exited ? 100 : -1);
      if (rc < 0 && errno != EINTR) break;
      if (exited) ++drain_polls;
      for (auto& p : fds) {
        if (!p.revents) continue;
        if (p.fd == sfd.get()) {
          signalfd_siginfo si;
          while (::read(sfd.get(), &si, sizeof si) > 0) {
          }
          int st = 0;
          if (!exited && ::waitpid(pid, &st, WNOHANG) == pid) {
            status = st;
            exited = true;
          }
          continue;
        }
        if (p.fd == 0) {
          ssize_t n = ::read(0, buf, sizeof buf);
          if (n > 0) write_all(pty_master.get(), buf, static_cast<size_t>(n));
          else forward_stdin = false;
          continue;
        }
        for (auto& s : streams) {
          if (!s.fd || s.fd.get() != p.fd) continue;
          ssize_t n = ::read(s.fd.get(), buf, sizeof buf);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {  // EOF, or EIO from a pty whose last holder closed it
            if (log) log->flush(s.name);
            s.fd.reset();
            continue;
          }
          if (log) log->write(s.name, buf, static_cast<size_t>(n));
          if (s.forward_to >= 0) write_all(s.forward_to, buf, static_cast<size_t>(n));
        }
      }
    }
    if (log) {
      log->flush("stdout");
      log->flush("stderr");
    }
    int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : exit_code_for_signal(WTERMSIG(status));
    bool oom = m.cgroup->oom_killed();
    try {
      m.cgroup->destroy();
    } catch (const std::exception&) {
    }
    auto record_exit = [&] {
      record(m.container_dir, [&](ContainerState& st) {
        st.status = Status::Exited;
        st.exit_code = exit_code;
        st.oom_killed = oom;
        st.finished_at = state::now_rfc3339nano();
      });
    };
    // Record the exit before the runtime record goes: a reader that finds
    // no live monitor re-reads state.json, and must then see the exit,
    // never a container that vanished unrecorded (exit 255).
    if (!spec.auto_remove) record_exit();
    ::unlink((m.run_dir + "/runtime.json").c_str());
    ::rmdir(m.run_dir.c_str());
    // --rm: the monitor removes the container (it outlives the CLI).
    if (spec.auto_remove) {
      if (spec.network == NetworkMode::Netns && spec.remove_netns) remove_netns_file(spec.netns_path);
      std::error_code ec;
      std::filesystem::remove_all(m.container_dir, ec);
      if (ec) {
        record_exit();
      } else if (!m.init.volume_mounts.empty()) {
        // docker run --rm: the anonymous volumes go with the container.
        std::vector<std::string> names;
        for (auto& vm : m.init.volume_mounts) names.push_back(vm.name);
        Paths paths;
        paths.root = path_dirname(path_dirname(m.container_dir));
        remove_anonymous_volumes(paths, names);
      }
    }
    report(report_fd, "exit " + std::to_string(exit_code));
    ::_exit(0);
  } catch (const std::exception& e) {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    try {
      m.cgroup->destroy();
    } catch (const std::exception&) {
    }
    record(m.container_dir, [&](ContainerState& st) {
      st.status = Status::Exited;
      st.exit_code = 125;
      st.error = e.what();
      st.finished_at = state::now_rfc3339nano();
    });
    report(report_fd, std::string("error 125 ") + e.what());
    ::_exit(0);
  }
}

}  // namespace berth::runtime
