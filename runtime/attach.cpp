// Client side of attach (runtime/attach.h), and Runtime::attach.
#include "runtime/attach.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <signal.h>

#include <cctype>

#include "base/error.h"
#include "base/fs.h"
#include "base/write_all.h"
#include "runtime/runtime.h"
#include "runtime/state.h"

namespace berth::runtime {

std::string parse_detach_keys(const std::string& spec) {
  if (spec.empty()) return std::string{'\x10', '\x11'};  // ctrl-p, ctrl-q
  std::string out;
  size_t start = 0;
  for (;;) {
    size_t comma = spec.find(',', start);
    std::string key = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (key.size() == 1) {
      out += key[0];
    } else if (key.size() == 6 && key.compare(0, 5, "ctrl-") == 0) {
      char c = static_cast<char>(std::tolower(static_cast<unsigned char>(key[5])));
      if (c >= 'a' && c <= 'z') out += static_cast<char>(c - 'a' + 1);
      else if (c == '@') out += '\0';
      else if (c == '[' || c == '\\' || c == ']' || c == '^' || c == '_') out += static_cast<char>(c - '@');
      else throw Error("Invalid detach keys (" + spec + "): unknown character '" + key + "'", 0, 125);
    } else {
      throw Error("Invalid detach keys (" + spec + "): unknown character '" + key + "'", 0, 125);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string DetachScanner::feed(const char* data, size_t n) {
  std::string out;
  for (size_t i = 0; i < n && !detached_; ++i) {
    char c = data[i];
    if (!keys_.empty() && c == keys_[matched_]) {
      if (++matched_ == keys_.size()) detached_ = true;
      continue;
    }
    // The sequence broke: what was held back goes on after all.
    out.append(keys_, 0, matched_);
    matched_ = 0;
    if (!keys_.empty() && c == keys_[0]) {
      matched_ = 1;
      if (keys_.size() == 1) detached_ = true;
      continue;
    }
    out += c;
  }
  return out;
}

bool send_input(int fd, int type, const char* data, size_t n) {
  char head[attach_proto::kHeader];
  attach_proto::encode_header(head, type, static_cast<uint32_t>(n));
  return write_all(fd, head, sizeof head) && (n == 0 || write_all(fd, data, n));
}

bool send_window_size(int fd) {
  struct winsize ws {};
  if (::ioctl(0, TIOCGWINSZ, &ws) != 0 && ::ioctl(1, TIOCGWINSZ, &ws) != 0) return true;
  char size[4] = {static_cast<char>(ws.ws_row >> 8), static_cast<char>(ws.ws_row),
                  static_cast<char>(ws.ws_col >> 8), static_cast<char>(ws.ws_col)};
  return send_input(fd, attach_proto::kInResize, size, sizeof size);
}

namespace {
int g_winch_pipe = -1;
extern "C" void on_winch(int) {
  int saved = errno;
  char b = 1;
  if (g_winch_pipe >= 0 && ::write(g_winch_pipe, &b, 1) < 0) {
  }
  errno = saved;
}
}  // namespace

WinchPipe::WinchPipe(bool on) {
  int p[2];
  if (!on || g_winch_pipe >= 0 || ::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return;
  read_ = p[0];
  write_ = p[1];
  g_winch_pipe = write_;
  struct sigaction sa {};
  sa.sa_handler = on_winch;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGWINCH, &sa, &saved_);
}

WinchPipe::~WinchPipe() {
  if (read_ < 0) return;
  ::sigaction(SIGWINCH, &saved_, nullptr);
  g_winch_pipe = -1;
  ::close(read_);
  ::close(write_);
}

bool WinchPipe::drain() {
  char b[64];
  bool got = false;
  while (read_ >= 0 && ::read(read_, b, sizeof b) > 0) got = true;
  return got;
}

namespace {

// sockaddr for dir/name through an O_PATH fd of dir (kept open by the caller).
bool unix_address(const UniqueFd& dirfd, const std::string& name, sockaddr_un& sa, socklen_t& len) {
  std::string path = "/proc/self/fd/" + std::to_string(dirfd.get()) + "/" + name;
  if (path.size() >= sizeof sa.sun_path) {
    errno = ENAMETOOLONG;
    return false;
  }
  sa = {};
  sa.sun_family = AF_UNIX;
  path.copy(sa.sun_path, path.size());
  len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
  return true;
}

}  // namespace

namespace {

// A unix stream socket on dir/name, bound and listening (a stale socket
// file is replaced) or connected; -1 with errno on failure.
int unix_socket_in(const std::string& dir, const std::string& name, bool listening) {
  UniqueFd d(::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!d) return -1;
  sockaddr_un sa;
  socklen_t len;
  if (!unix_address(d, name, sa, len)) return -1;
  UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) return -1;
  auto* addr = reinterpret_cast<sockaddr*>(&sa);
  if (listening) {
    ::unlinkat(d.get(), name.c_str(), 0);
    if (::bind(s.get(), addr, len) != 0 || ::listen(s.get(), 8) != 0) return -1;
  } else if (::connect(s.get(), addr, len) != 0) {
    return -1;
  }
  return s.release();
}

}  // namespace

int listen_unix_in(const std::string& dir, const std::string& name) { return unix_socket_in(dir, name, true); }

int connect_unix_in(const std::string& dir, const std::string& name) { return unix_socket_in(dir, name, false); }

namespace {

// --sig-proxy: the caller's signals go to the container while attached.
int g_proxy_pipe = -1;
extern "C" void on_proxy_signal(int sig) {
  int saved = errno;
  unsigned char b = static_cast<unsigned char>(sig);
  if (g_proxy_pipe >= 0 && ::write(g_proxy_pipe, &b, 1) < 0) {
  }
  errno = saved;
}
class ProxySignals {
 public:
  explicit ProxySignals(bool on) {
    int p[2];
    if (!on || ::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return;
    read_.reset(p[0]);
    write_.reset(p[1]);
    g_proxy_pipe = write_.get();
    struct sigaction sa {};
    sa.sa_handler = on_proxy_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &sa, &saved_[i]);
  }
  ~ProxySignals() {
    if (!read_) return;
    for (size_t i = 0; i < std::size(kSignals); ++i) ::sigaction(kSignals[i], &saved_[i], nullptr);
    g_proxy_pipe = -1;
  }
  int fd() const { return read_.get(); }

 private:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  UniqueFd read_, write_;
  struct sigaction saved_[std::size(kSignals)] {};
};

}  // namespace

int Runtime::attach(const std::string& ref, const AttachOptions& o, bool* detached) {
  if (detached) *detached = false;
  Container c = get(ref);
  if (c.state.status == Status::Paused)
    throw Error("You cannot attach to a paused container, unpause it first", 0, 1);
  if (c.state.status != Status::Running)
    throw Error("You cannot attach to a stopped container, start it first", 0, 1);
  std::string keys = parse_detach_keys(o.detach_keys);
  UniqueFd sock(connect_unix_in(state::runtime_dir(paths_, c.id), attach_proto::kSocketName));
  if (!sock) throw_errno("cannot attach to container " + c.spec.name);
  bool tty = c.spec.process.tty;
  bool with_stdin = o.stdin && c.spec.process.open_stdin;
  char hello = attach_proto::hello(attach_proto::kStdout | attach_proto::kStderr | (with_stdin ? attach_proto::kStdin : 0));
  if (!write_all(sock.get(), &hello, 1)) throw_errno("cannot attach to container " + c.spec.name);
  // The pty takes the caller's window size now and on each SIGWINCH.
  WinchPipe winch(tty);
  if (tty) send_window_size(sock.get());

  ProxySignals proxy(o.sig_proxy && !tty);
  DetachScanner scanner(keys);
  std::string in;  // frames not yet complete
  char buf[65536];
  bool stdin_open = with_stdin;
  for (;;) {
    pollfd fds[4] = {{sock.get(), POLLIN, 0}, {proxy.fd(), POLLIN, 0}, {stdin_open ? 0 : -1, POLLIN, 0},
                     {winch.fd(), POLLIN, 0}};
    int rc = ::poll(fds, 4, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) throw_errno("attach: poll");
    if (fds[1].revents) {
      unsigned char sig;
      while (::read(proxy.fd(), &sig, 1) == 1) {
        try {
          kill(c.id, sig);
        } catch (const Error&) {
        }
      }
    }
    if (fds[3].revents && winch.drain()) send_window_size(sock.get());
    if (stdin_open && fds[2].revents) {
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // The monitor closes the container's stdin (StdinOnce) or ends
        // this client's streams; the exit or the end comes on the socket.
        stdin_open = false;
        send_input(sock.get(), attach_proto::kInEof, nullptr, 0);
      } else {
        // The detach keys apply to a terminal's keystrokes, not to piped data.
        std::string pass = tty ? scanner.feed(buf, static_cast<size_t>(n)) : std::string(buf, static_cast<size_t>(n));
        if (!pass.empty()) send_input(sock.get(), attach_proto::kInStdin, pass.data(), pass.size());
        if (scanner.detached()) {
          if (detached) *detached = true;
          return 0;
        }
      }
    }
    if (!fds[0].revents) continue;
    ssize_t n = ::read(sock.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the monitor went without an exit frame
    in.append(buf, static_cast<size_t>(n));
    while (in.size() >= attach_proto::kHeader) {
      size_t len = attach_proto::decode_length(in.data());
      if (in.size() < attach_proto::kHeader + len) break;
      int type = in[0];
      const char* data = in.data() + attach_proto::kHeader;
      if (type == attach_proto::kFrameExit) return std::atoi(std::string(data, len).c_str());
      if (type == attach_proto::kFrameError)
        throw Error("cannot attach to container " + c.spec.name + ": " + std::string(data, len), 0, 1);
      write_all(type == attach_proto::kFrameStderr ? 2 : 1, data, len);
      in.erase(0, attach_proto::kHeader + len);
    }
  }
  // No exit frame: read what the state says.
  try {
    return wait(ref);
  } catch (const Error&) {
    return 0;
  }
}

}  // namespace berth::runtime
