// cgroup limits on real containers: memory (OOM kill reported), pids, cpu.
#include "tests/integration/container_fixture.h"

namespace berth::test {
namespace {

using ContainerLimits = ContainerTest;

bool cgroup_v1_host() { return is_directory("/sys/fs/cgroup/memory") && is_directory("/sys/fs/cgroup/pids"); }

std::string trimmed(const std::string& path) {
  std::string s;
  if (!read_file_if_exists(path, s)) return "(missing)";
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

TEST_F(ContainerLimits, MemoryLimitIsOomKilled) {
  auto r = run({"--name", "hog", "--memory", "16m"}, {"sh", "-c", "x=a; while true; do x=$x$x; done"});
  EXPECT_EQ(r.exit_code, 137) << r.err;
  auto j = inspect("hog");
  EXPECT_EQ(j["State"]["OOMKilled"], true);
  EXPECT_EQ(j["State"]["ExitCode"], 137);
  EXPECT_EQ(j["HostConfig"]["Memory"], 16 * 1024 * 1024);
  // Without a limit the same container is not OOM-killed; a plain kill is not an OOM.
  std::string id = run_detached({"--memory", "64m"}, {"sleep", "100"});
  berth({"kill", id});
  berth({"wait", id});
  EXPECT_EQ(inspect(id)["State"]["OOMKilled"], false);
  EXPECT_EQ(inspect(id)["State"]["ExitCode"], 137);
}

TEST_F(ContainerLimits, PidsLimitHolds) {
  // Each attempt forks a shell that backgrounds a sleep; failures to fork
  // are counted instead of ending the script.
  auto r = run({"--pids-limit", "8"},
               {"sh", "-c", "n=0; for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do "
                            "if sh -c 'sleep 30 &' 2>/dev/null; then n=$((n+1)); fi; done; "
                            "echo $n; echo /proc/[0-9]*"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream in(r.out);
  int started = 0;
  in >> started;
  std::string pids;
  std::getline(in, pids);
  std::getline(in, pids);
  int live = static_cast<int>(std::count(pids.begin(), pids.end(), '/')) / 2;
  EXPECT_LT(started, 16) << r.out;
  EXPECT_GE(started, 3) << r.out;
  EXPECT_LE(live, 8) << r.out;
}

TEST_F(ContainerLimits, LimitsAreWrittenToTheCgroup) {
  if (!cgroup_v1_host()) GTEST_SKIP() << "checks v1 files";
  std::string id = run_detached({"--memory", "32m", "--memory-swap", "64m", "--cpus", "0.5", "--cpu-shares", "512",
                                 "--cpuset-cpus", "0", "--pids-limit", "33"},
                                {"sleep", "100"});
  ASSERT_FALSE(id.empty());
  std::string g = "berth/" + id;
  EXPECT_EQ(trimmed("/sys/fs/cgroup/memory/" + g + "/memory.limit_in_bytes"), std::to_string(32 << 20));
  if (path_exists("/sys/fs/cgroup/memory/" + g + "/memory.memsw.limit_in_bytes"))
    EXPECT_EQ(trimmed("/sys/fs/cgroup/memory/" + g + "/memory.memsw.limit_in_bytes"), std::to_string(64 << 20));
  EXPECT_EQ(trimmed("/sys/fs/cgroup/cpu/" + g + "/cpu.cfs_quota_us"), "50000");
  EXPECT_EQ(trimmed("/sys/fs/cgroup/cpu/" + g + "/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(trimmed("/sys/fs/cgroup/cpu/" + g + "/cpu.shares"), "512");
  EXPECT_EQ(trimmed("/sys/fs/cgroup/cpuset/" + g + "/cpuset.cpus"), "0");
  EXPECT_EQ(trimmed("/sys/fs/cgroup/pids/" + g + "/pids.max"), "33");
  int pid = inspect(id)["State"]["Pid"];
  std::string procs = read_file("/sys/fs/cgroup/pids/" + g + "/cgroup.procs");
  EXPECT_NE(procs.find(std::to_string(pid)), std::string::npos) << procs;
  // Inside, the cgroup namespace hides the host's path, and /sys/fs/cgroup
  // shows the container's own limits, read-only.
  auto r = berth({"exec", id, "grep", "pids", "/proc/self/cgroup"});
  EXPECT_EQ(r.out, "8:pids:/\n") << r.err;
  r = berth({"exec", id, "sh", "-c",
             "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max; "
             "mkdir /sys/fs/cgroup/pids/escape 2>/dev/null && echo writable"});
  EXPECT_EQ(r.out, std::to_string(32 << 20) + "\n33\n") << r.err;
  ASSERT_EQ(berth({"rm", "-f", id}).exit_code, 0);
  expect_no_trace_of(id, pid);
}

TEST_F(ContainerLimits, BadLimitsExit125) {
  EXPECT_EQ(run({"--memory", "1k"}, {"true"}).exit_code, 125);
  EXPECT_EQ(run({"--memory", "64m", "--memory-swap", "32m"}, {"true"}).exit_code, 125);
  EXPECT_EQ(run({"--cpus", "zero"}, {"true"}).exit_code, 125);
  EXPECT_TRUE(container_dirs().empty());
}

}  // namespace
}  // namespace berth::test
