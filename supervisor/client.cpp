#include "supervisor/client.h"

#include <fcntl.h>
#include <http_parser.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "supervisor/commands.h"

extern char** environ;

namespace berth::supervisor {

std::string socket_path(const runtime::Paths& p) { return p.run_root + "/berth.sock"; }
std::string pid_path(const runtime::Paths& p) { return p.run_root + "/berth.pid"; }
std::string log_path(const runtime::Paths& p) { return p.run_root + "/serve.log"; }

namespace {

using Clock = std::chrono::steady_clock;

// An invalid fd (errno set) when nothing listens there.
UniqueFd try_connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw Error("socket path too long: " + path, 0, 125);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) return UniqueFd();
  return fd;
}

UniqueFd connect_unix(const std::string& path) {
  UniqueFd fd = try_connect_unix(path);
  if (!fd) throw Error("cannot connect to the berth daemon at " + path, errno, 125);
  return fd;
}

void send_all(int fd, const std::string& data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw_errno("cannot send to the berth daemon");
    off += static_cast<size_t>(n);
  }
}

struct ParseState {
  std::string body;
  bool complete = false;
  std::function<bool(const std::string&)> on_line;  // streaming mode
  bool stop = false;
};

http_parser_settings parser_settings() {
  http_parser_settings s;
  http_parser_settings_init(&s);
  s.on_body = [](http_parser* p, const char* at, size_t len) {
    auto* st = static_cast<ParseState*>(p->data);
    st->body.append(at, len);
    if (st->on_line) {
      size_t nl;
      while ((nl = st->body.find('\n')) != std::string::npos) {
        std::string line = st->body.substr(0, nl);
        st->body.erase(0, nl + 1);
        if (!st->on_line(line)) {
          st->stop = true;
          return 1;
        }
      }
    }
    return 0;
  };
  s.on_message_complete = [](http_parser* p) {
    static_cast<ParseState*>(p->data)->complete = true;
    return 0;
  };
  return s;
}

// Reads and parses until the message is complete, the peer closes, or the deadline.
int read_response(int fd, ParseState& st, std::optional<Clock::time_point> deadline) {
  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  parser.data = &st;
  http_parser_settings settings = parser_settings();
  char buf[8192];
  while (!st.complete && !st.stop) {
    int wait_ms = -1;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()).count();
      if (left <= 0) throw Error("the berth daemon did not answer in time", 0, 125);
      wait_ms = static_cast<int>(left);
    }
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, wait_ms);
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("cannot read from the berth daemon");
    size_t done = http_parser_execute(&parser, &settings, buf, static_cast<size_t>(n));
    if (st.stop) break;
    if (n == 0) break;
    if (done != static_cast<size_t>(n) || HTTP_PARSER_ERRNO(&parser) != HPE_OK)
      throw Error(std::string("bad answer from the berth daemon: ") + http_errno_description(HTTP_PARSER_ERRNO(&parser)),
                  0, 125);
  }
  return parser.status_code;
}

std::string request_text(const std::string& method, const std::string& target, const std::string& body) {
  std::string req = method + " " + target + " HTTP/1.1\r\nHost: berth\r\nConnection: close\r\n";
  if (!body.empty() || method == "POST" || method == "PUT")
    req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  return req + "\r\n" + body;
}

}  // namespace

HttpResponse http_request(const std::string& socket, const std::string& method, const std::string& target,
                          const std::string& body, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  UniqueFd fd = connect_unix(socket);
  send_all(fd.get(), request_text(method, target, body));
  ParseState st;
  HttpResponse r;
  r.status = read_response(fd.get(), st, deadline);
  r.body = std::move(st.body);
  return r;
}

int http_stream_lines(const std::string& socket, const std::string& target,
                      const std::function<bool(const std::string& line)>& on_line) {
  UniqueFd fd = connect_unix(socket);
  send_all(fd.get(), request_text("GET", target, {}));
  ParseState st;
  st.on_line = on_line;
  int status = read_response(fd.get(), st, std::nullopt);
  if (!st.stop && !st.body.empty() && status == 200) on_line(st.body);
  if (status != 200 && !st.body.empty()) throw Error(st.body, 0, 1);
  return status;
}

bool daemon_answers(const runtime::Paths& paths, std::chrono::milliseconds timeout) {
  try {
    auto r = http_request(socket_path(paths), "GET", "/_ping", {}, timeout);
    return r.status == 200 && r.body == "OK";
  } catch (const Error&) {
    return false;
  }
}

void ensure_daemon(const runtime::Paths& paths, std::chrono::milliseconds wait) {
  if (daemon_answers(paths)) return;
  std::string exe = paths.self_exe.empty() ? "/proc/self/exe" : paths.self_exe;
  make_dirs(paths.run_root, 0700);
  std::string log = log_path(paths);
  pid_t middle = ::fork();
  if (middle < 0) throw_errno("fork");
  if (middle == 0) {
    ::setsid();
    pid_t daemon = ::fork();
    if (daemon != 0) ::_exit(daemon < 0 ? 1 : 0);
    if (::chdir("/") != 0) ::_exit(127);
    int devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    int out = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (devnull >= 0) ::dup2(devnull, 0);
    if (out >= 0) {
      ::dup2(out, 1);
      ::dup2(out, 2);
    }
    // The daemon must not inherit the caller's other descriptors (pipes a
    // test or a shell waits on).
    for (int fd = 3; fd < 1024; ++fd) ::close(fd);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    const char* argv[] = {"berth", "--root", paths.root.c_str(), "--run-root", paths.run_root.c_str(),
                          "serve", "--started-by-cli", nullptr};
    ::execv(exe.c_str(), const_cast<char* const*>(argv));
    ::_exit(127);
  }
  int st = 0;
  while (::waitpid(middle, &st, 0) < 0 && errno == EINTR) {
  }
  auto deadline = Clock::now() + wait;
  while (Clock::now() < deadline) {
    if (daemon_answers(paths, std::chrono::milliseconds(200))) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  throw Error("berth serve did not come up within " + std::to_string(wait.count()) + " ms (see " + log + ")", 0, 125);
}

namespace {

// How long serve may take to start a command before the client gives up.
constexpr std::chrono::milliseconds kTakeTimeout{10'000};

// The signals a command run by the daemon gets when this client gets them
// (SIGTSTP, ctrl-z, as job control: below).
constexpr int kForwarded[] = {SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGWINCH, SIGTSTP};

// Blocks the forwarded signals for its lifetime and reads them from a signalfd.
class ForwardedSignals {
 public:
  ForwardedSignals() {
    sigemptyset(&set_);
    for (int s : kForwarded) sigaddset(&set_, s);
    ::sigprocmask(SIG_BLOCK, &set_, &old_);
    fd_.reset(::signalfd(-1, &set_, SFD_CLOEXEC | SFD_NONBLOCK));
  }
  ~ForwardedSignals() { ::sigprocmask(SIG_SETMASK, &old_, nullptr); }
  // Stops this process, as the SIGTSTP it got would have, until a SIGCONT
  // (`fg`). SIGSTOP: a SIGTSTP raised now would be dropped if this process
  // group were orphaned (started by a harness in a session of its own).
  void stop_self() { ::raise(SIGSTOP); }  // returns once continued
  int fd() const { return fd_.get(); }
  // The next pending signal, 0 when none.
  int next() {
    signalfd_siginfo info{};
    if (::read(fd_.get(), &info, sizeof info) != static_cast<ssize_t>(sizeof info)) return 0;
    return static_cast<int>(info.ssi_signo);
  }

 private:
  sigset_t set_{}, old_{};
  UniqueFd fd_;
};

}  // namespace

std::optional<int> run_via_daemon(const runtime::Paths& paths, const std::vector<std::string>& args, bool start) {
  std::string socket = socket_path(paths);
  UniqueFd fd = try_connect_unix(socket);
  if (!fd) {
    if (!start) return std::nullopt;
    try {
      ensure_daemon(paths);
    } catch (const Error&) {
      return std::nullopt;  // serve.log says why; the command still runs, here
    }
    fd = try_connect_unix(socket);
    if (!fd) return std::nullopt;
  }
  CommandRequest request;
  request.args = args;
  for (char** e = environ; e && *e; ++e) request.env.emplace_back(*e);
  request.umask = ::umask(0);
  ::umask(request.umask);
  ForwardedSignals signals;
  try {
    send_all(fd.get(), request_text("POST", "/commands", command_request_json(request)));
  } catch (const Error&) {
    return std::nullopt;
  }

  pid_t pid = 0;
  std::optional<int> exit_code;
  int killed_by = 0;
  ParseState st;
  st.on_line = [&](const std::string& line) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object()) return true;
    if (j.contains("Pid") && j["Pid"].is_number_integer()) pid = j["Pid"].get<pid_t>();
    if (j.contains("ExitCode") && j["ExitCode"].is_number_integer()) exit_code = j["ExitCode"].get<int>();
    if (j.contains("Signal") && j["Signal"].is_number_integer()) killed_by = j["Signal"].get<int>();
    return true;
  };
  http_parser parser;
  http_parser_init(&parser, HTTP_RESPONSE);
  parser.data = &st;
  http_parser_settings settings = parser_settings();
  char buf[4096];
  // A signal goes to the command through serve while serve answers; once
  // serve is gone, straight to the command's process group (root, as the
  // command is), while its pidfd says it still runs (so the pid is its).
  UniqueFd command_pidfd;
  auto pass_on = [&](int sig) {
    if (pid <= 0) return;  // not started yet: nothing to signal
    if (command_pidfd) {
      pollfd alive{command_pidfd.get(), POLLIN, 0};
      if (::poll(&alive, 1, 0) == 0) ::kill(-pid, sig);
      return;
    }
    try {
      http_request(socket, "POST", "/commands/" + std::to_string(pid) + "/signal?signal=" + std::to_string(sig), {},
                   std::chrono::seconds(5));
    } catch (const Error&) {
    }
  };
  auto pass_on_signals = [&] {
    while (int sig = signals.next()) {
      if (sig != SIGTSTP) {
        pass_on(sig);
        continue;
      }
      // ctrl-z: the command stops with its client, as it would in the
      // client's process group, and goes on with it. SIGSTOP, since its
      // group (a session of its own) is orphaned and would ignore SIGTSTP.
      pass_on(SIGSTOP);
      signals.stop_self();
      pass_on(SIGCONT);
    }
  };
  // serve takes a command at once; one that does not within this time is
  // stopped (a ctrl-z'd `berth serve`) or stuck: say so rather than hang.
  // The command does not run then: serve drops a request whose client has
  // hung up, and this client hangs up first.
  auto take_deadline = Clock::now() + kTakeTimeout;
  while (!st.complete) {
    pollfd p[2] = {{fd.get(), POLLIN, 0}, {signals.fd(), POLLIN, 0}};
    int wait_ms = -1;
    if (pid <= 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(take_deadline - Clock::now()).count();
      if (left <= 0) {
        fd.reset();
        std::string who;
        read_file_if_exists(pid_path(paths), who);
        who = who.substr(0, who.find('\n'));
        throw Error("berth serve" + (who.empty() ? std::string() : " (pid " + who + ")") + " at " + socket +
                        " did not take the command within " + std::to_string(kTakeTimeout.count() / 1000) +
                        " s: is it stopped or stuck? (nothing was run)",
                    0, 125);
      }
      wait_ms = static_cast<int>(left);
    }
    int ready = ::poll(p, 2, wait_ms);
    if (ready < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (ready == 0) continue;
    if (p[1].revents & POLLIN) pass_on_signals();
    if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    size_t done = http_parser_execute(&parser, &settings, buf, static_cast<size_t>(n));
    if (done != static_cast<size_t>(n) || HTTP_PARSER_ERRNO(&parser) != HPE_OK) break;
  }
  if (exit_code) return exit_code;
  if (killed_by > 0) {
    // Die of the same signal, as the command did, so a shell sees it so.
    ::signal(killed_by, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, killed_by);
    ::sigprocmask(SIG_UNBLOCK, &set, nullptr);
    ::raise(killed_by);
    return 128 + killed_by;
  }
  if (pid <= 0) return std::nullopt;  // refused, or gone before it ran anything
  // serve went away while the command ran: the command goes on (it is in a
  // session of its own). Wait for its end, passing signals on ourselves,
  // then read the exit status it left (none if a signal killed it).
  command_pidfd.reset(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  while (command_pidfd) {
    pollfd p[2] = {{command_pidfd.get(), POLLIN, 0}, {signals.fd(), POLLIN, 0}};
    if (::poll(p, 2, -1) < 0 && errno != EINTR) break;
    if (p[0].revents & POLLIN) break;
    if (p[1].revents & POLLIN) pass_on_signals();
  }
  std::string status_file = orphan_status_path(paths.run_root, pid), status;
  if (read_file_if_exists(status_file, status) && !status.empty()) {
    ::unlink(status_file.c_str());
    return std::atoi(status.c_str());
  }
  throw Error("berth serve stopped while the command ran (pid " + std::to_string(pid) + "); its exit status is unknown",
              0, 125);
}

}  // namespace berth::supervisor
