// The container's init between clone() and execve(): namespaces that need
// a step after clone, the loopback interface, and the process side (user,
// capabilities, seccomp) shared with exec.
#include "runtime/linux.h"

#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <linux/close_range.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>

#include "base/error.h"
#include "base/fs.h"
#include "runtime/caps.h"

namespace berth::runtime {

void send_fd(int sock, int fd) {
  char byte = 'f';
  struct iovec iov {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof(int));
  if (::sendmsg(sock, &msg, MSG_NOSIGNAL) != 1) throw_errno("cannot pass the pty to the monitor");
}

int receive_fd(int sock) {
  char byte;
  struct iovec iov {&byte, 1};
  alignas(struct cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  struct msghdr msg {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  if (::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1) return -1;
  struct cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof(int));
  return fd;
}

// remove_netns_file is in monitor_loop.cpp (berth-monitor needs it).

int clone_flags(const ContainerSpec& spec) {
  int flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC;
  if (spec.network == NetworkMode::None) flags |= CLONE_NEWNET;
  return flags;
}

void child_fail(int fd, int code, const std::string& message) {
  std::string msg = std::to_string(code) + "\n" + message;
  if (fd >= 0) {
    ssize_t n = ::write(fd, msg.data(), msg.size());
    (void)n;
  }
  ::_exit(code);
}

bool read_child_error(int fd, int& code, std::string& message) {
  std::string buf;
  char tmp[4096];
  for (;;) {
    ssize_t n = ::read(fd, tmp, sizeof tmp);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    buf.append(tmp, static_cast<size_t>(n));
  }
  if (buf.empty()) return false;
  auto nl = buf.find('\n');
  code = std::atoi(buf.substr(0, nl).c_str());
  message = nl == std::string::npos ? "" : buf.substr(nl + 1);
  if (code == 0) code = 125;
  return true;
}

int fork_and_wait(const std::function<void(int error_fd)>& body,
                  const std::function<int(const std::exception&)>& code_for) {
  int errp[2];
  if (::pipe2(errp, O_CLOEXEC) != 0) throw_errno("pipe");
  UniqueFd err_r(errp[0]), err_w(errp[1]);
  std::cout.flush();
  std::fflush(nullptr);
  pid_t child = ::fork();
  if (child < 0) throw_errno("fork");
  if (child == 0) {
    err_r.reset();
    try {
      body(err_w.get());
    } catch (const std::exception& e) {
      child_fail(err_w.get(), code_for(e), e.what());
    }
    ::_exit(0);
  }
  err_w.reset();
  int code = 0;
  std::string why;
  bool failed = read_child_error(err_r.get(), code, why);
  int st = 0;
  while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {
  }
  if (failed) throw Error(why, 0, code);
  return st;
}

std::string find_init_binary(const std::string& self_exe) {
  std::string exe = self_exe;
  if (exe.empty()) {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) throw_errno("--init: cannot read /proc/self/exe");
    exe.assign(buf, static_cast<size_t>(n));
  }
  std::string path = exe.substr(0, exe.rfind('/') + 1) + "berth-init";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
    throw Error("--init: the init binary " + path + " is missing (it is installed next to berth)", 0, 125);
  return path;
}

void validate_sysctls(const ContainerSpec& spec) {
  static const char* const kIpc[] = {"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni",  "kernel.sem",
                                     "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"};
  for (auto& [key, value] : spec.sysctls) {
    // Dots separate components (a slash stands for a dot in a name, as
    // sysctl(8) writes net.ipv4.conf.eth0/100.forwarding); nothing that
    // could climb out of /proc/sys.
    bool well_formed = !key.empty() && key.front() != '.' && key.back() != '.' &&
                       key.find("..") == std::string::npos &&
                       key.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/") ==
                           std::string::npos &&
                       key.find("/.") == std::string::npos && key.find("./") == std::string::npos &&
                       key.front() != '/' && key.back() != '/';
    if (!well_formed) throw Error("invalid sysctl name '" + key + "'", 0, 125);
    if (value.find('\n') != std::string::npos) throw Error("invalid value for sysctl '" + key + "'", 0, 125);
    bool ipc = std::any_of(std::begin(kIpc), std::end(kIpc), [&](const char* k) { return key == k; }) ||
               key.rfind("fs.mqueue.", 0) == 0;
    bool net = key.rfind("net.", 0) == 0;
    if (net && spec.network == NetworkMode::Host)
      throw Error("sysctl '" + key + "' is not allowed with --network host: the container shares the host's network namespace", 0,
                  125);
    if (!ipc && !net)
      throw Error("sysctl '" + key +
                      "' is not whitelisted: a container may only set namespaced sysctls (kernel.msgmax, kernel.msgmnb, "
                      "kernel.msgmni, kernel.sem, kernel.shmall, kernel.shmmax, kernel.shmmni, kernel.shm_rmid_forced, "
                      "fs.mqueue.*, net.*)",
                  0, 125);
  }
}

// Written from inside the container's namespaces (IPC and net sysctls are
// those of the writing task), before the rootfs hides the host's /proc.
static void write_sysctls(const std::map<std::string, std::string>& sysctls) {
  for (auto& [key, value] : sysctls) {
    std::string path = "/proc/sys/";
    for (char ch : key) path += ch == '.' ? '/' : ch == '/' ? '.' : ch;
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) throw_errno("cannot set sysctl " + key + ": open " + path);
    if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
      throw_errno("cannot set sysctl " + key + " to \"" + value + "\"");
  }
}

static int rlimit_resource(const std::string& name) {
  static const std::pair<const char*, int> table[] = {
      {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},       {"data", RLIMIT_DATA},
      {"fsize", RLIMIT_FSIZE},       {"locks", RLIMIT_LOCKS},   {"memlock", RLIMIT_MEMLOCK},
      {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},     {"nofile", RLIMIT_NOFILE},
      {"nproc", RLIMIT_NPROC},       {"rss", RLIMIT_RSS},       {"rtprio", RLIMIT_RTPRIO},
      {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING}, {"stack", RLIMIT_STACK},
      {"as", RLIMIT_AS}};
  for (auto& [n, r] : table)
    if (name == n) return r;
  return -1;
}

void validate_rlimits(const std::vector<Rlimit>& limits) {
  bool can_raise = false;
  std::string status;
  if (read_file_if_exists("/proc/self/status", status)) {
    auto pos = status.find("CapEff:");
    if (pos != std::string::npos)
      can_raise = std::strtoull(status.c_str() + pos + 7, nullptr, 16) & (1ULL << CAP_SYS_RESOURCE);
  }
  for (auto& l : limits) {
    int res = rlimit_resource(l.name);
    if (res < 0) throw Error("invalid ulimit type: " + l.name, 0, 125);
    if (l.soft > l.hard)
      throw Error("ulimit soft limit must be less than or equal to hard limit: " + l.name, 0, 125);
    struct rlimit cur {};
    ::getrlimit(res, &cur);
    // Without CAP_SYS_RESOURCE the kernel refuses; say so before starting.
    if (!can_raise && cur.rlim_max != RLIM_INFINITY && l.hard > cur.rlim_max)
      throw Error("ulimit " + l.name + ": cannot raise the hard limit above " + std::to_string(cur.rlim_max) +
                      " (berth lacks CAP_SYS_RESOURCE)",
                  0, 125);
  }
}

static void apply_rlimits(const std::vector<Rlimit>& limits) {
  for (auto& l : limits) {
    struct rlimit r {static_cast<rlim_t>(l.soft), static_cast<rlim_t>(l.hard)};
    if (::setrlimit(rlimit_resource(l.name), &r) != 0) throw_errno("setrlimit " + l.name);
  }
}

// A new network namespace has only "lo", and it is down.
static void bring_up_loopback() {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno("socket");
  struct ifreq ifr {};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) != 0) throw_errno("SIOCGIFFLAGS lo");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) != 0) throw_errno("cannot bring up lo");
}

static std::string env_value(const std::vector<std::string>& env, const std::string& key) {
  for (auto& kv : env)
    if (kv.compare(0, key.size() + 1, key + "=") == 0) return kv.substr(key.size() + 1);
  return {};
}

// The executable, looked up the way docker does: a name with a slash is
// used as is, otherwise each $PATH entry in turn. Returns the exit code
// docker uses when it cannot be run (0 when it can).
static int find_executable(const std::string& name, const std::vector<std::string>& env, std::string& path,
                           std::string& why) {
  auto check = [&](const std::string& p) {
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return 127;
    if (S_ISDIR(st.st_mode) || ::access(p.c_str(), X_OK) != 0) return 126;
    return 0;
  };
  if (name.empty()) {
    why = "no command specified";
    return 125;
  }
  if (name.find('/') != std::string::npos) {
    path = name;
    int rc = check(name);
    if (rc == 127) why = "exec: \"" + name + "\": stat " + name + ": no such file or directory";
    if (rc == 126) why = "exec: \"" + name + "\": permission denied";
    return rc;
  }
  std::string dirs = env_value(env, "PATH");
  int best = 127;
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string dir = dirs.substr(start, end - start);
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    int rc = check(candidate);
    if (rc == 0) {
      path = candidate;
      return 0;
    }
    if (rc == 126) best = 126;
    start = end + 1;
  }
  why = best == 126 ? "exec: \"" + name + "\": permission denied"
                    : "exec: \"" + name + "\": executable file not found in $PATH";
  return best;
}

void finish_and_exec(const InitConfig& cfg, const ProcessSpec& process, const std::vector<std::string>& env,
                     int error_fd) {
  std::string path, why;
  if (int rc = find_executable(process.args.empty() ? "" : process.args[0], env, path, why); rc != 0)
    child_fail(error_fd, rc, why);

  apply_rlimits(cfg.spec.rlimits);
  const SecuritySpec& sec = cfg.spec.security;
  if (sec.no_new_privileges && ::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw_errno("no_new_privs");
  limit_bounding_set(cfg.caps);
  // Loaded while the process still holds CAP_SYS_ADMIN (the kernel demands
  // it without no_new_privs); the profile allows the few calls left.
  if (cfg.seccomp) cfg.seccomp->load();
  const ResolvedUser& u = cfg.user;
  if (::setgroups(u.groups.size(), u.groups.data()) != 0) throw_errno("setgroups");
  if (::setresgid(u.gid, u.gid, u.gid) != 0) throw_errno("setgid " + std::to_string(u.gid));
  if (::setresuid(u.uid, u.uid, u.uid) != 0) throw_errno("setuid " + std::to_string(u.uid));
  set_process_capabilities(cfg.caps, u.uid == 0);

  std::vector<char*> argv, envp;
  for (auto& a : process.args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  // Only stdio crosses into the container: whatever berth's caller leaked
  // to us without close-on-exec stays behind (the error pipe closes on exec).
  ::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
  // From here on, the container outlives its monitor if the monitor dies.
  ::prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
  ::execve(path.c_str(), argv.data(), envp.data());
  int err = errno;
  child_fail(error_fd, err == ENOENT ? 127 : 126, "exec: \"" + process.args[0] + "\": " + std::strerror(err));
}

void give_pty_to_user(int slave, uid_t uid) {
  // The group (tty, 5) and mode (0620) are the devpts mount's; as runc
  // does, only the owner changes, so the user can reopen its terminal
  // (/dev/stdout, `tty`, ssh-style tools) after dropping root.
  if (uid != 0 && ::fchown(slave, uid, static_cast<gid_t>(-1)) != 0) throw_errno("cannot chown the pty");
}

void container_init(const InitConfig& cfg, int go_fd, int error_fd) {
  try {
    // Until it execs, the init dies with its monitor.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int s = 1; s < NSIG; ++s)
      if (s != SIGKILL && s != SIGSTOP) ::signal(s, SIG_DFL);

    auto enter_cgroup = [&] {
      char go = 0;
      if (::read(go_fd, &go, 1) != 1) ::_exit(125);  // the monitor gave up
      ::close(go_fd);
      // The cgroup namespace is rooted where the monitor has just put us.
      if (::unshare(CLONE_NEWCGROUP) != 0) throw_errno("unshare(CLONE_NEWCGROUP)");
    };
    const ContainerSpec& spec = cfg.spec;
    if (::sethostname(spec.hostname.data(), spec.hostname.size()) != 0) throw_errno("sethostname");
    if (spec.network == NetworkMode::Netns) {
      // Before pivot_root, while the path is still reachable.
      UniqueFd ns(::open(spec.netns_path.c_str(), O_RDONLY | O_CLOEXEC));
      if (!ns) throw_errno("cannot open the network namespace " + spec.netns_path);
      if (::setns(ns.get(), CLONE_NEWNET) != 0) throw_errno("cannot join the network namespace " + spec.netns_path);
    }
    if (spec.network == NetworkMode::None) bring_up_loopback();
    write_sysctls(spec.sysctls);
    setup_rootfs(cfg, enter_cgroup);

    if (::setsid() < 0) throw_errno("setsid");
    if (spec.process.tty) {
      // The pty comes from the container's own devpts instance, so `tty`
      // and /proc/self/fd/0 name a device that exists inside.
      UniqueFd master(::open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
      if (!master || ::unlockpt(master.get()) != 0) throw_errno("cannot allocate a pty");
      const char* name = ::ptsname(master.get());
      if (!name) throw_errno("ptsname");
      UniqueFd slave(::open(name, O_RDWR | O_NOCTTY));
      if (!slave) throw_errno(std::string("cannot open ") + name);
      give_pty_to_user(slave.get(), cfg.user.uid);
      for (int fd = 0; fd < 3; ++fd)
        if (::dup2(slave.get(), fd) < 0) throw_errno("dup2");
      if (::ioctl(0, TIOCSCTTY, 0) != 0) throw_errno("cannot set the controlling terminal");
      send_fd(cfg.console_socket, master.get());
      ::close(cfg.console_socket);
    }

    // docker creates a missing working directory.
    std::string cwd = spec.process.cwd.empty() ? "/" : spec.process.cwd;
    if (::chdir(cwd.c_str()) != 0) {
      make_dirs(cwd);
      if (::chdir(cwd.c_str()) != 0) throw_errno("cannot enter the working directory " + cwd);
    }
    ::umask(022);
    if (spec.init) {
      // docker's --init: the init runs the command as its child.
      ProcessSpec with_init = spec.process;
      with_init.args.insert(with_init.args.begin(), {kInitPath, "--"});
      finish_and_exec(cfg, with_init, cfg.env, error_fd);
    }
    finish_and_exec(cfg, spec.process, cfg.env, error_fd);
  } catch (const std::exception& e) {
    child_fail(error_fd, 125, e.what());
  }
}

}  // namespace berth::runtime
