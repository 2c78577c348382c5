// cgroup v1 (legacy and hybrid hosts): a directory per controller hierarchy.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "runtime/cgroup.h"

namespace berth::runtime {

using namespace cgroup_detail;

namespace {

// docker's default device rules: nothing but the standard character
// devices (null, zero, full, tty, random, urandom, console, ptmx, pts)
// and mknod of anything (the node is useless without the r/w rule).
const char* const kDefaultDeviceRules[] = {
    "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
    "c 5:0 rwm", "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm", "c 10:200 rwm",
};

class CgroupV1 : public Cgroup {
 public:
  CgroupV1(const std::string& id, std::vector<std::pair<std::string, std::string>> controllers,
           std::string v2_mount) {
    for (auto& [ctrl, mount] : controllers) dirs_[ctrl] = mount + "/berth/" + id;
    if (!v2_mount.empty()) v2_dir_ = v2_mount + "/berth/" + id;
  }

  void create(const Limits& limits, bool privileged) override {
    for (auto& [ctrl, dir] : dirs_) make_group(ctrl, dir);
    if (!v2_dir_.empty()) make_group_dir(v2_dir_);

    auto d = [&](const std::string& c) { return dirs_.count(c) ? dirs_.at(c) : std::string(); };
    if (auto dev = d("devices"); !dev.empty() && !privileged) {
      write_value(dev + "/devices.deny", "a");
      for (const char* rule : kDefaultDeviceRules) write_value(dev + "/devices.allow", rule);
    }
    if (auto mem = d("memory"); !mem.empty()) {
      if (limits.memory_bytes > 0) {
        write_value(mem + "/memory.limit_in_bytes", std::to_string(limits.memory_bytes));
        // memory+swap: docker's default is twice the memory limit.
        int64_t memsw = limits.memory_swap_bytes == 0 ? 2 * limits.memory_bytes : limits.memory_swap_bytes;
        if (path_exists(mem + "/memory.memsw.limit_in_bytes"))
          write_value(mem + "/memory.memsw.limit_in_bytes", memsw < 0 ? "-1" : std::to_string(memsw));
      }
    } else if (limits.memory_bytes > 0) {
      throw Error("cgroup: the memory controller is not mounted; cannot apply --memory");
    }
    if (auto cpu = d("cpu"); !cpu.empty()) {
      if (limits.cpu_shares > 0) write_value(cpu + "/cpu.shares", std::to_string(limits.cpu_shares));
      if (limits.nano_cpus > 0) {
        const int64_t period = 100000;
        write_value(cpu + "/cpu.cfs_period_us", std::to_string(period));
        write_value(cpu + "/cpu.cfs_quota_us", std::to_string(limits.nano_cpus * period / 1000000000));
      }
    }
    if (auto cs = d("cpuset"); !cs.empty() && !limits.cpuset_cpus.empty())
      write_value(cs + "/cpuset.cpus", limits.cpuset_cpus);
    if (auto pids = d("pids"); !pids.empty()) {
      if (limits.pids_limit > 0) write_value(pids + "/pids.max", std::to_string(limits.pids_limit));
    } else if (limits.pids_limit > 0) {
      throw Error("cgroup: the pids controller is not mounted; cannot apply --pids-limit");
    }
  }

  void add_process(pid_t pid) override {
    for (auto& [ctrl, dir] : dirs_) write_value(dir + "/cgroup.procs", std::to_string(pid));
    if (!v2_dir_.empty()) write_value(v2_dir_ + "/cgroup.procs", std::to_string(pid));
  }

  void freeze() override {
    std::string f = freezer();
    write_value(f + "/freezer.state", "FROZEN");
    // FREEZING until every task has stopped.
    for (int i = 0; i < 500 && read_value(f + "/freezer.state") != "FROZEN"; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      write_value(f + "/freezer.state", "FROZEN");
    }
    if (read_value(f + "/freezer.state") != "FROZEN") {
      write_value(f + "/freezer.state", "THAWED");
      throw Error("cgroup: the container did not freeze");
    }
  }
  void thaw() override { write_value(freezer() + "/freezer.state", "THAWED"); }
  bool frozen() const override {
    auto it = dirs_.find("freezer");
    return it != dirs_.end() && read_value(it->second + "/freezer.state") == "FROZEN";
  }

  bool oom_killed() const override {
    auto it = dirs_.find("memory");
    if (it == dirs_.end()) return false;
    // "oom_kill N" exists since Linux 4.13.
    std::string oc = read_value(it->second + "/memory.oom_control");
    auto pos = oc.find("oom_kill ");
    return pos != std::string::npos && std::strtoll(oc.c_str() + pos + 9, nullptr, 10) > 0;
  }

  std::vector<pid_t> processes() const override {
    if (!v2_dir_.empty() && is_directory(v2_dir_)) return read_pids(v2_dir_ + "/cgroup.procs");
    for (auto& [ctrl, dir] : dirs_)
      if (is_directory(dir)) return read_pids(dir + "/cgroup.procs");
    return {};
  }

  void destroy() override {
    kill_all();
    for (auto& [ctrl, dir] : dirs_) remove_dir_and_empty_parent(dir);
    if (!v2_dir_.empty()) remove_dir_and_empty_parent(v2_dir_);
  }

  std::vector<std::string> paths() const override {
    std::vector<std::string> out;
    for (auto& [ctrl, dir] : dirs_) out.push_back(dir);
    if (!v2_dir_.empty()) out.push_back(v2_dir_);
    return out;
  }

 private:
  std::string freezer() const {
    auto it = dirs_.find("freezer");
    if (it == dirs_.end()) throw Error("cgroup: the freezer controller is not mounted");
    return it->second;
  }

  static void make_group(const std::string& ctrl, const std::string& dir) {
    std::string parent = path_dirname(dir);
    bool new_parent = !is_directory(parent);
    make_group_dir(dir);
    // A new cpuset starts with no cpus and no memory nodes, and refuses
    // tasks until both are set: inherit them down from the hierarchy root.
    if (ctrl == "cpuset") {
      for (const char* f : {"cpuset.cpus", "cpuset.mems"}) {
        if (new_parent || read_value(parent + "/" + f).empty())
          write_value(parent + "/" + f, read_value(path_dirname(parent) + "/" + f));
        write_value(dir + "/" + f, read_value(parent + "/" + f));
      }
    }
  }

  // The hybrid v2 directory has cgroup.kill; otherwise freeze, kill each
  // task, thaw, and repeat until no task is left (forks race with reads).
  void kill_all() {
    if (!v2_dir_.empty() && path_exists(v2_dir_ + "/cgroup.kill")) {
      try_write_value(v2_dir_ + "/cgroup.kill", "1");
    } else {
      auto fz = dirs_.find("freezer");
      bool can_freeze = fz != dirs_.end() && is_directory(fz->second);
      if (can_freeze) try_write_value(fz->second + "/freezer.state", "FROZEN");
      for (pid_t p : processes()) ::kill(p, SIGKILL);
      if (can_freeze) try_write_value(fz->second + "/freezer.state", "THAWED");
    }
    for (int i = 0; i < 500; ++i) {
      auto left = processes();
      if (left.empty()) return;
      for (pid_t p : left) ::kill(p, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(4));
    }
    throw Error("cgroup: tasks are still running after SIGKILL");
  }

  std::map<std::string, std::string> dirs_;  // controller -> directory
  std::string v2_dir_;
};

}  // namespace

std::unique_ptr<Cgroup> make_cgroup_v1(const std::string& id,
                                       std::vector<std::pair<std::string, std::string>> controllers,
                                       std::string v2_mount) {
  return std::make_unique<CgroupV1>(id, std::move(controllers), std::move(v2_mount));
}

}  // namespace berth::runtime
