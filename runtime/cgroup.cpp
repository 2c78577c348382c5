#include "runtime/cgroup.h"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <chrono>
#include <thread>

#include "base/error.h"
#include "base/fs.h"

namespace berth::runtime {

namespace cgroup_detail {

bool try_write_value(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) return false;
  return ::write(fd.get(), value.data(), value.size()) == static_cast<ssize_t>(value.size());
}

void write_value(const std::string& path, const std::string& value) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd) throw_errno("cgroup: cannot open " + path);
  if (::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size()))
    throw_errno("cgroup: cannot write \"" + value + "\" to " + path);
}

std::string read_value(const std::string& path) {
  std::string s;
  try {
    if (!read_file_if_exists(path, s)) return {};
  } catch (const Error&) {
    return {};
  }
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

std::vector<std::string> split_fields(const std::string& s, const char* separators) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find_first_of(separators, i);
    if (j == std::string::npos) j = s.size();
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::vector<pid_t> read_pids(const std::string& procs_file) {
  std::vector<pid_t> out;
  for (auto& p : split_fields(read_value(procs_file), " \t\n")) out.push_back(static_cast<pid_t>(std::atol(p.c_str())));
  return out;
}

void remove_dir(const std::string& path) {
  for (int i = 0; i < 200; ++i) {
    if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return;
    if (errno != EBUSY) throw_errno("cgroup: cannot remove " + path);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  throw_errno("cgroup: cannot remove " + path, EBUSY);
}

void remove_dir_and_empty_parent(const std::string& path) {
  remove_dir(path);
  // The shared "berth" parent goes with its last container, so a host with
  // no containers holds no berth cgroup. EBUSY/ENOTEMPTY: others still live.
  ::rmdir(path_dirname(path).c_str());
}

void make_group_dir(const std::string& path) {
  // A concurrent removal of the last container may rmdir the shared parent
  // between our mkdirs (ENOENT): create it again.
  for (int attempt = 0;; ++attempt) {
    try {
      make_dirs(path);
      return;
    } catch (const Error& e) {
      if (e.err() != ENOENT || attempt == 5) throw;
    }
  }
}

}  // namespace cgroup_detail

// CgroupGuard's destructor is in container.cpp: this file is part of
// berth-monitor, which has no logging library.

// One /proc/self/mountinfo line's mount point, fstype and super options;
// false for a line without the " - " separator.
static bool parse_mountinfo_line(const std::string& line, std::string& mount_point, std::string& fstype,
                                 std::string& super) {
  auto sep = line.find(" - ");
  if (sep == std::string::npos) return false;
  auto pre = cgroup_detail::split_fields(line.substr(0, sep), " ");
  auto post = cgroup_detail::split_fields(line.substr(sep + 3), " ");
  if (pre.size() < 5 || post.size() < 3) return false;
  mount_point = pre[4];
  fstype = post[0];
  super = post[2];
  return true;
}

// v1 hierarchies from /proc/self/mountinfo: fstype "cgroup", the super
// options name the controllers ("rw,memory" or "rw,cpu,cpuacct").
static std::vector<std::pair<std::string, std::string>> v1_hierarchies() {
  static const std::vector<std::string> wanted{"cpu", "cpuacct", "cpuset", "memory", "devices",
                                               "freezer", "blkio", "pids"};
  std::vector<std::pair<std::string, std::string>> out;  // controller -> mount point
  for (auto& line : cgroup_detail::split_fields(read_file("/proc/self/mountinfo"), "\n")) {
    std::string mount_point, fstype, super;
    if (!parse_mountinfo_line(line, mount_point, fstype, super)) continue;
    if (fstype != "cgroup") continue;
    for (auto& o : cgroup_detail::split_fields(super, ","))
      if (std::find(wanted.begin(), wanted.end(), o) != wanted.end()) out.emplace_back(o, mount_point);
  }
  return out;
}

std::string leave_starter_cgroups() {
  std::string self = std::to_string(::getpid());
  // Per hierarchy (fstype and super options; one may be mounted twice):
  // "" once left, else why the last try failed.
  std::vector<std::pair<std::string, std::string>> hierarchies;
  for (auto& line : cgroup_detail::split_fields(read_file("/proc/self/mountinfo"), "\n")) {
    std::string mount_point, fstype, super;
    if (!parse_mountinfo_line(line, mount_point, fstype, super)) continue;
    if (fstype != "cgroup" && fstype != "cgroup2") continue;
    std::string key = fstype + " " + super;
    auto it = std::find_if(hierarchies.begin(), hierarchies.end(), [&](auto& h) { return h.first == key; });
    if (it == hierarchies.end()) it = hierarchies.insert(hierarchies.end(), {key, "?"});
    if (it->second.empty()) continue;
    std::string procs = mount_point + "/cgroup.procs";
    it->second = cgroup_detail::try_write_value(procs, self) ? "" : procs + ": " + std::strerror(errno);
  }
  std::string failed;
  for (auto& h : hierarchies)
    if (!h.second.empty()) failed += (failed.empty() ? "" : "; ") + h.second;
  return failed;
}

std::vector<CgroupMountSpec> container_cgroup_mounts() {
  std::vector<CgroupMountSpec> out;
  for (auto& line : cgroup_detail::split_fields(read_file("/proc/self/mountinfo"), "\n")) {
    std::string mount_point, fstype, super;
    if (!parse_mountinfo_line(line, mount_point, fstype, super)) continue;
    if (mount_point.rfind("/sys/fs/cgroup", 0) != 0) continue;
    std::string dir = mount_point == "/sys/fs/cgroup" ? "" : mount_point.substr(15);
    if (dir.find('/') != std::string::npos) continue;
    if (fstype == "cgroup2") {
      out.push_back({dir, fstype, ""});
    } else if (fstype == "cgroup") {
      // Keep only what names the hierarchy: its controllers or name=.
      std::string data;
      for (auto& o : cgroup_detail::split_fields(super, ","))
        if (o != "rw" && o != "ro" && o.rfind("release_agent", 0) != 0 && o != "clone_children" &&
            o != "noprefix" && o != "xattr" && o != "cpuset_v2_mode")
          data += (data.empty() ? "" : ",") + o;
      out.push_back({dir, fstype, data});
    }
  }
  return out;
}

namespace {

// Where the host's cgroup hierarchies are. Detected once per process: they
// do not move while berth runs, and `ps` or a resync asks for each container.
struct CgroupLayout {
  CgroupMode mode = CgroupMode::Legacy;
  std::string v2_mount;
  std::vector<std::pair<std::string, std::string>> v1;  // controller -> mount point
};

const CgroupLayout& cgroup_layout() {
  static const CgroupLayout layout = [] {
    CgroupLayout l;
    HostInfo host = probe_host();
    l.mode = host.cgroup_mode;
    l.v2_mount = host.cgroup_v2_mount;
    if (l.mode != CgroupMode::Unified) l.v1 = v1_hierarchies();
    return l;
  }();
  return layout;
}

}  // namespace

std::unique_ptr<Cgroup> cgroup_for(const std::string& id) {
  const CgroupLayout& layout = cgroup_layout();
  if (layout.mode == CgroupMode::Unified) return make_cgroup_v2(id, layout.v2_mount);
  return make_cgroup_v1(id, layout.v1, layout.v2_mount);
}

}  // namespace berth::runtime
