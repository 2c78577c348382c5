// A cgroup per container, behind one interface with two backends:
//  - v1: one directory per controller hierarchy (/sys/fs/cgroup/<ctrl>/berth/<id>);
//    on a hybrid host the v2 hierarchy (which holds no controller berth
//    needs) also gets a directory, used only for membership and cgroup.kill.
//  - v2: one directory in the unified hierarchy (/sys/fs/cgroup/berth/<id>).
// Limits follow docker's flags; absent limits write nothing.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace berth::runtime {

class Cgroup {
 public:
  virtual ~Cgroup() = default;
  // mkdir the container's directories and write the limits.
  virtual void create(const Limits& limits, bool privileged) = 0;
  // Moves pid (and, with it, its future children) into the cgroup.
  virtual void add_process(pid_t pid) = 0;
  virtual void freeze() = 0;
  virtual void thaw() = 0;
  virtual bool frozen() const = 0;
  // True once the kernel's OOM killer has killed a task of this cgroup.
  virtual bool oom_killed() const = 0;
  // Pids still in the cgroup (empty when none or when it does not exist).
  virtual std::vector<pid_t> processes() const = 0;
  // SIGKILLs every task, waits until none is left, and removes the
  // directories. Idempotent: a missing cgroup is not an error.
  virtual void destroy() = 0;
  // The directories that exist or would exist, for inspect and tests.
  virtual std::vector<std::string> paths() const = 0;
};

// How /sys/fs/cgroup looks inside a container: the host's hierarchies,
// mounted again from inside the container's cgroup namespace so each shows
// the container's own cgroup as its root.
struct CgroupMountSpec {
  std::string dir;     // under /sys/fs/cgroup ("" = /sys/fs/cgroup itself, for v2 hosts)
  std::string fstype;  // "cgroup" | "cgroup2"
  std::string data;    // "memory", "cpu,cpuacct", "name=systemd", ...
};
std::vector<CgroupMountSpec> container_cgroup_mounts();

// The backend that fits this host, for container `id` (creates nothing).
std::unique_ptr<Cgroup> cgroup_for(const std::string& id);

// Removes the cgroup on scope exit unless release()d: a half-started
// container leaves no cgroup behind.
class CgroupGuard {
 public:
  explicit CgroupGuard(Cgroup& cg) : cg_(&cg) {}
  ~CgroupGuard();
  CgroupGuard(const CgroupGuard&) = delete;
  CgroupGuard& operator=(const CgroupGuard&) = delete;
  void release() { cg_ = nullptr; }

 private:
  Cgroup* cg_;
};

// Internal: the two backends, constructed by cgroup_for().
std::unique_ptr<Cgroup> make_cgroup_v1(const std::string& id, std::vector<std::pair<std::string, std::string>> controllers,
                                       std::string v2_mount);
std::unique_ptr<Cgroup> make_cgroup_v2(const std::string& id, std::string v2_mount);

// Shared helpers for the backends.
namespace cgroup_detail {
// The non-empty pieces of s between any of the separator characters (no
// iostreams: berth-monitor links this code and stays small without them).
std::vector<std::string> split_fields(const std::string& s, const char* separators);
void write_value(const std::string& path, const std::string& value);
bool try_write_value(const std::string& path, const std::string& value);
std::string read_value(const std::string& path);  // trimmed; "" if missing
std::vector<pid_t> read_pids(const std::string& procs_file);
// rmdir, retrying briefly while the kernel still reports EBUSY.
void remove_dir(const std::string& path);
// remove_dir, then the shared parent too when it is left empty.
void remove_dir_and_empty_parent(const std::string& path);
// make_dirs that survives the shared parent vanishing concurrently.
void make_group_dir(const std::string& path);
}  // namespace cgroup_detail

}  // namespace berth::runtime
