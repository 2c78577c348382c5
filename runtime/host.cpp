#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>

#include "base/fs.h"
#include "runtime/cgroup.h"
#include "runtime/runtime.h"

namespace berth::runtime {

const char* to_string(CgroupMode mode) {
  switch (mode) {
    case CgroupMode::Legacy: return "v1 (legacy)";
    case CgroupMode::Hybrid: return "hybrid (v1 controllers + v2)";
    case CgroupMode::Unified: return "v2 (unified)";
  }
  return "unknown";
}

static std::vector<std::string> split_ws(const std::string& s) {
  return cgroup_detail::split_fields(s, " \t\n");
}

HostInfo probe_host() {
  HostInfo info;
  struct utsname u {};
  if (::uname(&u) == 0) {
    info.kernel_release = u.release;
    info.os_type = u.sysname;
    info.architecture = u.machine;
  }
  long n = ::sysconf(_SC_NPROCESSORS_ONLN);
  info.cpus = n > 0 ? static_cast<unsigned>(n) : 0;
  long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) info.memory_bytes = static_cast<unsigned long long>(pages) * page;

  struct statfs fs {};
  if (::statfs("/sys/fs/cgroup", &fs) == 0 && fs.f_type == CGROUP2_SUPER_MAGIC) {
    info.cgroup_mode = CgroupMode::Unified;
    info.cgroup_v2_mount = "/sys/fs/cgroup";
  } else {
    // Legacy or hybrid: v1 hierarchies are listed in /proc/self/cgroup as
    // "id:controllers:path"; the v2 one has an empty controller list.
    std::string self;
    if (read_file_if_exists("/proc/self/cgroup", self)) {
      for (auto& line : cgroup_detail::split_fields(self, "\n")) {
        auto a = line.find(':'), b = line.find(':', a + 1);
        if (a == std::string::npos || b == std::string::npos) continue;
        std::string ctrls = line.substr(a + 1, b - a - 1);
        for (auto& c : cgroup_detail::split_fields(ctrls, ","))
          if (!c.empty() && c.rfind("name=", 0) != 0) info.cgroup_v1_controllers.push_back(c);
      }
    }
    struct statfs ufs {};
    if (::statfs("/sys/fs/cgroup/unified", &ufs) == 0 && ufs.f_type == CGROUP2_SUPER_MAGIC) {
      info.cgroup_mode = CgroupMode::Hybrid;
      info.cgroup_v2_mount = "/sys/fs/cgroup/unified";
    }
  }
  std::sort(info.cgroup_v1_controllers.begin(), info.cgroup_v1_controllers.end());
  if (!info.cgroup_v2_mount.empty()) {
    std::string ctrls;
    if (read_file_if_exists(info.cgroup_v2_mount + "/cgroup.controllers", ctrls))
      info.cgroup_v2_controllers = split_ws(ctrls);
  }
  return info;
}

}  // namespace berth::runtime
