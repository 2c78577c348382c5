#include "runtime/seccomp.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/utsname.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/fs.h"
#include "runtime/caps.h"

namespace berth::runtime {

namespace {

// Syscalls docker's default profile allows to every container: the normal
// life of a process (files, memory, signals, sockets, IPC, time reading,
// scheduling hints). Everything absent — mount, unshare, setns, reboot,
// kexec, module loading, clock setting, keyring, bpf, userfaultfd,
// open_by_handle_at, ... — fails with EPERM unless a capability rule
// below allows it.
const char* const kAllowed[] = {
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "cachestat", "capget", "capset",
    "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
    "close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait",
    "epoll_wait_old", "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat",
    "faccessat2", "fadvise64", "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat",
    "fchmodat2", "fchown", "fchown32", "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr",
    "flock", "fork", "fremovexattr", "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64",
    "fsync", "ftruncate", "ftruncate64", "futex", "futex_requeue", "futex_time64", "futex_wait",
    "futex_waitv", "futex_wake", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid",
    "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
    "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid",
    "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32",
    "getxattr", "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel",
    "ioctl", "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get",
    "ioprio_set", "io_setup", "io_submit", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset",
    "landlock_restrict_self", "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr",
    "llistxattr", "_llseek", "lremovexattr", "lseek", "lsetxattr", "lstat", "lstat64", "madvise",
    "map_shadow_stack", "membarrier", "memfd_create", "memfd_secret", "mincore", "mkdir", "mkdirat", "mknod",
    "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect", "mq_getsetattr", "mq_notify",
    "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64",
    "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock", "munlockall",
    "munmap", "name_to_handle_at", "nanosleep", "newfstatat", "_newselect", "open", "openat", "openat2",
    "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect",
    "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease",
    "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead", "readlink",
    "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg", "remap_file_pages",
    "removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq", "rt_sigaction",
    "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop",
    "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
    "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32",
    "setresuid", "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid",
    "setsockopt", "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl",
    "shmdt", "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn",
    "socketcall", "socketpair", "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink",
    "symlinkat", "sync", "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create",
    "timer_delete", "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime",
    "timer_settime64", "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime",
    "timerfd_settime64", "times", "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink",
    "unlinkat", "utime", "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid",
    "waitpid", "write", "writev",
    // x86-64 specifics.
    "arch_prctl", "modify_ldt",
    // Allowed since Linux 4.8, where ptrace can no longer bypass seccomp.
    "ptrace", "process_vm_readv", "process_vm_writev",
};

struct CapRule {
  int cap;
  std::vector<std::string> names;
};

// Syscalls docker allows only when the container holds the capability.
const std::vector<CapRule>& cap_rules() {
  static const std::vector<CapRule> rules = {
      {CAP_SYS_ADMIN, {"bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
                       "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
                       "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
                       "umount2", "unshare"}},
      {CAP_SYS_BOOT, {"reboot"}},
      {CAP_SYS_CHROOT, {"chroot"}},
      {CAP_SYS_MODULE, {"delete_module", "init_module", "finit_module"}},
      {CAP_SYS_PACCT, {"acct"}},
      {CAP_SYS_PTRACE, {"kcmp", "pidfd_getfd", "process_madvise"}},
      {CAP_SYS_RAWIO, {"iopl", "ioperm"}},
      {CAP_SYS_TIME, {"settimeofday", "stime", "clock_settime", "clock_settime64"}},
      {CAP_SYS_TTY_CONFIG, {"vhangup"}},
      {CAP_SYS_NICE, {"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"}},
      {CAP_SYSLOG, {"syslog"}},
      {CAP_BPF, {"bpf"}},
      {CAP_PERFMON, {"perf_event_open"}},
  };
  return rules;
}

// Namespace-creating clone flags (CLONE_NEWNS|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWCGROUP).
constexpr uint64_t kCloneNamespaceFlags = 0x7E020000ULL;

bool has_cap(uint64_t caps, int cap) { return cap < 64 && (caps & (1ULL << cap)); }

[[noreturn]] void bad_profile(const std::string& why) { throw Error("invalid seccomp profile: " + why, 0, 125); }

uint32_t action_for(const std::string& action, int errno_ret, int default_errno) {
  if (action == "SCMP_ACT_ALLOW") return SCMP_ACT_ALLOW;
  if (action == "SCMP_ACT_ERRNO") return SCMP_ACT_ERRNO(errno_ret >= 0 ? errno_ret : default_errno);
  if (action == "SCMP_ACT_KILL" || action == "SCMP_ACT_KILL_THREAD") return SCMP_ACT_KILL_THREAD;
  if (action == "SCMP_ACT_KILL_PROCESS") return SCMP_ACT_KILL_PROCESS;
  if (action == "SCMP_ACT_TRAP") return SCMP_ACT_TRAP;
  if (action == "SCMP_ACT_LOG") return SCMP_ACT_LOG;
  if (action == "SCMP_ACT_TRACE") return SCMP_ACT_TRACE(errno_ret >= 0 ? errno_ret : default_errno);
  bad_profile("unknown action \"" + action + "\"");
}

scmp_compare op_for(const std::string& op) {
  if (op == "SCMP_CMP_NE") return SCMP_CMP_NE;
  if (op == "SCMP_CMP_LT") return SCMP_CMP_LT;
  if (op == "SCMP_CMP_LE") return SCMP_CMP_LE;
  if (op == "SCMP_CMP_EQ") return SCMP_CMP_EQ;
  if (op == "SCMP_CMP_GE") return SCMP_CMP_GE;
  if (op == "SCMP_CMP_GT") return SCMP_CMP_GT;
  if (op == "SCMP_CMP_MASKED_EQ") return SCMP_CMP_MASKED_EQ;
  bad_profile("unknown comparison \"" + op + "\"");
}

// "SCMP_ARCH_X86_64" -> libseccomp's token, or 0 when unknown.
uint32_t arch_for(const std::string& name) {
  std::string n = name.rfind("SCMP_ARCH_", 0) == 0 ? name.substr(10) : name;
  for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return seccomp_arch_resolve_name(n.c_str());
}

std::string native_arch_name() {
  uint32_t native = seccomp_arch_native();
  if (native == SCMP_ARCH_X86_64) return "amd64";
  if (native == SCMP_ARCH_AARCH64) return "arm64";
  if (native == SCMP_ARCH_X86) return "x86";
  return "other";
}

bool kernel_at_least(const std::string& min) {
  struct utsname u {};
  ::uname(&u);
  int a = 0, b = 0, ma = 0, mb = 0;
  std::sscanf(u.release, "%d.%d", &a, &b);
  std::sscanf(min.c_str(), "%d.%d", &ma, &mb);
  return a > ma || (a == ma && b >= mb);
}

}  // namespace

SeccompProfile default_seccomp_profile(uint64_t caps) {
  SeccompProfile p;
  p.architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
  if (seccomp_arch_native() != SCMP_ARCH_X86_64) p.architectures.clear();
  p.rules.push_back({std::vector<std::string>(std::begin(kAllowed), std::end(kAllowed)), "SCMP_ACT_ALLOW", -1, {}});
  // personality: only the harmless personas (Linux, 32-bit address space, uname26 ...).
  for (uint64_t persona : {0x0ULL, 0x8ULL, 0x20000ULL, 0x20008ULL, 0xffffffffULL})
    p.rules.push_back({{"personality"}, "SCMP_ACT_ALLOW", -1, {{0, persona, 0, "SCMP_CMP_EQ"}}});
  // socket: everything but AF_VSOCK (40), which reaches the host.
  p.rules.push_back({{"socket"}, "SCMP_ACT_ALLOW", -1, {{0, 40, 0, "SCMP_CMP_NE"}}});
  if (!has_cap(caps, CAP_SYS_ADMIN)) {
    // clone without namespace flags; clone3 cannot be filtered on its flags
    // (they are behind a pointer), so it reports ENOSYS and libc falls back to clone.
    p.rules.push_back({{"clone"}, "SCMP_ACT_ALLOW", -1, {{0, kCloneNamespaceFlags, 0, "SCMP_CMP_MASKED_EQ"}}});
    p.rules.push_back({{"clone3"}, "SCMP_ACT_ERRNO", 38 /* ENOSYS */, {}});
  }
  for (auto& rule : cap_rules())
    if (has_cap(caps, rule.cap)) p.rules.push_back({rule.names, "SCMP_ACT_ALLOW", -1, {}});
  return p;
}

SeccompProfile parse_seccomp_profile(const std::string& text, uint64_t caps) {
  using nlohmann::json;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    bad_profile(e.what());
  }
  if (!j.is_object()) bad_profile("not a JSON object");
  SeccompProfile p;
  try {
    p.default_action = j.value("defaultAction", "");
    if (p.default_action.empty()) bad_profile("defaultAction is missing");
    p.default_errno = j.value("defaultErrnoRet", 1);
    action_for(p.default_action, -1, p.default_errno);  // validates
    std::string native = native_arch_name();
    if (j.contains("archMap")) {
      for (auto& m : j["archMap"]) {
        p.architectures.push_back(m.value("architecture", ""));
        for (auto& s : m.value("subArchitectures", std::vector<std::string>{})) p.architectures.push_back(s);
      }
    } else {
      p.architectures = j.value("architectures", std::vector<std::string>{});
    }
    for (auto& s : j.value("syscalls", json::array())) {
      auto matches_caps = [&](const json& cond, bool want) {
        for (auto& c : cond.value("caps", std::vector<std::string>{}))
          if (has_cap(caps, capability_from_name(c)) == want) return true;
        return false;
      };
      auto matches_arch = [&](const json& cond) {
        for (auto& a : cond.value("arches", std::vector<std::string>{}))
          if (a == native) return true;
        return false;
      };
      if (s.contains("includes")) {
        auto& inc = s["includes"];
        if (inc.contains("caps") && !inc["caps"].empty()) {
          for (auto& c : inc["caps"])
            if (!has_cap(caps, capability_from_name(c.get<std::string>()))) goto skip;
        }
        if (inc.contains("arches") && !inc["arches"].empty() && !matches_arch(inc)) goto skip;
        if (inc.contains("minKernel") && !kernel_at_least(inc["minKernel"].get<std::string>())) goto skip;
      }
      if (s.contains("excludes")) {
        auto& exc = s["excludes"];
        if (matches_caps(exc, true) || matches_arch(exc)) goto skip;
        if (exc.contains("minKernel") && kernel_at_least(exc["minKernel"].get<std::string>())) goto skip;
      }
      {
        SeccompRule r;
        if (s.contains("names")) r.names = s["names"].get<std::vector<std::string>>();
        if (s.contains("name")) r.names.push_back(s["name"].get<std::string>());
        r.action = s.value("action", "");
        r.errno_ret = s.value("errnoRet", -1);
        action_for(r.action, r.errno_ret, p.default_errno);
        for (auto& a : s.value("args", json::array())) {
          SeccompArg arg;
          arg.index = a.value("index", 0u);
          arg.value = a.value("value", uint64_t{0});
          arg.value_two = a.value("valueTwo", uint64_t{0});
          arg.op = a.value("op", "");
          op_for(arg.op);
          if (arg.index > 5) bad_profile("argument index out of range");
          r.args.push_back(arg);
        }
        p.rules.push_back(std::move(r));
      }
    skip:;
    }
  } catch (const json::exception& e) {
    bad_profile(e.what());
  }
  return p;
}

namespace {

// libseccomp's context, released on every path.
struct ScmpContext {
  scmp_filter_ctx ctx;
  explicit ScmpContext(uint32_t def) : ctx(seccomp_init(def)) {
    if (!ctx) throw Error("seccomp_init failed", 0, 125);
  }
  ~ScmpContext() { seccomp_release(ctx); }
  ScmpContext(const ScmpContext&) = delete;
  ScmpContext& operator=(const ScmpContext&) = delete;
};

void add_rules(scmp_filter_ctx ctx, const SeccompProfile& p, uint32_t def) {
  for (auto& a : p.architectures) {
    uint32_t arch = arch_for(a);
    if (arch == 0) continue;  // an architecture libseccomp does not know
    int rc = seccomp_arch_add(ctx, arch);
    if (rc != 0 && rc != -EEXIST) throw Error("seccomp: cannot add architecture " + a, -rc, 125);
  }
  for (auto& r : p.rules) {
    uint32_t action = action_for(r.action, r.errno_ret, p.default_errno);
    if (action == def) continue;  // libseccomp refuses rules equal to the default
    bool same_index = false;
    for (size_t i = 0; i < r.args.size(); ++i)
      for (size_t k = 0; k < i; ++k) same_index |= r.args[i].index == r.args[k].index;
    std::vector<scmp_arg_cmp> cmps;
    // docker's (value, valueTwo) map to libseccomp's (datum_a, datum_b);
    // for MASKED_EQ that is (mask, expected).
    for (auto& a : r.args) cmps.push_back(scmp_arg_cmp{a.index, op_for(a.op), a.value, a.value_two});
    for (auto& name : r.names) {
      int nr = seccomp_syscall_resolve_name(name.c_str());
      if (nr == __NR_SCMP_ERROR) continue;  // unknown on this architecture: docker ignores it too
      int rc = 0;
      if (same_index) {
        // Several conditions on one argument: libseccomp needs one rule each (OR).
        for (auto& c : cmps) rc = rc ? rc : seccomp_rule_add_array(ctx, action, nr, 1, &c);
      } else {
        rc = seccomp_rule_add_array(ctx, action, nr, static_cast<unsigned>(cmps.size()), cmps.data());
      }
      if (rc != 0 && rc != -EEXIST) throw Error("seccomp: cannot add a rule for " + name, -rc, 125);
    }
  }
}

// A stable text form of the profile, for the cache key.
std::string canonical(const SeccompProfile& p) {
  const scmp_version* v = seccomp_version();
  std::string out = "v" + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->micro) +
                    "|" + p.default_action + "|" + std::to_string(p.default_errno) + "|";
  for (auto& a : p.architectures) out += a + ",";
  for (auto& r : p.rules) {
    out += "\n" + r.action + "/" + std::to_string(r.errno_ret) + ":";
    for (auto& n : r.names) out += n + ",";
    for (auto& a : r.args)
      out += "[" + std::to_string(a.index) + a.op + std::to_string(a.value) + "," + std::to_string(a.value_two) + "]";
  }
  return out;
}

std::string fnv1a_hex(const std::string& s) {
  uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ULL;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace

SeccompFilter::SeccompFilter(const SeccompProfile& p) {
  uint32_t def = action_for(p.default_action, -1, p.default_errno);
  ScmpContext c(def);
  add_rules(c.ctx, p, def);
  UniqueFd mem(::memfd_create("berth-seccomp", MFD_CLOEXEC));
  if (!mem) throw_errno("memfd_create");
  if (int rc = seccomp_export_bpf(c.ctx, mem.get()); rc != 0) throw Error("seccomp: cannot compile the filter", -rc, 125);
  program_ = read_file("/proc/self/fd/" + std::to_string(mem.get()));
  if (program_.empty() || program_.size() % sizeof(sock_filter) != 0)
    throw Error("seccomp: the compiled filter is malformed", 0, 125);
}

std::unique_ptr<SeccompFilter> SeccompFilter::compile(const SeccompProfile& p, const std::string& cache_dir) {
  if (cache_dir.empty()) return std::make_unique<SeccompFilter>(p);
  std::string path = cache_dir + "/" + fnv1a_hex(canonical(p)) + ".bpf";
  std::unique_ptr<SeccompFilter> f(new SeccompFilter());
  if (read_file_if_exists(path, f->program_) && !f->program_.empty() && f->program_.size() % sizeof(sock_filter) == 0)
    return f;
  f = std::make_unique<SeccompFilter>(p);
  try {
    make_dirs(cache_dir, 0700);
    write_file_atomic(path, f->program_, 0600);
  } catch (const Error&) {
    // A read-only run root only costs the cache.
  }
  return f;
}

void SeccompFilter::load() const {
  struct sock_fprog prog {};
  prog.len = static_cast<unsigned short>(program_.size() / sizeof(sock_filter));
  prog.filter = reinterpret_cast<sock_filter*>(const_cast<char*>(program_.data()));
  if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) throw_errno("seccomp: cannot load the filter");
}

}  // namespace berth::runtime
