#include "runtime/monitor.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <cstring>
#include <functional>

#include "base/error.h"
#include "base/fs.h"
#include "runtime/attach.h"
#include "runtime/monitor_loop.h"
#include "runtime/state.h"

namespace berth::runtime {

namespace {

void report(int fd, const std::string& line) {
  if (fd < 0) return;
  std::string l = line + "\n";
  ssize_t n = ::write(fd, l.data(), l.size());
  (void)n;
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

// berth-monitor next to the berth binary.
std::string monitor_exe(const std::string& berth_exe) {
  return berth_exe.substr(0, berth_exe.rfind('/') + 1) + "berth-monitor";
}

// Execs berth-monitor with a's fds inherited; when it cannot be executed
// (a berth binary copied without it), or the container has already exited,
// the same loop runs in this process.
[[noreturn]] void exec_monitor(MonitorArgs& a) {
  for (int fd : {a.out_fd, a.err_fd, a.report_fd, a.attach_fd, a.in_fd})
    if (fd >= 0) ::fcntl(fd, F_SETFD, 0);
  // A command that is already done (`run --rm IMAGE true`) is finished off
  // here: an exec and a dynamic load would only delay its exit record.
  siginfo_t done {};
  bool exited = ::waitid(P_PID, static_cast<id_t>(a.pid), &done, WEXITED | WNOHANG | WNOWAIT) == 0 && done.si_pid == a.pid;
  if (!a.berth_exe.empty() && !exited) {
    std::vector<std::string> args = monitor_argv(monitor_exe(a.berth_exe), a);
    std::vector<char*> argv;
    for (auto& s : args) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
  }
  monitor_loop(a);
}

}  // namespace

std::string berth_executable(const std::string& self_exe) {
  if (!self_exe.empty()) return self_exe;
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
}

namespace {
bool g_monitors_leave_cgroups = true;  // set before any fork, read in the forked child
}  // namespace

void set_monitors_leave_cgroups(bool leave) { g_monitors_leave_cgroups = leave; }

void run_monitor(MonitorLaunch& m) {
  int report_fd = m.report_fd;
  const ContainerSpec& spec = m.init.spec;
  pid_t pid = -1;
  try {
    close_inherited_fds(report_fd);
    ::setsid();
    // Out of the caller's session, job or unit, before the init is cloned:
    // what kills that cgroup must not take the container's monitor (its
    // logs, its exit) nor, in a hierarchy berth does not manage, the init.
    if (g_monitors_leave_cgroups) leave_starter_cgroups();
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
    UniqueFd out_r, err_r_stream, in_w;
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
      out_r.reset(out[0]);
      err_r_stream.reset(err[0]);
      child_out.reset(out[1]);
      child_err.reset(err[1]);
      if (m.attach.stdin) {
        child_in.reset(::dup(0));
      } else if (spec.process.open_stdin) {
        // -i with nobody feeding it now: a pipe that attach clients feed.
        int in[2];
        if (::pipe2(in, O_CLOEXEC) != 0) throw_errno("pipe");
        child_in.reset(in[0]);
        in_w.reset(in[1]);
      } else {
        child_in.reset(::dup(devnull.get()));
      }
    }
    // The monitor itself never reads the caller's stdin: with a tty it
    // arrives on the report socket (the caller watches for detach keys).
    ::dup2(devnull.get(), 0);

    int go[2], errp[2];
    if (::pipe2(go, O_CLOEXEC) != 0 || ::pipe2(errp, O_CLOEXEC) != 0) throw_errno("pipe");
    UniqueFd go_r(go[0]), go_w(go[1]), err_r(errp[0]), err_w(errp[1]);

    // SIGCHLD is blocked before the clone so the init's exit cannot be
    // missed; the init unblocks it first thing.
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    ::sigprocmask(SIG_BLOCK, &chld, nullptr);

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

    // The init sets up its mounts meanwhile; it waits for "go" before its
    // cgroup namespace and before anything of the container's runs. When
    // it failed first, its own error is the one to report.
    std::string attach_error;
    try {
      m.cgroup->add_process(pid);
    } catch (const std::exception& e) {
      attach_error = e.what();
    }
    if (attach_error.empty() && ::write(go_w.get(), "1", 1) != 1)
      attach_error = std::string("cannot release the container's init: ") + std::strerror(errno);
    go_w.reset();  // without "go" the init exits
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
    if (!attach_error.empty()) throw Error(attach_error);
    err_r.reset();
    if (console_mine) {
      pty_master.reset(receive_fd(console_mine.get()));
      if (!pty_master) throw Error("the container did not pass its pty");
      struct winsize ws {};
      if (m.attach.attach && ::ioctl(0, TIOCGWINSZ, &ws) == 0) ::ioctl(pty_master.get(), TIOCSWINSZ, &ws);
      console_mine.reset();
    }

    // `berth attach` clients connect here (runtime/attach.h).
    UniqueFd attach_sock(listen_unix_in(m.run_dir, attach_proto::kSocketName));
    if (!attach_sock) throw_errno("cannot listen on " + m.run_dir + "/" + attach_proto::kSocketName);

    state::RuntimeRecord rec{pid, state::process_start_time(pid), ::getpid(),
                             state::process_start_time(::getpid())};
    state::save_runtime(m.run_dir, rec);
    // A --rm container's created state stays linked until its files are
    // deleted (after its exit is reported): replacing it frees no block
    // here (a synchronous discard on some disks).
    if (spec.auto_remove)
      ::link((m.container_dir + "/state.json").c_str(), (m.container_dir + "/state.json.created").c_str());
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

    // The rest of the container's life is berth-monitor's (a small static
    // executable next to berth): exec it, so that this copy of the CLI's
    // memory goes. The init stays this process's child; SIGCHLD stays
    // blocked, so its exit cannot be missed across the exec.
    MonitorArgs a;
    a.id = m.id;
    a.container_dir = m.container_dir;
    a.run_dir = m.run_dir;
    a.pid = pid;
    a.tty = spec.process.tty;
    a.out_fd = spec.process.tty ? pty_master.release() : out_r.release();
    a.err_fd = spec.process.tty ? -1 : err_r_stream.release();
    a.report_fd = report_fd;
    a.attach_fd = attach_sock.release();
    a.in_fd = in_w.release();
    a.stdin_once = spec.process.stdin_once;
    a.attached = m.attach.attach;
    a.forward_stdin = m.attach.stdin;
    a.log_driver = spec.log.driver;
    a.log_max_size = spec.log.max_size;
    a.log_max_file = spec.log.max_file;
    a.auto_remove = spec.auto_remove;
    if (spec.network == NetworkMode::Netns && spec.remove_netns) a.netns_file = spec.netns_path;
    for (auto& vm : m.init.volume_mounts) a.volumes.push_back(vm.name);
    a.berth_exe = m.berth_exe;
    a.root = path_dirname(path_dirname(m.container_dir));
    a.run_root = path_dirname(path_dirname(m.run_dir));
    exec_monitor(a);
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
