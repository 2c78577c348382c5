// The cgroup backends against the real kernel: the host's own backend, and
// the v2 backend on the hybrid host's unified hierarchy (no controllers
// there, but membership, freeze and kill are core v2 features).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "base/fs.h"
#include "runtime/cgroup.h"
#include "runtime/state.h"

namespace berth::runtime {
namespace {

pid_t spawn_sleeper() {
  pid_t p = ::fork();
  if (p == 0) {
    ::execl("/bin/sleep", "sleep", "100", nullptr);
    ::_exit(127);
  }
  return p;
}

void exercise(Cgroup& cg, const Limits& limits) {
  cg.create(limits, false);
  for (auto& p : cg.paths()) EXPECT_TRUE(is_directory(p)) << p;
  pid_t child = spawn_sleeper();
  cg.add_process(child);
  EXPECT_EQ(cg.processes(), std::vector<pid_t>{child});
  cg.freeze();
  EXPECT_TRUE(cg.frozen());
  cg.thaw();
  EXPECT_FALSE(cg.frozen());
  EXPECT_FALSE(cg.oom_killed());
  cg.destroy();  // kills the sleeper first
  int st = 0;
  ASSERT_EQ(::waitpid(child, &st, 0), child);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
  for (auto& p : cg.paths()) EXPECT_FALSE(path_exists(p)) << p;
  cg.destroy();  // idempotent
}

TEST(RuntimeCgroup, HostBackendLifecycle) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto cg = cgroup_for(state::new_id());
  Limits l;
  l.memory_bytes = 64 << 20;
  l.pids_limit = 20;
  exercise(*cg, l);
}

TEST(RuntimeCgroup, V2BackendOnTheUnifiedHierarchy) {
  HostInfo h = probe_host();
  if (::geteuid() != 0 || h.cgroup_v2_mount.empty()) GTEST_SKIP() << "needs root and a cgroup2 mount";
  auto cg = make_cgroup_v2(state::new_id(), h.cgroup_v2_mount);
  Limits none;  // the hybrid unified hierarchy may hold no controllers
  if (h.cgroup_mode == CgroupMode::Unified) none.pids_limit = 20;
  exercise(*cg, none);
}

// utime+stime of pid, in clock ticks.
unsigned long long cpu_ticks(pid_t pid) {
  std::string stat;
  read_file_if_exists("/proc/" + std::to_string(pid) + "/stat", stat);
  size_t pos = stat.rfind(')') + 2;
  for (int field = 3; field < 14; ++field) pos = stat.find(' ', pos) + 1;
  unsigned long long utime = std::strtoull(stat.c_str() + pos, nullptr, 10);
  pos = stat.find(' ', pos) + 1;
  return utime + std::strtoull(stat.c_str() + pos, nullptr, 10);
}

TEST(RuntimeCgroup, FreezeStopsAndThawResumesABusyProcess) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root";
  auto cg = cgroup_for(state::new_id());
  cg->create({}, false);
  CgroupGuard guard(*cg);
  pid_t child = ::fork();
  if (child == 0)
    for (volatile unsigned long n = 0;; n = n + 1) {
    }
  cg->add_process(child);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  cg->freeze();
  auto frozen_at = cpu_ticks(child);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(cpu_ticks(child), frozen_at) << "no CPU time while frozen";
  cg->thaw();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_GT(cpu_ticks(child), frozen_at) << "runs again once thawed";
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

TEST(RuntimeCgroup, ContainerMountsDescribeTheHost) {
  auto mounts = container_cgroup_mounts();
  HostInfo h = probe_host();
  ASSERT_FALSE(mounts.empty());
  if (h.cgroup_mode == CgroupMode::Unified) {
    ASSERT_EQ(mounts.size(), 1u);
    EXPECT_EQ(mounts[0].fstype, "cgroup2");
  } else {
    bool memory = false;
    for (auto& m : mounts) memory |= m.fstype == "cgroup" && m.data.find("memory") != std::string::npos;
    EXPECT_TRUE(memory);
  }
}

}  // namespace
}  // namespace berth::runtime
