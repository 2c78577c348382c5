// berth's integrated container runtime: the public verbs.
// Knows nothing of YAML, images or networks: it is handed a rootfs
// (overlay lower dirs) and a process spec.
#pragma once

#include <string>
#include <vector>

namespace berth::runtime {

enum class CgroupMode { Legacy, Hybrid, Unified };
const char* to_string(CgroupMode mode);

struct HostInfo {
  std::string kernel_release;  // uname -r
  std::string os_type;         // uname -s
  std::string architecture;    // uname -m
  CgroupMode cgroup_mode = CgroupMode::Legacy;
  // v1 controllers mounted as their own hierarchies (legacy and hybrid modes).
  std::vector<std::string> cgroup_v1_controllers;
  // Controllers available on the v2 hierarchy (its cgroup.controllers).
  std::vector<std::string> cgroup_v2_controllers;
  std::string cgroup_v2_mount;  // where the v2 hierarchy is, if any
  unsigned cpus = 0;
  unsigned long long memory_bytes = 0;
};

// Reads /proc and /sys; never changes anything.
HostInfo probe_host();

}  // namespace berth::runtime
