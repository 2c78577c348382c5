#include "runtime/monitor_loop.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>

#include "base/fs.h"
#include "base/write_all.h"
#include "runtime/attach.h"
#include "runtime/cgroup.h"
#include "runtime/logfile.h"
#include "runtime/state.h"

namespace berth::runtime {

// Declared in runtime/linux.h; defined here so that berth-monitor has it
// without the rest of the container setup code.
void remove_netns_file(const std::string& path) {
  if (path.empty()) return;
  for (int i = 0; i < 8 && ::umount2(path.c_str(), MNT_DETACH) == 0; ++i) {
  }
  ::unlink(path.c_str());
}

namespace {


bool report(int fd, const std::string& line) {
  if (fd < 0) return false;
  std::string l = line + "\n";
  return write_all(fd, l.data(), l.size());
}

// Updates state.json, keeping what create() and start recorded; never
// throws (the container may be being removed concurrently).
void record(const std::string& dir, const std::function<void(ContainerState&)>& change, bool durable) {
  try {
    ContainerState st = state::load_state(dir);
    change(st);
    state::save_state(dir, st, durable);
  } catch (const std::exception&) {
  }
}

struct Stream {
  UniqueFd fd;
  const char* name;
  int forward_to;  // -1 = not attached
};

// A `berth attach` client: what it asked for (the first byte it sends).
struct Client {
  UniqueFd fd;
  int flags = -1;  // -1 until the flags byte arrived
  std::string input;  // input frames not yet complete
};

// One frame to a client; a client that cannot take it within the send
// timeout is dropped rather than stall the container's output.
bool send_frame(Client& c, int type, const char* data, size_t n) {
  char head[attach_proto::kHeader];
  attach_proto::encode_header(head, type, static_cast<uint32_t>(n));
  return write_all(c.fd.get(), head, sizeof head) && write_all(c.fd.get(), data, n);
}

// `berth __rm-cleanup`: what only the full berth binary can undo for a
// --rm container (its networks, its image hold, its anonymous volumes).
// Runs in this process: the monitor has nothing left to do.
[[noreturn]] void exec_cleanup(const MonitorArgs& a, bool volumes_only) {
  std::vector<std::string> args = {a.berth_exe, "--root", a.root, "--run-root", a.run_root, "--log-level", "error",
                                   "__rm-cleanup"};
  if (volumes_only) args.push_back("--volumes-only");
  args.push_back(a.id);
  for (auto& v : a.volumes) args.push_back(v);
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  argv.push_back(nullptr);
  int devnull = ::open("/dev/null", O_RDWR);
  if (devnull >= 0) {
    for (int fd = 0; fd < 3; ++fd) ::dup2(devnull, fd);
    if (devnull > 2) ::close(devnull);
  }
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execv(a.berth_exe.c_str(), argv.data());
  ::_exit(0);  // left to the next berth command's stale-resource sweep
}

}  // namespace

std::vector<std::string> monitor_argv(const std::string& exe, const MonitorArgs& a) {
  std::vector<std::string> v = {exe,
                                "--id", a.id,
                                "--dir", a.container_dir,
                                "--run-dir", a.run_dir,
                                "--pid", std::to_string(a.pid),
                                "--out", std::to_string(a.out_fd),
                                "--err", std::to_string(a.err_fd),
                                "--report", std::to_string(a.report_fd),
                                "--attach-socket", std::to_string(a.attach_fd),
                                "--in", std::to_string(a.in_fd),
                                "--log-driver", a.log_driver,
                                "--log-max-size", std::to_string(a.log_max_size),
                                "--log-max-file", std::to_string(a.log_max_file),
                                "--berth", a.berth_exe,
                                "--root", a.root,
                                "--run-root", a.run_root};
  if (a.tty) v.push_back("--tty");
  if (a.attached) v.push_back("--attached");
  if (a.forward_stdin) v.push_back("--stdin");
  if (a.stdin_once) v.push_back("--stdin-once");
  if (a.auto_remove) v.push_back("--rm");
  if (!a.netns_file.empty()) v.insert(v.end(), {"--netns-file", a.netns_file});
  for (auto& vol : a.volumes) v.insert(v.end(), {"--volume", vol});
  return v;
}

bool parse_monitor_argv(int argc, char** argv, MonitorArgs& a, std::string& why) {
  auto number = [&](const char* s, long long& out) {
    char* end = nullptr;
    errno = 0;
    out = std::strtoll(s, &end, 10);
    return errno == 0 && end != s && *end == '\0';
  };
  for (int i = 1; i < argc; ++i) {
    std::string k = argv[i];
    if (k == "--tty") a.tty = true;
    else if (k == "--attached") a.attached = true;
    else if (k == "--stdin") a.forward_stdin = true;
    else if (k == "--stdin-once") a.stdin_once = true;
    else if (k == "--rm") a.auto_remove = true;
    else {
      if (i + 1 >= argc) {
        why = "missing value after " + k;
        return false;
      }
      const char* v = argv[++i];
      long long n = 0;
      bool is_number = number(v, n);
      if (k == "--id") a.id = v;
      else if (k == "--dir") a.container_dir = v;
      else if (k == "--run-dir") a.run_dir = v;
      else if (k == "--log-driver") a.log_driver = v;
      else if (k == "--berth") a.berth_exe = v;
      else if (k == "--root") a.root = v;
      else if (k == "--run-root") a.run_root = v;
      else if (k == "--netns-file") a.netns_file = v;
      else if (k == "--volume") a.volumes.push_back(v);
      else if (!is_number) {
        why = "bad value for " + k + ": " + v;
        return false;
      } else if (k == "--pid") a.pid = static_cast<pid_t>(n);
      else if (k == "--out") a.out_fd = static_cast<int>(n);
      else if (k == "--err") a.err_fd = static_cast<int>(n);
      else if (k == "--report") a.report_fd = static_cast<int>(n);
      else if (k == "--attach-socket") a.attach_fd = static_cast<int>(n);
      else if (k == "--in") a.in_fd = static_cast<int>(n);
      else if (k == "--log-max-size") a.log_max_size = n;
      else if (k == "--log-max-file") a.log_max_file = static_cast<int>(n);
      else {
        why = "unknown option " + k;
        return false;
      }
    }
  }
  if (a.id.empty() || a.container_dir.empty() || a.run_dir.empty() || a.pid <= 0) {
    why = "--id, --dir, --run-dir and --pid are required";
    return false;
  }
  return true;
}

void monitor_loop(MonitorArgs& a) {
  int report_fd = a.report_fd;
  for (int fd : {a.out_fd, a.err_fd, report_fd, a.attach_fd, a.in_fd})
    if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  // SIGCHLD stays blocked from before the init's clone (the mask survives
  // exec), so its exit is pending here if it already happened.
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  ::signal(SIGPIPE, SIG_IGN);
  UniqueFd sfd(::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK));

  std::vector<Stream> streams;
  UniqueFd pty_master;
  if (a.tty) {
    pty_master.reset(a.out_fd);
    streams.push_back({UniqueFd(::fcntl(a.out_fd, F_DUPFD_CLOEXEC, 3)), "stdout", a.attached ? 1 : -1});
  } else {
    if (a.out_fd >= 0) streams.push_back({UniqueFd(a.out_fd), "stdout", a.attached ? 1 : -1});
    if (a.err_fd >= 0) streams.push_back({UniqueFd(a.err_fd), "stderr", a.attached ? 2 : -1});
  }

  std::unique_ptr<JsonLogWriter> log;
  if (a.log_driver == "json-file")
    log = std::make_unique<JsonLogWriter>(a.container_dir + "/" + a.id + "-json.log", a.log_max_size, a.log_max_file);
  // The attached caller's stdin arrives on the report socket (it watches
  // for the detach keys itself); the socket's EOF means it detached or died.
  bool forward_stdin = a.forward_stdin && a.tty;
  UniqueFd attach_listen(a.attach_fd);
  std::vector<Client> clients;
  // A `-i` container's stdin pipe (no tty): what clients sent waits in
  // stdin_pending until the pipe takes it, so a container that does not
  // read never stalls this loop.
  UniqueFd stdin_pipe(a.in_fd);
  if (stdin_pipe) ::fcntl(stdin_pipe.get(), F_SETFL, O_NONBLOCK);
  std::string stdin_pending, report_input;
  bool close_stdin = false;
  constexpr size_t kMaxPending = 1 << 20;
  auto flush_stdin = [&] {
    while (stdin_pipe && !stdin_pending.empty()) {
      ssize_t w = ::write(stdin_pipe.get(), stdin_pending.data(), stdin_pending.size());
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EAGAIN) return;
      if (w <= 0) {  // EPIPE: the container closed its stdin
        stdin_pipe.reset();
        break;
      }
      stdin_pending.erase(0, static_cast<size_t>(w));
    }
    if (stdin_pending.empty() && close_stdin) stdin_pipe.reset();
    if (!stdin_pipe) stdin_pending.clear();
  };
  // Input frames (runtime/attach.h) from a client, or (client null) from
  // the attached caller's report socket; complete ones are consumed.
  auto handle_input = [&](std::string& in, Client* client, bool stdin_allowed) {
    while (in.size() >= attach_proto::kHeader) {
      size_t len = attach_proto::decode_length(in.data());
      if (in.size() < attach_proto::kHeader + len) break;
      int type = in[0];
      const char* data = in.data() + attach_proto::kHeader;
      if (type == attach_proto::kInStdin) {
        if (!stdin_allowed) {  // without kStdin only the control frames count
        } else if (pty_master) write_all(pty_master.get(), data, len);
        else if (stdin_pipe) stdin_pending.append(data, len);
      } else if (type == attach_proto::kInResize && len == 4 && pty_master) {
        auto b = [&](size_t i) { return static_cast<unsigned short>(static_cast<unsigned char>(data[i])); };
        struct winsize ws {};
        ws.ws_row = static_cast<unsigned short>(b(0) << 8 | b(1));
        ws.ws_col = static_cast<unsigned short>(b(2) << 8 | b(3));
        ::ioctl(pty_master.get(), TIOCSWINSZ, &ws);
      } else if (type == attach_proto::kInEof && stdin_allowed) {
        // docker: with StdinOnce (and no tty) the container's stdin closes;
        // otherwise the client's streams end and the container goes on.
        if (!a.tty && a.stdin_once && stdin_pipe) {
          close_stdin = true;
        } else if (client) {
          client->fd.reset();
          in.clear();
          break;
        }
      }
      in.erase(0, attach_proto::kHeader + len);
    }
    flush_stdin();
  };
  auto caller_gone = [&] {
    // Stop writing to the caller's terminal or pipes.
    int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull >= 0) {
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      ::close(devnull);
    }
    for (auto& s : streams) s.forward_to = -1;
    if (report_fd >= 0) ::close(report_fd);
    report_fd = -1;
    forward_stdin = false;
  };
  int status = 0;
  bool exited = false;
  int drain_polls = 0;
  static char buf[65536];
  auto reap = [&] {
    int st = 0;
    if (!exited && ::waitpid(a.pid, &st, WNOHANG) == a.pid) {
      status = st;
      exited = true;
    }
  };
  if (!sfd) reap();
  for (;;) {
    bool open_streams = false;
    for (auto& s : streams) open_streams |= static_cast<bool>(s.fd);
    if (exited && (!open_streams || drain_polls > 20)) break;
    std::vector<pollfd> fds;
    if (sfd) fds.push_back({sfd.get(), POLLIN, 0});
    for (auto& s : streams)
      if (s.fd) fds.push_back({s.fd.get(), POLLIN, 0});
    if (report_fd >= 0 && a.attached) fds.push_back({report_fd, POLLIN, 0});
    if (attach_listen && !exited) fds.push_back({attach_listen.get(), POLLIN, 0});
    // A full stdin backlog stops reading clients until the container reads.
    if (stdin_pending.size() < kMaxPending)
      for (auto& c : clients) fds.push_back({c.fd.get(), POLLIN, 0});
    if (stdin_pipe && !stdin_pending.empty()) fds.push_back({stdin_pipe.get(), POLLOUT, 0});
    // After the init died its pid namespace is gone, so the pipes reach
    // EOF at once; the timeout only guards against a stray holder (and,
    // without a signalfd, polls for the exit).
    int rc = ::poll(fds.data(), fds.size(), exited ? 100 : sfd ? -1 : 200);
    if (rc < 0 && errno != EINTR) break;
    if (exited) ++drain_polls;
    if (!sfd) reap();
    for (auto& p : fds) {
      if (!p.revents) continue;
      if (sfd && p.fd == sfd.get()) {
        signalfd_siginfo si;
        while (::read(sfd.get(), &si, sizeof si) > 0) {
        }
        reap();
        continue;
      }
      if (p.fd == report_fd) {
        ssize_t got = ::read(report_fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
          caller_gone();
        } else if (forward_stdin) {
          report_input.append(buf, static_cast<size_t>(got));
          handle_input(report_input, nullptr, true);
        }
        continue;
      }
      if (stdin_pipe && p.fd == stdin_pipe.get()) {
        flush_stdin();
        continue;
      }
      if (attach_listen && p.fd == attach_listen.get()) {
        int cfd = ::accept4(attach_listen.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (cfd >= 0) {
          struct timeval tv {1, 0};
          ::setsockopt(cfd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
          clients.push_back({UniqueFd(cfd), -1, {}});
        }
        continue;
      }
      bool handled = false;
      for (auto& c : clients) {
        if (!c.fd || c.fd.get() != p.fd) continue;
        handled = true;
        ssize_t got = ::read(c.fd.get(), buf, sizeof buf);
        if (got < 0 && errno == EINTR) break;
        if (got <= 0) {
          c.fd.reset();
          break;
        }
        const char* data = buf;
        size_t n = static_cast<size_t>(got);
        if (c.flags < 0) {
          int version = attach_proto::hello_version(buf[0]);
          if (version != attach_proto::kVersion) {
            std::string why = "this container's monitor speaks attach protocol " + std::to_string(attach_proto::kVersion) +
                              ", this berth " + std::to_string(version) +
                              " (the container was started by another version of berth): it runs on; restart it to "
                              "attach";
            send_frame(c, attach_proto::kFrameError, why.data(), why.size());
            c.fd.reset();
            break;
          }
          c.flags = attach_proto::hello_streams(buf[0]);
          ++data;
          --n;
        }
        if (n > 0) {
          c.input.append(data, n);
          handle_input(c.input, &c, (c.flags & attach_proto::kStdin) != 0);
        }
        break;
      }
      if (handled) continue;
      for (auto& s : streams) {
        if (!s.fd || s.fd.get() != p.fd) continue;
        ssize_t got = ::read(s.fd.get(), buf, sizeof buf);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {  // EOF, or EIO from a pty whose last holder closed it
          if (log) log->flush(s.name);
          s.fd.reset();
          continue;
        }
        if (log) log->write(s.name, buf, static_cast<size_t>(got));
        if (s.forward_to >= 0) write_all(s.forward_to, buf, static_cast<size_t>(got));
        bool is_err = s.name[3] == 'e';  // "stderr"
        int want = is_err ? attach_proto::kStderr : attach_proto::kStdout;
        for (auto& c : clients)
          if (c.fd && c.flags >= 0 && (c.flags & want) &&
              !send_frame(c, is_err ? attach_proto::kFrameStderr : attach_proto::kFrameStdout, buf,
                          static_cast<size_t>(got)))
            c.fd.reset();
      }
    }
    std::erase_if(clients, [](const Client& c) { return !c.fd; });
  }
  if (log) {
    log->flush("stdout");
    log->flush("stderr");
    log.reset();
  }
  int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : exit_code_for_signal(WTERMSIG(status));
  bool oom = false;
  try {
    std::unique_ptr<Cgroup> cgroup = cgroup_for(a.id);
    oom = cgroup->oom_killed();
    cgroup->destroy();
  } catch (const std::exception&) {
  }
  // Record the exit before the runtime record goes: a reader that finds
  // no live monitor re-reads state.json, and must then see the exit,
  // never a container that vanished unrecorded (exit 255). A --rm
  // container's record is about to go: no need to make it durable, and
  // the state it replaces stays linked until the container's files are
  // deleted after the report (a freed block can cost a synchronous discard).
  if (a.auto_remove)
    ::link((a.container_dir + "/state.json").c_str(), (a.container_dir + "/state.json.running").c_str());
  record(a.container_dir, [&](ContainerState& st) {
    st.status = Status::Exited;
    st.exit_code = exit_code;
    st.oom_killed = oom;
    st.finished_at = state::now_rfc3339nano();
  }, /*durable=*/!a.auto_remove);
  // Attach clients hear the exit code once it is recorded.
  std::string code_text = std::to_string(exit_code);
  for (auto& c : clients)
    if (c.fd) send_frame(c, attach_proto::kFrameExit, code_text.data(), code_text.size());
  clients.clear();
  attach_listen.reset();
  // --rm: the monitor removes the container (it outlives the CLI). Its
  // directories go at once, renamed out of <root>/containers and
  // <run-root>/containers (nobody lists them any more); their files are
  // deleted after the caller heard the exit, since deleting waits for the
  // disk (a discard per freed block on some hosts). A monitor killed before
  // it deleted them leaves ".removing-<pid>-<id>" that the next create sweeps.
  std::string trash_name = "/.removing-" + std::to_string(::getpid()) + "-" + a.id;
  std::string run_trash = path_dirname(a.run_dir) + trash_name;
  if (!a.auto_remove || ::rename(a.run_dir.c_str(), run_trash.c_str()) != 0) {
    run_trash.clear();
    state::remove_runtime(a.run_dir);
  }
  if (!a.auto_remove) {
    report(report_fd, "exit " + std::to_string(exit_code));
    ::_exit(0);
  }
  remove_netns_file(a.netns_file);
  std::error_code ec;
  std::string trash = path_dirname(a.container_dir) + trash_name;
  bool removed = ::rename(a.container_dir.c_str(), trash.c_str()) == 0;
  if (!removed) {
    std::filesystem::remove_all(a.container_dir, ec);
    removed = !ec;
  }
  // An attached caller that hears the exit undoes its own part (networks,
  // image hold); otherwise berth does it now, once, after the container.
  bool caller_cleans = report(report_fd, "exit " + std::to_string(exit_code));
  if (report_fd >= 0) ::close(report_fd);
  std::filesystem::remove_all(trash, ec);
  if (!run_trash.empty()) std::filesystem::remove_all(run_trash, ec);
  if (!removed || a.berth_exe.empty() || (caller_cleans && a.volumes.empty())) ::_exit(0);
  exec_cleanup(a, caller_cleans);
}

}  // namespace berth::runtime
