// cgroup v2 (unified hosts): one directory, controllers enabled from the
// root down through berth/.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "runtime/cgroup.h"

namespace berth::runtime {

using namespace cgroup_detail;

namespace {

class CgroupV2 : public Cgroup {
 public:
  CgroupV2(const std::string& id, std::string mount) : mount_(std::move(mount)), dir_(mount_ + "/berth/" + id) {}

  void create(const Limits& limits, bool privileged) override {
    make_group_dir(dir_);
    enable_controllers();
    if (limits.memory_bytes > 0) {
      write_value(dir_ + "/memory.max", std::to_string(limits.memory_bytes));
      // v2 limits swap alone; docker's --memory-swap is memory+swap.
      int64_t memsw = limits.memory_swap_bytes == 0 ? 2 * limits.memory_bytes : limits.memory_swap_bytes;
      if (path_exists(dir_ + "/memory.swap.max"))
        write_value(dir_ + "/memory.swap.max",
                    memsw < 0 ? "max" : std::to_string(std::max<int64_t>(0, memsw - limits.memory_bytes)));
    }
    if (limits.cpu_shares > 0) {
      // docker's mapping of shares [2, 262144] onto weight [1, 10000].
      int64_t weight = 1 + ((limits.cpu_shares - 2) * 9999) / 262142;
      write_value(dir_ + "/cpu.weight", std::to_string(std::clamp<int64_t>(weight, 1, 10000)));
    }
    if (limits.nano_cpus > 0) {
      const int64_t period = 100000;
      write_value(dir_ + "/cpu.max", std::to_string(limits.nano_cpus * period / 1000000000) + " " +
                                         std::to_string(period));
    }
    if (!limits.cpuset_cpus.empty()) write_value(dir_ + "/cpuset.cpus", limits.cpuset_cpus);
    if (limits.pids_limit > 0) write_value(dir_ + "/pids.max", std::to_string(limits.pids_limit));
    // Device access on v2 needs an eBPF program; not implemented yet, so
    // the default capability set (no CAP_SYS_RAWIO, a fresh /dev tmpfs)
    // is the only protection here.
    (void)privileged;
  }

  void add_process(pid_t pid) override { write_value(dir_ + "/cgroup.procs", std::to_string(pid)); }

  void freeze() override {
    write_value(dir_ + "/cgroup.freeze", "1");
    for (int i = 0; i < 500; ++i) {
      if (read_value(dir_ + "/cgroup.events").find("frozen 1") != std::string::npos) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    write_value(dir_ + "/cgroup.freeze", "0");
    throw Error("cgroup: the container did not freeze");
  }
  void thaw() override { write_value(dir_ + "/cgroup.freeze", "0"); }
  bool frozen() const override { return read_value(dir_ + "/cgroup.freeze") == "1"; }

  bool oom_killed() const override {
    auto words = split_fields(read_value(dir_ + "/memory.events"), " \n");
    for (size_t i = 0; i + 1 < words.size(); i += 2)
      if (words[i] == "oom_kill" && std::atoll(words[i + 1].c_str()) > 0) return true;
    return false;
  }

  std::vector<pid_t> processes() const override {
    if (!is_directory(dir_)) return {};
    return read_pids(dir_ + "/cgroup.procs");
  }

  void destroy() override {
    if (!is_directory(dir_)) return;
    if (!try_write_value(dir_ + "/cgroup.kill", "1"))
      for (pid_t p : processes()) ::kill(p, SIGKILL);
    for (int i = 0; i < 500 && !processes().empty(); ++i) {
      for (pid_t p : processes()) ::kill(p, SIGKILL);
      std::this_thread::sleep_for(std::chrono::milliseconds(4));
    }
    remove_dir_and_empty_parent(dir_);
  }

  std::vector<std::string> paths() const override { return {dir_}; }

 private:
  // Each controller must be enabled in every ancestor's subtree_control.
  void enable_controllers() {
    std::string enable;
    for (auto& c : split_fields(read_value(mount_ + "/cgroup.controllers"), " \n"))
      if (c == "cpu" || c == "cpuset" || c == "memory" || c == "pids" || c == "io") enable += "+" + c + " ";
    if (enable.empty()) return;
    enable.pop_back();
    try_write_value(mount_ + "/cgroup.subtree_control", enable);
    try_write_value(mount_ + "/berth/cgroup.subtree_control", enable);
  }

  std::string mount_;
  std::string dir_;
};

}  // namespace

std::unique_ptr<Cgroup> make_cgroup_v2(const std::string& id, std::string v2_mount) {
  return std::make_unique<CgroupV2>(id, std::move(v2_mount));
}

}  // namespace berth::runtime
