// `berth check`: what this kernel offers berth, like lxc-checkconfig.
// Only reads; each probe is a file in /proc or /sys, or a harmless syscall.
#include <linux/capability.h>
#include <linux/netlink.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <sstream>

#include "base/fs.h"
#include "runtime/runtime.h"

namespace berth::runtime {

namespace {

using Level = CheckItem::Level;

bool has_filesystem(const std::string& fs) {
  std::string text;
  try {
    read_file_if_exists("/proc/filesystems", text);
  } catch (...) {
    return false;
  }
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    auto tab = line.rfind('\t');
    if ((tab == std::string::npos ? line : line.substr(tab + 1)) == fs) return true;
  }
  return false;
}

bool kernel_module_present(const std::string& name) {
  if (is_directory("/sys/module/" + name)) return true;
  struct utsname u {};
  ::uname(&u);
  std::string base = std::string("/lib/modules/") + u.release + "/kernel/";
  for (const char* dir : {"drivers/net/", "net/bridge/", "net/netfilter/"})
    for (const char* ext : {".ko", ".ko.xz", ".ko.zst", ".ko.gz"})
      if (path_exists(base + dir + name + ext)) return true;
  std::string builtin;
  try {
    read_file_if_exists(std::string("/lib/modules/") + u.release + "/modules.builtin", builtin);
  } catch (...) {
  }
  return builtin.find("/" + name + ".ko") != std::string::npos;
}

uint64_t effective_caps() {
  std::string status;
  read_file_if_exists("/proc/self/status", status);
  auto pos = status.find("CapEff:");
  return pos == std::string::npos ? 0 : std::strtoull(status.c_str() + pos + 7, nullptr, 16);
}

// ENOSYS means the kernel lacks the syscall; any other answer means it exists.
bool syscall_exists(long nr) {
  long rc = ::syscall(nr, -1, nullptr, 0, 0);
  return !(rc < 0 && errno == ENOSYS);
}

}  // namespace

std::vector<CheckItem> check_host() {
  std::vector<CheckItem> out;
  auto add = [&](std::string group, std::string name, bool ok, bool required, std::string detail,
                 Level if_missing = Level::Missing) {
    out.push_back({std::move(group), std::move(name), ok ? Level::Ok : if_missing, required, std::move(detail)});
  };

  struct Ns {
    const char* file;
    const char* name;
    bool required;
    const char* cost;
  };
  for (Ns ns : {Ns{"mnt", "Mount namespace", true, "the container's filesystem"},
                Ns{"pid", "PID namespace", true, "process isolation"},
                Ns{"uts", "UTS namespace", true, "the container's hostname"},
                Ns{"ipc", "IPC namespace", true, "System V IPC isolation"},
                Ns{"net", "Network namespace", true, "--network none and every network but host"},
                Ns{"cgroup", "Cgroup namespace", false, "containers see the host's cgroup paths"},
                Ns{"user", "User namespace", false, "rootless mode (not used yet)"}})
    add("Namespaces", ns.name, path_exists(std::string("/proc/self/ns/") + ns.file), ns.required, ns.cost,
        ns.required ? Level::Missing : Level::Degraded);

  add("Filesystems", "overlayfs", has_filesystem("overlay"), true, "container root filesystems");
  add("Filesystems", "tmpfs", has_filesystem("tmpfs"), true, "/dev, /dev/shm and --tmpfs");
  add("Filesystems", "devpts", has_filesystem("devpts"), true, "/dev/pts and -t");
  add("Filesystems", "mqueue", has_filesystem("mqueue"), false, "/dev/mqueue", Level::Degraded);
  add("Filesystems", "openat2 (RESOLVE_IN_ROOT)", syscall_exists(SYS_openat2), true,
      "safe mount targets inside image symlinks (Linux 5.6)");
  add("Filesystems", "pidfd", syscall_exists(SYS_pidfd_open), true,
      "signalling containers without pid-reuse races (Linux 5.3)");

  HostInfo host = probe_host();
  add("Cgroups", std::string("Cgroup mode: ") + to_string(host.cgroup_mode), true, false, "");
  auto has_ctrl = [&](const std::string& c) {
    bool v1 = std::find(host.cgroup_v1_controllers.begin(), host.cgroup_v1_controllers.end(), c) !=
              host.cgroup_v1_controllers.end();
    bool v2 = std::find(host.cgroup_v2_controllers.begin(), host.cgroup_v2_controllers.end(), c) !=
              host.cgroup_v2_controllers.end();
    return host.cgroup_mode == CgroupMode::Unified ? v2 : v1;
  };
  bool unified = host.cgroup_mode == CgroupMode::Unified;
  add("Cgroups", "memory controller", has_ctrl("memory"), false, "--memory, --memory-swap and OOM detection",
      Level::Degraded);
  add("Cgroups", "pids controller", has_ctrl("pids"), false, "--pids-limit", Level::Degraded);
  add("Cgroups", "cpu controller", has_ctrl("cpu"), false, "--cpus and --cpu-shares", Level::Degraded);
  add("Cgroups", "cpuset controller", has_ctrl("cpuset"), false, "--cpuset-cpus", Level::Degraded);
  add("Cgroups", unified ? "freezer (cgroup.freeze)" : "freezer controller",
      unified ? true : has_ctrl("freezer"), false, "pause and unpause", Level::Degraded);
  add("Cgroups", unified ? "device control (eBPF, not implemented)" : "devices controller",
      !unified && has_ctrl("devices"), false, "restricting device access beyond the default /dev",
      Level::Degraded);

  add("Security", "seccomp", ::prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0, false,
      "docker's default syscall policy; without it containers run unconfined", Level::Degraded);
  uint64_t eff = effective_caps();
  bool admin = eff & (1ULL << CAP_SYS_ADMIN);
  add("Security", "CAP_SYS_ADMIN", admin, true, "mounts, namespaces and pivot_root (berth must run as root)");
  add("Security", "CAP_SYS_RESOURCE", eff & (1ULL << CAP_SYS_RESOURCE), false,
      "raising rlimits above their hard limit (--ulimit)", Level::Degraded);
  add("Security", "no_new_privs", true, false, "");

  add("Networking", "veth", kernel_module_present("veth"), false, "bridge networks", Level::Degraded);
  add("Networking", "bridge", kernel_module_present("bridge"), false, "bridge networks", Level::Degraded);
  // nf_tables is often built in (no /sys/module entry): nfnetlink answering is the better sign.
  bool nfnetlink = false;
  if (int fd = ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER); fd >= 0) {
    nfnetlink = true;
    ::close(fd);
  }
  add("Networking", "nftables", nfnetlink || kernel_module_present("nf_tables"), false, "port publishing and NAT",
      Level::Degraded);
  return out;
}

}  // namespace berth::runtime
