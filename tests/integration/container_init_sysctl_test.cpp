// --init (berth-init as PID 1), --sysctl (docker's namespaced keys only),
// ps -s (docker's SIZE column) and the RestartCount a user's start resets.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <regex>
#include <set>

#include "base/human.h"
#include "tests/integration/container_fixture.h"

namespace berth::test {
namespace {

using Clock = std::chrono::steady_clock;

class InitTest : public ContainerTest {};

TEST_F(InitTest, InitIsPid1AndTheCommandItsChild) {
  auto r = run({"--rm", "--init"}, {"sh", "-c", "cat /proc/1/comm; tr '\\0' ' ' < /proc/1/cmdline; echo; echo $$"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream in(r.out);
  std::string comm, cmdline, self;
  std::getline(in, comm);
  std::getline(in, cmdline);
  std::getline(in, self);
  EXPECT_EQ(comm, "docker-init");
  EXPECT_EQ(cmdline.rfind("/sbin/docker-init -- sh -c ", 0), 0u) << cmdline;
  EXPECT_NE(self, "1");
  // Mounted read-only; inspect shows the command, not the init.
  r = run({"--rm", "--init"}, {"sh", "-c", "echo x > /sbin/docker-init"});
  EXPECT_NE(r.exit_code, 0);
  std::string id = run_detached({"--init"}, {"sleep", "600"});
  auto j = inspect(id);
  EXPECT_EQ(j["Path"], "sleep");
  EXPECT_EQ(j["HostConfig"]["Init"], true);
}

TEST_F(InitTest, ExitCodesPropagate) {
  EXPECT_EQ(run({"--rm", "--init"}, {"sh", "-c", "exit 7"}).exit_code, 7);
  EXPECT_EQ(run({"--rm", "--init"}, {"sh", "-c", "kill -9 $$"}).exit_code, 137);
  auto r = run({"--rm", "--init"}, {"no-such-command"});
  EXPECT_EQ(r.exit_code, 127) << r.err;
}

TEST_F(InitTest, ZombiesAreReaped) {
  // The subshell exits at once; its background sleep is re-parented to
  // PID 1 and dies 3 s later. Only an init that reaps makes it go away.
  std::string id = run_detached({"--init"}, {"sh", "-c", "(sleep 3 &); exec sleep 600"});
  // "STATE PPID COMMAND" of every process in the container.
  auto procs = [&] {
    return berth({"exec", id, "sh", "-c",
                  "for p in /proc/[0-9]*; do echo \"$(cut -d' ' -f3,4 $p/stat) $(tr '\\0' ' ' < $p/cmdline)\"; done"})
        .out;
  };
  // The orphan, adopted by the init.
  EXPECT_TRUE(eventually([&] { return procs().find("S 1 sleep 3 ") != std::string::npos; })) << procs();
  bool reaped = eventually([&] {
    std::string p = procs();
    return p.find("Z 1 ") == std::string::npos && p.find(" 1 sleep 3 ") == std::string::npos;
  }, 10000);
  EXPECT_TRUE(reaped) << procs();
}

TEST_F(InitTest, StopIsPromptAndSignalsReachTheCommand) {
  // A shell as PID 1 would never die of SIGTERM; under the init it does.
  std::string id = run_detached({"--init"}, {"sh", "-c", "sleep 600; echo never"});
  auto start = Clock::now();
  auto r = berth({"stop", "-t", "10", id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
  EXPECT_LT(took, 5000);
  EXPECT_EQ(inspect(id)["State"]["ExitCode"], 143);

  // Any signal goes on to the command's process group.
  id = run_detached({"--init"}, {"sh", "-c", "trap 'echo got usr1; exit 3' USR1; while true; do sleep 0.1; done"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(berth({"kill", "-s", "USR1", id}).exit_code, 0);
  EXPECT_EQ(trim(berth({"wait", id}).out), "3");
  EXPECT_EQ(berth({"logs", id}).out, "got usr1\n");
}

TEST_F(InitTest, SysctlsAreSetInTheContainersNamespacesOnly) {
  std::string host_shmmax = slurp("/proc/sys/kernel/shmmax");
  auto r = run({"--rm", "--sysctl", "kernel.shmmax=123456789", "--sysctl", "net.ipv4.ip_forward=1", "--sysctl",
                "fs.mqueue.msg_max=20", "--sysctl", "net.ipv4.conf.all.accept_redirects=0"},
               {"sh", "-c",
                "cat /proc/sys/kernel/shmmax /proc/sys/net/ipv4/ip_forward /proc/sys/fs/mqueue/msg_max "
                "/proc/sys/net/ipv4/conf/all/accept_redirects"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "123456789\n1\n20\n0\n");
  EXPECT_EQ(slurp("/proc/sys/kernel/shmmax"), host_shmmax);
  std::string id = run_detached({"--sysctl", "kernel.msgmax=9000"}, {"sleep", "600"});
  EXPECT_EQ(inspect(id)["HostConfig"]["Sysctls"]["kernel.msgmax"], "9000");
  // Kept across a restart.
  ASSERT_EQ(berth({"restart", "-t", "0", id}).exit_code, 0);
  EXPECT_EQ(trim(berth({"exec", id, "cat", "/proc/sys/kernel/msgmax"}).out), "9000");
}

TEST_F(InitTest, SysctlsOutsideTheContainersNamespacesAreRefused) {
  struct Case {
    std::vector<std::string> flags;
    std::string key, why;
  };
  std::vector<Case> cases = {
      {{"--sysctl", "vm.swappiness=10"}, "vm.swappiness", "not whitelisted"},
      {{"--sysctl", "kernel.hostname=x"}, "kernel.hostname", "not whitelisted"},
      {{"--sysctl", "kernel.core_pattern=|/bin/false"}, "kernel.core_pattern", "not whitelisted"},
      {{"--network", "host", "--sysctl", "net.ipv4.ip_forward=1"}, "net.ipv4.ip_forward", "--network host"},
      {{"--sysctl", "net./../kernel/core_pattern=x"}, "net./../kernel/core_pattern", "invalid sysctl name"},
      {{"--sysctl", "novalue"}, "novalue", "KEY=VALUE"},
  };
  for (auto& c : cases) {
    auto r = run(c.flags, {"true"});
    EXPECT_EQ(r.exit_code, 125) << c.key << ": " << r.err;
    EXPECT_NE(r.err.find(c.key), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(c.why), std::string::npos) << r.err;
  }
  EXPECT_EQ(berth({"ps", "-aq"}).out, "");
  EXPECT_TRUE(container_dirs().empty());
  // A namespaced name the kernel does not have fails at start, naming it.
  auto r = run({"--rm", "--sysctl", "net.ipv4.no_such_key=1"}, {"true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("net.ipv4.no_such_key"), std::string::npos) << r.err;
}

TEST_F(InitTest, ComposeInitAndSysctls) {
  start_compose_project();
  write_app(R"(services:
  app:
    image: busybox:latest
    network_mode: none
    init: true
    sysctls:
      kernel.shmmni: 2048
    command: ["sh", "-c", "cat /proc/1/comm /proc/sys/kernel/shmmni; sleep 600"]
  bad:
    image: busybox:latest
    network_mode: none
    profiles: [bad]
    sysctls: [vm.overcommit_memory=1]
    command: ["true"]
)");
  auto r = compose({"up", "-d"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("not supported"), std::string::npos) << r.err;
  EXPECT_TRUE(eventually([&] { return compose({"compose", "logs", "--no-log-prefix", "app"}).out == "docker-init\n2048\n"; }))
      << compose({"compose", "logs", "app"}).out;
  r = compose({"up", "--profile", "bad", "-d", "bad"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("vm.overcommit_memory"), std::string::npos) << r.err;
  stop_compose_project();
}

// docker's size of a tree: regular files and symlinks, each inode once.
int64_t docker_size(const std::string& dir) {
  int64_t total = 0;
  std::set<std::pair<dev_t, ino_t>> seen;
  for (auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    struct stat st {};
    if (::lstat(e.path().c_str(), &st) != 0 || S_ISDIR(st.st_mode) || st.st_size == 0) continue;
    if (seen.insert({st.st_dev, st.st_ino}).second) total += st.st_size;
  }
  return total;
}

TEST_F(InitTest, PsSizeShowsTheWritableLayerAndTheVirtualSize) {
  std::string id = run_detached({"--name", "sized"}, {"sh", "-c", "printf 0123456789ab > /twelve; sleep 600"});
  ASSERT_TRUE(eventually([&] { return berth({"exec", id, "cat", "/twelve"}).out == "0123456789ab"; }));
  std::string want = "12B (virtual " + human_size(static_cast<double>(docker_size(rootfs_) + 12), 3) + ")";
  auto r = berth({"ps", "-s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream in(r.out);
  std::string header, row;
  std::getline(in, header);
  std::getline(in, row);
  // Columns, not bytes: the cut command's "…" is one column.
  for (auto at = row.find("…"); at != std::string::npos; at = row.find("…")) row.replace(at, std::string("…").size(), "~");
  EXPECT_NE(header.find("SIZE"), std::string::npos) << r.out;
  EXPECT_EQ(header.find("SIZE"), row.find(want)) << r.out;
  EXPECT_NE(row.rfind(want), std::string::npos) << r.out << " want " << want;
  // Without -s there is no SIZE column.
  EXPECT_EQ(berth({"ps"}).out.find("SIZE"), std::string::npos);
  // A template asking for .Size gets it without -s; table templates too.
  EXPECT_EQ(berth({"ps", "--format", "{{.Names}}: {{.Size}}"}).out, "sized: " + want + "\n");
  r = berth({"ps", "--format", "table {{.Names}}\t{{.Size}}"});
  EXPECT_EQ(r.out, "NAMES   SIZE\nsized   " + want + "\n") << r.out;
  // A file removed from the image is a whiteout: no size of its own.
  ASSERT_EQ(berth({"exec", id, "rm", "/etc/passwd"}).exit_code, 0);
  EXPECT_EQ(berth({"ps", "--format", "{{.Size}}"}).out.rfind("12B (", 0), 0u);
}

TEST_F(InitTest, UserStartResetsTheRestartCount) {
  // No policy of its own: with one, `run` would start a serve that restarts it.
  std::string id = run_detached({}, {"sh", "-c", "exit 1"});
  ASSERT_EQ(trim(berth({"wait", id}).out), "1");
  // As a restart policy leaves it: berth serve records its restarts in
  // the container's state before it starts the container again.
  std::string path = root_ + "/containers/" + id + "/state.json";
  auto st = nlohmann::json::parse(slurp(path));
  ASSERT_TRUE(st.contains("restart_count")) << st.dump();
  st["restart_count"] = 3;
  write_file_atomic(path, st.dump());
  ASSERT_EQ(inspect(id)["RestartCount"], 3);
  ASSERT_EQ(berth({"start", id}).exit_code, 0);
  EXPECT_EQ(inspect(id)["RestartCount"], 0);
}

}  // namespace
}  // namespace berth::test
