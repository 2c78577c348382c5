// The verbs of runtime.h: create, start, kill, stop, wait, remove, pause,
// exec, and the live view of a container's state.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/write_all.h"
#include "runtime/attach.h"
#include "runtime/caps.h"
#include "runtime/cgroup.h"
#include "runtime/linux.h"
#include "runtime/monitor.h"
#include "runtime/seccomp.h"
#include "runtime/state.h"
#include "runtime/user.h"
#include "runtime/volume.h"

namespace berth::runtime {

namespace {

constexpr const char* kDefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

[[noreturn]] void fail(const std::string& msg, int err = 0) { throw Error(msg, err, 125); }

bool has_env(const std::vector<std::string>& env, const std::string& key) {
  return std::any_of(env.begin(), env.end(), [&](auto& kv) { return kv.compare(0, key.size() + 1, key + "=") == 0; });
}

// A pidfd pins the process: once opened and checked against the recorded
// start time, signals cannot reach a recycled pid.
UniqueFd open_pidfd(pid_t pid, unsigned long long start) {
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!fd || !state::process_matches(pid, start)) return {};
  return fd;
}

// Waits until the pidfd's process has exited; false on timeout (ms < 0: forever).
bool wait_pidfd(const UniqueFd& fd, int timeout_ms) {
  if (!fd) return true;
  pollfd p{fd.get(), POLLIN, 0};
  for (;;) {
    int rc = ::poll(&p, 1, timeout_ms);
    if (rc < 0 && errno == EINTR) continue;
    return rc > 0;
  }
}

// Mounts under dir on the host (there should be none: the rootfs lives in
// the container's mount namespace) are detached before the directory goes.
void unmount_under(const std::string& dir) {
  std::string info;
  if (!read_file_if_exists("/proc/self/mountinfo", info)) return;
  std::vector<std::string> targets;
  std::istringstream in(info);
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string a, b, c, d, mp;
    f >> a >> b >> c >> d >> mp;
    if (mp == dir || mp.rfind(dir + "/", 0) == 0) targets.push_back(mp);
  }
  std::sort(targets.rbegin(), targets.rend());
  for (auto& t : targets) ::umount2(t.c_str(), MNT_DETACH);
}

// A stop or kill by the user: restart policies leave the container alone
// until it is started again (docker's HasBeenManuallyStopped). Recorded
// before the signal, so the monitor's exit record (a read-modify-write of
// the same file) keeps it. A container waiting to be restarted by its
// policy is simply not restarting any more.
void mark_manually_stopped(const std::string& dir) {
  try {
    ContainerState st = state::load_state(dir);
    if (st.manually_stopped && st.status != Status::Restarting) return;
    st.manually_stopped = true;
    if (st.status == Status::Restarting) st.status = Status::Exited;
    state::save_state(dir, st, false);
  } catch (const Error&) {
  }
}

// Whether `signal` is the one that stops this container (SIGKILL, or its --stop-signal).
bool is_stop_signal(const ContainerSpec& spec, int signal) {
  if (signal == SIGKILL) return true;
  const char* abbrev = ::sigabbrev_np(signal);
  if (!abbrev) return false;
  std::string s = spec.stop_signal;
  return s == std::string("SIG") + abbrev || s == abbrev || s == std::to_string(signal);
}

void remove_tree(const std::string& dir) {
  unmount_under(dir);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) fail("cannot remove " + dir + ": " + ec.message());
}

// Serializes start and remove of one container across berth processes
// (two concurrent starts must not give it two inits). flock on the
// container's directory; released when the fd closes.
class ContainerLock {
 public:
  explicit ContainerLock(const std::string& dir) : fd_(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
    if (!fd_) throw_errno("cannot open " + dir);
    while (::flock(fd_.get(), LOCK_EX) != 0)
      if (errno != EINTR) throw_errno("flock " + dir);
  }

 private:
  UniqueFd fd_;
};

// Serializes name checks and creation across berth processes.
class RootLock {
 public:
  explicit RootLock(const std::string& root) {
    make_dirs(root + "/containers", 0700);
    fd_.reset(::open((root + "/containers/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (!fd_) throw_errno("cannot open " + root + "/containers/.lock");
    while (::flock(fd_.get(), LOCK_EX) != 0)
      if (errno != EINTR) throw_errno("flock");
  }

 private:
  UniqueFd fd_;
};

void write_plain(const std::string& path, const std::string& data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd || ::write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size()))
    throw_errno("cannot write " + path);
}

// In <root>/containers (or <run-root>/containers): ".creating-<pid>-<id>"
// directories whose creator is gone, and ".removing-<pid>-<id>" ones (a
// --rm container's files, renamed away by its monitor) whose monitor died
// before it deleted them.
void remove_abandoned_creations(const std::string& root) {
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(root + "/containers", ec)) {
    std::string n = e.path().filename();
    if (n.rfind(".creating-", 0) != 0 && n.rfind(".removing-", 0) != 0) continue;
    pid_t pid = std::atoi(n.c_str() + 10);
    if (pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM)) continue;
    std::filesystem::remove_all(e.path(), ec);
  }
}

void validate_spec(const ContainerSpec& spec) {
  if (spec.lower_dirs.empty()) fail("no rootfs: the container needs at least one layer directory");
  for (auto& d : spec.lower_dirs)
    if (d.empty() || d[0] != '/' || !is_directory(d)) fail("rootfs layer " + d + " is not an absolute directory");
  if (spec.process.args.empty()) fail("no command specified");
  static const std::regex name_re("^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$");
  if (!spec.name.empty() && !std::regex_match(spec.name, name_re))
    fail("Invalid container name (" + spec.name + "), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
  for (auto& m : spec.mounts) {
    if (m.destination.empty() || m.destination[0] != '/')
      fail("invalid mount destination \"" + m.destination + "\": must be an absolute path");
    if (m.destination == "/") fail("invalid mount destination \"/\"");
    if (m.type == MountSpec::Type::Bind && (m.source.empty() || m.source[0] != '/'))
      fail("invalid bind mount source \"" + m.source + "\": must be an absolute path");
    if (m.type == MountSpec::Type::Volume && !m.source.empty()) try {
        validate_volume_name(m.source);
      } catch (const Error& e) {
        fail(e.what());
      }
  }
  if (spec.log.driver != "json-file" && spec.log.driver != "none")
    fail("unknown log driver \"" + spec.log.driver + "\" (want json-file or none)");
  if (spec.process.cwd.empty() || spec.process.cwd[0] != '/')
    fail("the working directory \"" + spec.process.cwd + "\" is invalid: it needs to be an absolute path");
  validate_sysctls(spec);
}

std::unique_ptr<SeccompFilter> seccomp_for(const SecuritySpec& sec, uint64_t caps, const std::string& cache_dir) {
  if (sec.privileged || sec.seccomp_profile == "unconfined") return nullptr;
  if (sec.seccomp_profile.empty()) return SeccompFilter::compile(default_seccomp_profile(caps), cache_dir);
  return SeccompFilter::compile(parse_seccomp_profile(sec.seccomp_profile, caps), cache_dir);
}

// A container's volumes as the init mounts them: the volume's mountpoint
// bound in, or (volumes with driver options) the filesystem they name.
void resolve_volume_mounts(InitConfig& init, const Paths& paths, bool first_start) {
  VolumeStore store(paths);
  for (size_t i = 0; i < init.spec.mounts.size(); ++i) {
    MountSpec& m = init.spec.mounts[i];
    if (m.type != MountSpec::Type::Volume) continue;
    Volume v = store.get(m.source);
    VolumeMount vm;
    vm.index = i;
    vm.name = v.name;
    auto opt = [&](const char* k) { return v.options.count(k) ? v.options.at(k) : std::string(); };
    std::string type = opt("type"), o = opt("o");
    bool bind = (type == "none" || type.empty()) && ("," + o + ",").find(",bind,") != std::string::npos;
    if (v.options.empty()) {
      m.type = MountSpec::Type::Bind;
      m.source = v.mountpoint;
      vm.copy_up = first_start && !m.no_copy;
    } else if (bind) {
      m.type = MountSpec::Type::Bind;
      m.source = opt("device");
      if (!path_exists(m.source))
        fail("error while mounting volume '" + v.mountpoint + "': failed to mount local volume: " + m.source +
             ": no such file or directory");
    } else {
      vm.fstype = type;
      vm.device = opt("device");
      vm.data = o;
    }
    init.volume_mounts.push_back(vm);
  }
}

std::vector<std::string> layers_for_lookup(const Container& c) {
  std::vector<std::string> layers{c.dir + "/upper"};
  layers.insert(layers.end(), c.spec.lower_dirs.begin(), c.spec.lower_dirs.end());
  return layers;
}

// Everything the init needs, computed (and validated) before any process exists.
InitConfig prepare_init(const Container& c, const ResolvedUser& user, uint64_t caps, SeccompFilter* filter) {
  InitConfig init;
  init.container_dir = c.dir;
  init.spec = c.spec;
  init.user = user;
  init.caps = caps;
  init.seccomp = filter;
  init.env = c.spec.process.env;
  init.cgroup_mounts = container_cgroup_mounts();
  if (!has_env(init.env, "HOME")) init.env.push_back("HOME=" + user.home);
  return init;
}

// While attached, the signals a user sends to `berth run` go to the
// container, as docker's sig-proxy does: the handler only writes the signal
// number to a pipe; the wait loop forwards it through a pidfd.
int g_signal_pipe = -1;
void on_proxied_signal(int sig) {
  unsigned char b = static_cast<unsigned char>(sig);
  int saved = errno;
  ssize_t n = ::write(g_signal_pipe, &b, 1);
  (void)n;
  errno = saved;
}

class SignalProxy {
 public:
  // init <= 0: no proxy (--sig-proxy=false).
  explicit SignalProxy(pid_t init) : pidfd_(init > 0 ? static_cast<int>(::syscall(SYS_pidfd_open, init, 0)) : -1) {
    int p[2];
    if (init <= 0 || ::pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return;
    read_.reset(p[0]);
    write_.reset(p[1]);
    g_signal_pipe = write_.get();
    struct sigaction sa {};
    sa.sa_handler = on_proxied_signal;
    sigemptyset(&sa.sa_mask);
    for (int s : kSignals) ::sigaction(s, &sa, &saved_[index(s)]);
  }
  ~SignalProxy() {
    if (!read_) return;
    for (int s : kSignals) ::sigaction(s, &saved_[index(s)], nullptr);
    g_signal_pipe = -1;
  }
  int fd() const { return read_.get(); }
  void forward() {
    unsigned char b;
    while (::read(read_.get(), &b, 1) == 1)
      if (pidfd_) ::syscall(SYS_pidfd_send_signal, pidfd_.get(), static_cast<int>(b), nullptr, 0);
  }

 private:
  static constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  static size_t index(int s) {
    for (size_t i = 0; i < std::size(kSignals); ++i)
      if (kSignals[i] == s) return i;
    return 0;
  }
  UniqueFd pidfd_, read_, write_;
  struct sigaction saved_[std::size(kSignals)] {};
};

// `exec -t`: a pty from the container's own devpts instance (the caller
// has entered its mount namespace), sized as the caller's terminal.
UniqueFd open_exec_pty(std::string& slave_name) {
  UniqueFd master(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master || ::unlockpt(master.get()) != 0) throw_errno("cannot allocate a pty in the container");
  char name[64];
  if (::ptsname_r(master.get(), name, sizeof name) != 0) throw_errno("ptsname");
  slave_name = name;
  struct winsize ws {};
  for (int fd : {0, 1})
    if (::ioctl(fd, TIOCGWINSZ, &ws) == 0) {
      ::ioctl(master.get(), TIOCSWINSZ, &ws);
      break;
    }
  return master;
}

// `exec -t`: copies the caller's stdin (with -i) to the pty and the pty's
// output to the caller's stdout, and the caller's window size to the pty on
// SIGWINCH, until `inner` has exited and its output is drained. Returns
// inner's wait status.
int relay_exec_pty(pid_t inner, int master, bool forward_stdin) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGWINCH);
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  UniqueFd sfd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  bool exited = false, master_open = true, in_open = forward_stdin;
  int status = 0;
  char buf[65536];
  while (master_open) {
    if (!exited && ::waitpid(inner, &status, WNOHANG) == inner) exited = true;
    pollfd fds[3] = {{master, POLLIN, 0}, {in_open ? 0 : -1, POLLIN, 0}, {sfd.get(), POLLIN, 0}};
    // Once the process is gone, what is left in the pty is read until it
    // runs dry (a background process may keep the pty open).
    int rc = ::poll(fds, 3, exited ? 100 : sfd ? -1 : 200);
    if (rc < 0 && errno != EINTR) break;
    if (rc == 0 && exited) break;
    if (fds[2].revents) {
      signalfd_siginfo si;
      while (::read(sfd.get(), &si, sizeof si) > 0) {
        struct winsize ws {};
        if (si.ssi_signo == SIGWINCH && (::ioctl(0, TIOCGWINSZ, &ws) == 0 || ::ioctl(1, TIOCGWINSZ, &ws) == 0))
          ::ioctl(master, TIOCSWINSZ, &ws);
      }
    }
    if (fds[1].revents) {
      ssize_t n = ::read(0, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) in_open = false;
      else write_all(master, buf, static_cast<size_t>(n));
    }
    if (fds[0].revents) {
      ssize_t n = ::read(master, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) master_open = false;  // EIO: no process holds the pty any more
      else write_all(1, buf, static_cast<size_t>(n));
    }
  }
  if (!exited)
    while (::waitpid(inner, &status, 0) < 0 && errno == EINTR) {
    }
  return status;
}

// The next line from the monitor, forwarding proxied signals meanwhile,
// and (keys set) the caller's stdin to the monitor as input frames until
// the detach keys: then an empty line. winch (if on): its window size too.
std::optional<std::string> next_line_or_signal(int fd, std::string& buf, SignalProxy& proxy,
                                               DetachScanner* keys = nullptr, WinchPipe* winch = nullptr) {
  bool stdin_open = keys != nullptr;
  for (;;) {
    auto nl = buf.find('\n');
    if (nl != std::string::npos) {
      std::string line = buf.substr(0, nl);
      buf.erase(0, nl + 1);
      return line;
    }
    pollfd fds[4] = {{fd, POLLIN, 0}, {proxy.fd(), POLLIN, 0}, {stdin_open ? 0 : -1, POLLIN, 0},
                     {winch ? winch->fd() : -1, POLLIN, 0}};
    int rc = ::poll(fds, 4, -1);
    if (rc < 0 && errno == EINTR) continue;
    if (rc < 0) return std::nullopt;
    if (fds[1].revents) proxy.forward();
    if (fds[3].revents && winch->drain()) send_window_size(fd);
    if (fds[2].revents) {
      char in[4096];
      ssize_t n = ::read(0, in, sizeof in);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        stdin_open = false;
      } else {
        std::string pass = keys->feed(in, static_cast<size_t>(n));
        if (!pass.empty()) send_input(fd, attach_proto::kInStdin, pass.data(), pass.size());
        if (keys->detached()) return std::string();
      }
    }
    if (!fds[0].revents) continue;
    char tmp[4096];
    ssize_t n = ::read(fd, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    buf.append(tmp, static_cast<size_t>(n));
  }
}

}  // namespace

CgroupGuard::~CgroupGuard() {
  if (!cg_) return;
  try {
    cg_->destroy();
  } catch (const std::exception& e) {
    spdlog::warn("cleaning up a cgroup: {}", e.what());
  }
}

Runtime::Runtime(Paths paths) : paths_(std::move(paths)) {}

std::string Runtime::log_path(const Container& c) const { return c.dir + "/" + c.id + "-json.log"; }

// One container's spec and state, by full id; a running one's is checked
// against its monitor and cgroup.
static Container load_container(const Paths& paths, const std::string& id) {
  Container c;
  c.id = id;
  c.dir = state::container_dir(paths, id);
  c.spec = state::load_spec(c.dir);
  c.state = state::load_state(c.dir);
  if (c.state.status == Status::Running || c.state.status == Status::Paused) {
    auto rec = state::load_runtime(state::runtime_dir(paths, id));
    if (rec && state::process_matches(rec->monitor_pid, rec->monitor_start)) {
      c.state.pid = rec->pid;
      c.state.monitor_pid = rec->monitor_pid;
      c.state.status = cgroup_for(id)->frozen() ? Status::Paused : Status::Running;
    } else {
      // The monitor may have recorded the exit just after we read the state.
      c.state = state::load_state(c.dir);
      if (c.state.status == Status::Running || c.state.status == Status::Paused) {
        if (rec && state::process_matches(rec->pid, rec->pid_start)) {
          c.state.status = Status::Dead;
          c.state.pid = rec->pid;
          c.state.error = "the container's monitor died; its process is still running unmonitored";
        } else {
          // Both gone (a host reboot empties the run root): it ended, how is
          // unknown. 255 as docker reports after an unclean shutdown; it
          // can be started again.
          c.state.status = Status::Exited;
          c.state.exit_code = 255;
          c.state.error = "the container's monitor died without recording how the container ended";
        }
      }
    }
  }
  return c;
}

Container Runtime::get(const std::string& ref) const {
  auto ids = state::list_ids(paths_);
  std::string found;
  if (std::find(ids.begin(), ids.end(), ref) != ids.end()) found = ref;
  if (found.empty()) {
    std::string want = ref.size() > 1 && ref[0] == '/' ? ref.substr(1) : ref;
    for (auto& id : ids) {
      try {
        if (state::load_spec(state::container_dir(paths_, id)).name == want) {
          found = id;
          break;
        }
      } catch (const Error&) {
      }
    }
  }
  if (found.empty() && !ref.empty()) {
    for (auto& id : ids) {
      if (id.rfind(ref, 0) != 0) continue;
      if (!found.empty()) throw Error("multiple IDs found with provided prefix: " + ref, 0, 1);
      found = id;
    }
  }
  if (found.empty()) throw Error("No such container: " + ref, 0, 1);
  return load_container(paths_, found);
}

std::vector<Container> Runtime::list() const {
  std::vector<Container> out;
  for (auto& id : state::list_ids(paths_)) {
    try {
      out.push_back(load_container(paths_, id));
    } catch (const Error&) {
      // Removed while listing, or half-created: not a container yet.
    }
  }
  std::sort(out.begin(), out.end(),
            [](const Container& a, const Container& b) { return a.state.created_at > b.state.created_at; });
  return out;
}

std::string new_container_id() { return state::new_id(); }

std::string Runtime::unused_name() const {
  for (;;) {
    std::string name = state::random_name();
    try {
      get(name);
    } catch (const Error&) {
      return name;
    }
  }
}

Container Runtime::create(ContainerSpec spec, const std::string& id) {
  validate_spec(spec);
  if (spec.network == NetworkMode::Netns && (spec.netns_path.empty() || spec.netns_path[0] != '/'))
    fail("network namespace path \"" + spec.netns_path + "\" must be absolute");
  if (!id.empty() && (id.size() != 64 || id.find_first_not_of("0123456789abcdef") != std::string::npos))
    fail("invalid container id " + id + ": want 64 lowercase hex digits");
  // Fail on bad security options now, not at start.
  uint64_t caps = resolve_capabilities(spec.security);
  seccomp_for(spec.security, caps, paths_.run_root + "/seccomp");
  std::vector<std::string> layers = spec.lower_dirs;
  resolve_user(layers, spec.process.user);
  validate_rlimits(spec.rlimits);

  RootLock lock(paths_.root);
  remove_abandoned_creations(paths_.root);
  remove_abandoned_creations(paths_.run_root);
  if (spec.name.empty()) {
    do spec.name = state::random_name();
    while ([&] {
      try {
        get(spec.name);
        return true;
      } catch (const Error&) {
        return false;
      }
    }());
  } else {
    if (spec.name[0] == '/') spec.name.erase(0, 1);
    for (auto& id : state::list_ids(paths_)) {
      try {
        if (state::load_spec(state::container_dir(paths_, id)).name == spec.name)
          fail("Conflict. The container name \"/" + spec.name + "\" is already in use by container \"" + id +
               "\". You have to remove (or rename) that container to be able to reuse that name.");
      } catch (const Error& e) {
        if (e.exit_code() == 125) throw;
      }
    }
  }

  Container c;
  c.id = id.empty() ? state::new_id() : id;
  c.dir = state::container_dir(paths_, c.id);
  if (path_exists(c.dir)) fail("a container with id " + c.id + " exists");
  if (spec.hostname.empty()) {
    if (spec.network == NetworkMode::Host) {
      char host[256] = {};
      ::gethostname(host, sizeof host - 1);
      spec.hostname = host;
    } else {
      spec.hostname = c.id.substr(0, 12);
    }
  }
  if (!has_env(spec.process.env, "PATH")) spec.process.env.insert(spec.process.env.begin(), kDefaultPath);
  if (!has_env(spec.process.env, "HOSTNAME")) spec.process.env.insert(spec.process.env.begin() + 1, "HOSTNAME=" + spec.hostname);

  // Volumes: named ones are created on first use, anonymous ones get
  // their name here. The store's lock is held until the container is
  // recorded, so no volume rm/prune can slip in between.
  VolumeStore volumes(paths_);
  std::optional<VolumeStore::Lock> volume_lock;
  std::vector<std::string> made_volumes;
  auto drop_made_volumes = [&] {
    for (auto& name : made_volumes) try {
        volumes.remove(name, *volume_lock);
      } catch (const Error&) {
      }
  };
  for (auto& m : spec.mounts) {
    if (m.type != MountSpec::Type::Volume) continue;
    if (!volume_lock) volume_lock.emplace(volumes.lock());
    if (!m.source.empty() && volumes.find(m.source)) continue;
    try {
      VolumeCreate req;
      req.name = m.source;
      req.anonymous = m.source.empty();
      m.source = volumes.create(req, *volume_lock).name;
    } catch (const Error& e) {
      drop_made_volumes();
      fail(e.what());
    }
    made_volumes.push_back(m.source);
  }

  // Built under a temporary name and renamed into place, so a create
  // killed halfway never leaves a directory that looks like a container.
  std::string building = paths_.root + "/containers/.creating-" + std::to_string(::getpid()) + "-" + c.id;
  if (::mkdir(building.c_str(), 0700) != 0) {
    int err = errno;
    drop_made_volumes();
    throw_errno("cannot create " + building, err);
  }
  try {
    for (const char* d : {"upper", "work", "merged"}) make_dirs(building + "/" + d, 0755);
    // Written once and bind-mounted: no need for an atomic replace.
    write_plain(building + "/hostname", spec.hostname + "\n");
    std::string hosts = spec.hosts_file;
    if (!hosts.empty()) {
    } else if (spec.network == NetworkMode::Host) {
      read_file_if_exists("/etc/hosts", hosts);
    } else {
      hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n"
              "ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n";
    }
    write_plain(building + "/hosts", hosts);
    std::string resolv = spec.resolv_conf;
    if (resolv.empty()) read_file_if_exists("/etc/resolv.conf", resolv);
    write_plain(building + "/resolv.conf", resolv);
    c.spec = spec;
    // Not fsync'd: a container created just before a power cut may come
    // back unreadable; list() skips it and rm -f removes it.
    state::save_spec(building, spec, false);
    c.state.status = Status::Created;
    c.state.created_at = state::now_rfc3339nano();
    state::save_state(building, c.state, false);
    if (::rename(building.c_str(), c.dir.c_str()) != 0) throw_errno("cannot create " + c.dir);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(building, ec);
    drop_made_volumes();
    throw;
  }
  return c;
}

int Runtime::start(const std::string& ref, const Attach& attach) {
  std::optional<ContainerLock> lock(std::in_place, get(ref).dir);
  Container c = get(ref);  // again, now that nobody else can change it
  if (c.state.status == Status::Running || c.state.status == Status::Paused)
    return 0;  // docker: starting a running container is a no-op
  if (c.state.status == Status::Dead) fail("container " + c.spec.name + " is dead; remove it");
  if (c.state.manually_stopped || (c.state.restart_count != 0 && !attach.by_restart_policy)) {
    // Started again: its restart policy applies again; a start that is not
    // the policy's own counts restarts from 0 again (docker's
    // resetRestartManager).
    ContainerState st = state::load_state(c.dir);
    st.manually_stopped = false;
    if (!attach.by_restart_policy) st.restart_count = 0;
    state::save_state(c.dir, st, false);
  }
  if (c.spec.network == NetworkMode::Netns && !path_exists(c.spec.netns_path))
    fail("cannot start container " + c.spec.name + ": its network namespace " + c.spec.netns_path + " is gone");

  ResolvedUser user = resolve_user(layers_for_lookup(c), c.spec.process.user);
  uint64_t caps = resolve_capabilities(c.spec.security);
  std::unique_ptr<SeccompFilter> filter = seccomp_for(c.spec.security, caps, paths_.run_root + "/seccomp");
  InitConfig init = prepare_init(c, user, caps, filter.get());
  if (c.spec.init) init.init_binary = find_init_binary(paths_.self_exe);
  resolve_volume_mounts(init, paths_, c.state.started_at.empty());
  // docker -v creates a missing host directory.
  for (auto& m : c.spec.mounts)
    if (m.type == MountSpec::Type::Bind && !path_exists(m.source)) make_dirs(m.source);

  std::unique_ptr<Cgroup> cgroup = cgroup_for(c.id);
  CgroupGuard guard(*cgroup);
  cgroup->create(c.spec.limits, c.spec.security.privileged);

  std::string run_dir = state::runtime_dir(paths_, c.id);
  make_dirs(run_dir, 0700);
  // The monitor's reports come back on this socket; an attached caller's
  // keystrokes go the other way (with a tty).
  int rp[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, rp) != 0) throw_errno("socketpair");
  UniqueFd report_r(rp[0]), report_w(rp[1]);

  std::string berth_exe = berth_executable(paths_.self_exe);
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  // Fork twice so the monitor is nobody's child but init's (or a
  // subreaper's): no zombie is left in a long-lived caller.
  pid_t middle = ::fork();
  if (middle < 0) throw_errno("fork");
  if (middle == 0) {
    report_r.reset();
    pid_t monitor = ::fork();
    if (monitor != 0) ::_exit(monitor < 0 ? 1 : 0);
    MonitorLaunch m;
    m.id = c.id;
    m.container_dir = c.dir;
    m.run_dir = run_dir;
    m.init = init;
    m.attach = attach;
    m.cgroup = cgroup.get();
    m.report_fd = report_w.release();
    m.berth_exe = berth_exe;
    run_monitor(m);
  }
  report_w.reset();

  // Read the monitor's report line by line.
  std::string buf;
  auto next_line = [&]() -> std::optional<std::string> {
    for (;;) {
      auto nl = buf.find('\n');
      if (nl != std::string::npos) {
        std::string line = buf.substr(0, nl);
        buf.erase(0, nl + 1);
        return line;
      }
      char tmp[4096];
      ssize_t n = ::read(report_r.get(), tmp, sizeof tmp);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return std::nullopt;
      buf.append(tmp, static_cast<size_t>(n));
    }
  };
  auto first = next_line();
  // The middle child is reaped once the monitor has reported (or failed):
  // waiting for it first would add a wake-up of this process to the start.
  int st = 0;
  while (::waitpid(middle, &st, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail("cannot fork the container's monitor");
  if (!first) fail("the container's monitor died before the container started");
  if (first->rfind("error ", 0) == 0) {
    guard.release();  // the monitor cleaned up
    std::istringstream in(first->substr(6));
    int code = 125;
    in >> code;
    std::string msg;
    std::getline(in, msg);
    if (!msg.empty() && msg[0] == ' ') msg.erase(0, 1);
    std::string rest;
    while (auto more = next_line()) rest += "\n" + *more;
    throw Error(msg + rest, 0, code);
  }
  guard.release();  // the monitor owns the cgroup now
  lock.reset();     // the state says running: a second start is a no-op
  if (!attach.attach) return 0;
  pid_t init_pid = std::atoi(first->c_str() + 3);
  SignalProxy proxy(attach.sig_proxy ? init_pid : 0);
  std::optional<DetachScanner> keys;
  if (attach.stdin && c.spec.process.tty) keys.emplace(parse_detach_keys(attach.detach_keys));
  // The pty takes the caller's window size now and on each SIGWINCH.
  WinchPipe winch(keys.has_value());
  if (keys) send_window_size(report_r.get());
  while (auto line = next_line_or_signal(report_r.get(), buf, proxy, keys ? &*keys : nullptr, &winch)) {
    if (line->rfind("exit ", 0) == 0) return std::atoi(line->c_str() + 5);
    if (keys && keys->detached()) {
      if (attach.detached) *attach.detached = true;
      return 0;  // report_r closes: the monitor stops writing to our terminal
    }
  }
  fail("the container's monitor died before reporting the exit code");
}

void Runtime::kill(const std::string& ref, int signal) {
  Container c = get(ref);
  if (c.state.status != Status::Running && c.state.status != Status::Paused && c.state.pid == 0)
    throw Error("cannot kill container " + ref + ": container " + c.id + " is not running", 0, 1);
  auto rec = state::load_runtime(state::runtime_dir(paths_, c.id));
  if (!rec) throw Error("cannot kill container " + ref + ": it is not running", 0, 1);
  UniqueFd pidfd = open_pidfd(rec->pid, rec->pid_start);
  if (!pidfd) throw Error("cannot kill container " + ref + ": it is not running", 0, 1);
  if (is_stop_signal(c.spec, signal)) mark_manually_stopped(c.dir);
  if (::syscall(SYS_pidfd_send_signal, pidfd.get(), signal, nullptr, 0) != 0)
    throw_errno("cannot kill container " + ref);
  // A frozen (v1) task only dies once thawed.
  if (c.state.status == Status::Paused && signal == SIGKILL) cgroup_for(c.id)->thaw();
}

void Runtime::stop(const std::string& ref, int timeout_s, int signal) {
  Container c = get(ref);
  if (c.state.status == Status::Restarting) mark_manually_stopped(c.dir);
  if (c.state.status != Status::Running && c.state.status != Status::Paused) return;
  auto rec = state::load_runtime(state::runtime_dir(paths_, c.id));
  if (!rec) return;
  mark_manually_stopped(c.dir);
  UniqueFd monitor = open_pidfd(rec->monitor_pid, rec->monitor_start);
  UniqueFd init = open_pidfd(rec->pid, rec->pid_start);
  if (init) ::syscall(SYS_pidfd_send_signal, init.get(), signal, nullptr, 0);
  if (c.state.status == Status::Paused) cgroup_for(c.id)->thaw();
  if (!wait_pidfd(monitor ? monitor : init, timeout_s * 1000)) {
    if (init) ::syscall(SYS_pidfd_send_signal, init.get(), SIGKILL, nullptr, 0);
    wait_pidfd(monitor ? monitor : init, -1);
  }
}

int Runtime::wait(const std::string& ref) {
  for (;;) {
    Container c = get(ref);
    if (c.state.status != Status::Running && c.state.status != Status::Paused) return c.state.exit_code;
    UniqueFd monitor = open_pidfd(c.state.monitor_pid,
                                  state::process_start_time(c.state.monitor_pid));
    wait_pidfd(monitor, -1);
  }
}

void Runtime::remove(const std::string& ref, bool force, bool remove_volumes) {
  Container c;
  try {
    c = get(ref);
  } catch (const Error& e) {
    // A container directory whose files are unreadable (a create cut off
    // by a power loss): removable by its full id.
    std::string dir = state::container_dir(paths_, ref);
    bool is_id = ref.size() == 64 && ref.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!force || !is_id || !is_directory(dir)) throw;
    cgroup_for(ref)->destroy();
    remove_tree(state::runtime_dir(paths_, ref));
    remove_tree(dir);
    return;
  }
  ContainerLock lock(c.dir);
  c = get(c.id);
  bool live = c.state.status == Status::Running || c.state.status == Status::Paused;
  if (live && !force)
    throw Error("cannot remove container \"/" + c.spec.name + "\": container is " + to_string(c.state.status) +
                    ": stop the container before removing or force remove",
                0, 1);
  auto rec = state::load_runtime(state::runtime_dir(paths_, c.id));
  if (rec) {
    UniqueFd monitor = open_pidfd(rec->monitor_pid, rec->monitor_start);
    UniqueFd init = open_pidfd(rec->pid, rec->pid_start);
    if (init) ::syscall(SYS_pidfd_send_signal, init.get(), SIGKILL, nullptr, 0);
    if (c.state.status == Status::Paused) cgroup_for(c.id)->thaw();
    wait_pidfd(init, 10000);
    wait_pidfd(monitor, 10000);
  }
  // Also catches tasks of a container whose monitor died, and a cgroup
  // left by a start that was killed halfway.
  cgroup_for(c.id)->destroy();
  remove_tree(state::runtime_dir(paths_, c.id));
  if (c.spec.network == NetworkMode::Netns && c.spec.remove_netns) remove_netns_file(c.spec.netns_path);
  remove_tree(c.dir);
  if (remove_volumes) remove_anonymous_volumes(paths_, volume_names(c.spec));
}

bool Runtime::end_unmonitored(const std::string& ref) {
  ContainerLock lock(get(ref).dir);
  Container c = get(ref);  // again, under the lock
  if (c.state.status != Status::Dead) return false;
  // Every task of it (the init and what it started) dies with the cgroup.
  std::unique_ptr<Cgroup> cgroup = cgroup_for(c.id);
  bool oom = cgroup->oom_killed();
  cgroup->destroy();  // a frozen (paused) one too
  ContainerState st = state::load_state(c.dir);
  st.status = Status::Exited;
  st.exit_code = exit_code_for_signal(SIGKILL);
  st.oom_killed = oom;
  st.error = "the container's monitor died: its processes, which ran on unlogged, were killed";
  st.finished_at = state::now_rfc3339nano();
  state::save_state(c.dir, st);
  state::remove_runtime(state::runtime_dir(paths_, c.id));  // as its monitor would have
  return true;
}

void Runtime::rename(const std::string& ref, const std::string& new_name) {
  std::string name = !new_name.empty() && new_name[0] == '/' ? new_name.substr(1) : new_name;
  static const std::regex name_re("^[a-zA-Z0-9][a-zA-Z0-9_.-]+$");
  if (!std::regex_match(name, name_re))
    fail("Invalid container name (" + name + "), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
  RootLock lock(paths_.root);
  Container c = get(ref);
  for (auto& id : state::list_ids(paths_)) {
    if (id == c.id) continue;
    try {
      if (state::load_spec(state::container_dir(paths_, id)).name == name)
        fail("Error when allocating new name: The container name \"/" + name + "\" is already in use by container \"" +
             id + "\"");
    } catch (const Error& e) {
      if (e.exit_code() == 125) throw;
    }
  }
  c.spec.name = name;
  state::save_spec(c.dir, c.spec);
}

void Runtime::pause(const std::string& ref) {
  Container c = get(ref);
  if (c.state.status == Status::Paused) throw Error("container " + ref + " is already paused", 0, 1);
  if (c.state.status != Status::Running) throw Error("container " + ref + " is not running", 0, 1);
  cgroup_for(c.id)->freeze();
}

void Runtime::set_health(const std::string& ref, const HealthState& health) {
  Container c = get(ref);
  state::save_health(c.dir, health);
}

void Runtime::unpause(const std::string& ref) {
  Container c = get(ref);
  if (c.state.status != Status::Paused) throw Error("container " + ref + " is not paused", 0, 1);
  cgroup_for(c.id)->thaw();
}

int Runtime::exec(const std::string& ref, const ProcessSpec& process, bool detach) {
  Container c = get(ref);
  if (c.state.status != Status::Running)
    throw Error("container " + c.id + " is " + to_string(c.state.status) + ", not running", 0, 1);
  auto rec = state::load_runtime(state::runtime_dir(paths_, c.id));
  if (!rec) fail("container " + ref + " is not running");
  UniqueFd pidfd = open_pidfd(rec->pid, rec->pid_start);
  if (!pidfd) fail("container " + ref + " is not running");

  // Resolve the user against the running container's files.
  std::string root = "/proc/" + std::to_string(rec->pid) + "/root";
  ResolvedUser user = resolve_user({root}, process.user.empty() ? c.spec.process.user : process.user);
  uint64_t caps = resolve_capabilities(c.spec.security);
  std::unique_ptr<SeccompFilter> filter = seccomp_for(c.spec.security, caps, paths_.run_root + "/seccomp");
  InitConfig cfg = prepare_init(c, user, caps, filter.get());
  std::vector<std::string> env = c.spec.process.env;
  for (auto& kv : process.env) {
    auto key = kv.substr(0, kv.find('='));
    env.erase(std::remove_if(env.begin(), env.end(),
                             [&](auto& e) { return e.compare(0, key.size() + 1, key + "=") == 0; }),
              env.end());
    env.push_back(kv);
  }
  if (!has_env(env, "HOME")) env.push_back("HOME=" + user.home);

  std::unique_ptr<Cgroup> cgroup = cgroup_for(c.id);
  int st = fork_and_wait(
      [&](int err_w) {
        cgroup->add_process(::getpid());
        // Enter every namespace the init has, in one step through its pidfd
        // (no window for pid reuse); the pid namespace applies to children,
        // hence the second fork below.
        int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET | CLONE_NEWCGROUP;
        if (::setns(pidfd.get(), flags) != 0) throw_errno("cannot enter the container's namespaces");
        // -t (not detached): the process's pty comes from the container's
        // /dev/pts; this process relays it to the caller.
        std::string slave_name;
        UniqueFd master;
        if (process.tty && !detach) master = open_exec_pty(slave_name);
        pid_t inner = ::fork();
        if (inner < 0) throw_errno("fork");
        if (inner == 0) {
          if (detach) {
            UniqueFd devnull(::open("/dev/null", O_RDWR | O_CLOEXEC));
            for (int fd = 0; fd < 3; ++fd) ::dup2(devnull.get(), fd);
          } else if (master) {
            master.reset();
            if (::setsid() < 0) throw_errno("setsid");
            UniqueFd slave(::open(slave_name.c_str(), O_RDWR | O_NOCTTY));
            if (!slave) throw_errno("cannot open " + slave_name);
            give_pty_to_user(slave.get(), user.uid);
            for (int fd = 0; fd < 3; ++fd)
              if (::dup2(slave.get(), fd) < 0) throw_errno("dup2");
            if (::ioctl(0, TIOCSCTTY, 0) != 0) throw_errno("cannot set the controlling terminal");
          } else if (!process.open_stdin) {
            // Without -i the process gets no stdin (docker: none attached).
            UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
            ::dup2(devnull.get(), 0);
          }
          std::string cwd = process.cwd.empty() ? c.spec.process.cwd : process.cwd;
          if (::chdir(cwd.c_str()) != 0) throw_errno("cannot enter the working directory " + cwd);
          finish_and_exec(cfg, process, env, err_w);
        }
        ::close(err_w);
        // Detached: the process is left to the container's init to reap.
        if (detach) ::_exit(0);
        int inner_st = 0;
        if (master) inner_st = relay_exec_pty(inner, master.get(), process.open_stdin);
        else
          while (::waitpid(inner, &inner_st, 0) < 0 && errno == EINTR) {
          }
        ::_exit(WIFEXITED(inner_st) ? WEXITSTATUS(inner_st) : exit_code_for_signal(WTERMSIG(inner_st)));
      },
      [](const std::exception&) { return 125; });
  return WIFEXITED(st) ? WEXITSTATUS(st) : exit_code_for_signal(WTERMSIG(st));
}

void Runtime::with_root(const std::string& ref, const std::function<void(int root_fd)>& fn) const {
  Container c = get(ref);
  if (c.state.status == Status::Dead) throw Error("container " + c.spec.name + " is dead; remove it", 0, 1);
  // A start now would mount the same upper dir a second time.
  ContainerLock lock(c.dir);
  c = get(c.id);
  if (c.state.status == Status::Running || c.state.status == Status::Paused) {
    auto rec = state::load_runtime(state::runtime_dir(paths_, c.id));
    UniqueFd pidfd = rec ? open_pidfd(rec->pid, rec->pid_start) : UniqueFd();
    if (!pidfd) throw Error("container " + c.spec.name + " is not running any more", 0, 1);
    std::string path = "/proc/" + std::to_string(rec->pid) + "/root";
    UniqueFd root(::open(path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!root) throw_errno("cannot open the root of container " + c.spec.name);
    // The pid was still the container's init when its root was opened.
    if (!state::process_matches(rec->pid, rec->pid_start))
      throw Error("container " + c.spec.name + " is not running any more", 0, 1);
    fn(root.get());
    return;
  }
  // Stopped: the container's view, built in a mount namespace that dies
  // with the child.
  InitConfig view;
  view.container_dir = c.dir;
  view.spec = c.spec;
  resolve_volume_mounts(view, paths_, false);
  int st = fork_and_wait(
      [&](int) {
        if (::unshare(CLONE_NEWNS) != 0) throw_errno("unshare(CLONE_NEWNS)");
        mount_copy_view(view);
        std::string merged = c.dir + "/merged";
        UniqueFd root(::open(merged.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
        if (!root) throw_errno("cannot open " + merged);
        fn(root.get());
        root.reset();
        // Let go of the overlay now rather than when the namespace is
        // reaped, so a start right after the copy finds its upper dir free.
        ::umount2(merged.c_str(), MNT_DETACH);
      },
      [](const std::exception& e) {
        auto* err = dynamic_cast<const Error*>(&e);
        return err && err->exit_code() ? err->exit_code() : 1;
      });
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) throw Error("the copy process failed", 0, 1);
}

}  // namespace berth::runtime
