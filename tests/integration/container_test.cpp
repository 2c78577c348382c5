// Container lifecycle through the real binary on a busybox rootfs: exit
// codes, process settings, logs, the monitor, removal without leftovers.
#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>

#include "tests/integration/container_fixture.h"

namespace berth::test {
namespace {

using ContainerLifecycle = ContainerTest;

TEST_F(ContainerLifecycle, ExitCodeIsTheContainers) {
  auto r = run({}, {"sh", "-c", "echo out; echo err >&2; exit 3"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");
  r = run({}, {"true"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(ContainerLifecycle, OnlyStdioReachesTheContainer) {
  // A descriptor the caller leaks without close-on-exec stays outside.
  int leaked = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(leaked, 3);
  auto r = run({}, {"ls", "/proc/self/fd"});
  ::close(leaked);
  EXPECT_EQ(r.out, "0\n1\n2\n3\n") << "3 is ls's own directory";
}

TEST_F(ContainerLifecycle, CheckReportsTheKernel) {
  auto r = berth({"check"});
  EXPECT_EQ(r.exit_code, 0) << r.out;
  for (const char* line : {"--- Namespaces ---", "Mount namespace: ok", "PID namespace: ok", "overlayfs: ok",
                           "--- Cgroups ---", "--- Security ---", "seccomp: ok", "CAP_SYS_ADMIN: ok",
                           "--- Networking ---", "berth can run containers on this host"})
    EXPECT_NE(r.out.find(line), std::string::npos) << line << " missing from\n" << r.out;
  std::string status = read_file("/proc/self/status");
  uint64_t eff = std::strtoull(status.c_str() + status.find("CapEff:") + 7, nullptr, 16);
  bool has_resource = eff & (1ULL << 24);
  EXPECT_EQ(r.out.find("CAP_SYS_RESOURCE: ok") != std::string::npos, has_resource) << r.out;
}

TEST_F(ContainerLifecycle, MissingCommandIs127) {
  auto r = run({"--name", "missing"}, {"no-such-command"});
  EXPECT_EQ(r.exit_code, 127);
  EXPECT_NE(r.err.find("no-such-command"), std::string::npos) << r.err;
  EXPECT_EQ(inspect("missing")["State"]["ExitCode"], 127);
}

TEST_F(ContainerLifecycle, NonExecutableIs126) {
  auto r = run({}, {"/etc/passwd"});
  EXPECT_EQ(r.exit_code, 126);
  EXPECT_NE(r.err.find("permission denied"), std::string::npos) << r.err;
}

TEST_F(ContainerLifecycle, SignalExitIs128PlusN) {
  // The container's init ignores SIGTERM (no handler in a pid namespace's
  // init), so a child is killed by its own signal: sh reports 128+n.
  auto r = run({}, {"sh", "-c", "sh -c 'kill -TERM $$'; exit $?"});
  EXPECT_EQ(r.exit_code, 143) << r.err;
  std::string id = run_detached({}, {"sleep", "100"});
  auto k = berth({"kill", "-s", "KILL", id});
  EXPECT_EQ(k.exit_code, 0) << k.err;
  auto w = berth({"wait", id});
  EXPECT_EQ(w.out, "137\n") << w.err;
  EXPECT_EQ(inspect(id)["State"]["ExitCode"], 137);
  EXPECT_EQ(inspect(id)["State"]["Status"], "exited");
}

TEST_F(ContainerLifecycle, EnvWorkdirHostname) {
  std::string env_file = tmp_.write("env.list", "# comment\nFROM_FILE=yes\n\nOVERRIDE=file\n");
  auto r = run({"-e", "FOO=bar baz", "--env-file", env_file, "-e", "OVERRIDE=flag", "-w", "/work/dir", "-h",
                "boat"},
               {"sh", "-c", "echo $FOO; echo $FROM_FILE; echo $OVERRIDE; pwd; hostname; cat /etc/hostname; "
                            "echo $HOSTNAME; echo $HOME; echo $PATH"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "bar baz\nyes\nflag\n/work/dir\nboat\nboat\nboat\n/root\n"
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
}

TEST_F(ContainerLifecycle, DefaultHostnameIsTheShortId) {
  std::string id = run_detached({}, {"sleep", "100"});
  auto r = berth({"exec", id, "hostname"});
  EXPECT_EQ(r.out, id.substr(0, 12) + "\n") << r.err;
}

TEST_F(ContainerLifecycle, UserFromTheImagesPasswd) {
  auto r = run({"-u", "berth"}, {"id"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "uid=1000(berth) gid=1000(berth) groups=10(wheel)\n");
  r = run({"-u", "berth:root"}, {"sh", "-c", "id -u; id -g"});
  EXPECT_EQ(r.out, "1000\n0\n") << r.err;
  r = run({"-u", "4242"}, {"sh", "-c", "id -u; id -g; echo $HOME"});
  EXPECT_EQ(r.out, "4242\n0\n/\n") << r.err;
  r = run({"-u", "berth"}, {"sh", "-c", "echo $HOME; grep CapEff /proc/self/status"});
  EXPECT_EQ(r.out, "/home/berth\nCapEff:\t0000000000000000\n") << r.err;
}

TEST_F(ContainerLifecycle, NetworkNoneHasOnlyLoopbackUp) {
  auto r = run({}, {"sh", "-c", "ls /sys/class/net; ip link show lo | head -1; ping -c 1 -W 2 127.0.0.1 >/dev/null && echo ping-ok"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, 3), "lo\n") << r.out;
  EXPECT_NE(r.out.find("UP"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ping-ok"), std::string::npos) << r.out;
}

TEST_F(ContainerLifecycle, NetworkHostSharesTheHostsInterfaces) {
  // An interface of the host's other than lo (other tests may add and
  // remove interfaces meanwhile, so the whole list is not compared).
  std::string host_if;
  for (auto& e : std::filesystem::directory_iterator("/sys/class/net"))
    if (e.path().filename() != "lo" && host_if.empty()) host_if = e.path().filename();
  if (host_if.empty()) GTEST_SKIP() << "the host has only lo";
  auto r = run({"--network", "host"}, {"sh", "-c", "test -e /sys/class/net/" + host_if + " && echo seen; hostname"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  EXPECT_EQ(r.out, "seen\n" + std::string(host) + "\n");
  r = run({}, {"sh", "-c", "test -e /sys/class/net/" + host_if + " && echo seen; true"});
  EXPECT_EQ(r.out, "") << "--network none does not see it";
}

TEST_F(ContainerLifecycle, RootfsChangesStayInTheContainer) {
  auto r = run({"--name", "writer"}, {"sh", "-c", "echo hi > /new-file; rm /bin/yes; cat /new-file"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hi\n");
  EXPECT_FALSE(path_exists(rootfs_ + "/new-file"));
  EXPECT_TRUE(path_exists(rootfs_ + "/bin/yes"));
  auto j = inspect("writer");
  EXPECT_TRUE(path_exists(j["GraphDriver"]["Data"]["UpperDir"].get<std::string>() + "/new-file"));
  // A second start sees the first run's changes.
  r = berth({"start", "-a", "writer"});
  EXPECT_EQ(r.out, "hi\n") << r.err;
}

TEST_F(ContainerLifecycle, ReadOnlyTmpfsAndVolumes) {
  std::string host_dir = tmp_.path() + "/data";
  make_dirs(host_dir);
  tmp_.write("data/in.txt", "from host\n");
  auto r = run({"--read-only", "--tmpfs", "/scratch:size=1m", "-v", host_dir + ":/data", "-v",
                host_dir + ":/data-ro:ro"},
               {"sh", "-c",
                "touch /root/x 2>/dev/null && echo root-writable; echo ok > /scratch/f && cat /scratch/f; "
                "cat /data/in.txt; echo back > /data/out.txt; touch /data-ro/y 2>/dev/null && echo ro-writable; "
                "grep /scratch /proc/mounts | cut -d' ' -f3,4"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\nfrom host\ntmpfs rw,nosuid,nodev,noexec,relatime,size=1024k\n");
  EXPECT_EQ(read_file(host_dir + "/out.txt"), "back\n");
}

TEST_F(ContainerLifecycle, PsCreatedStartStopRm) {
  auto c = berth({"create", "--rootfs", rootfs_, "--name", "web", "--label", "tier=front", "sleep", "100"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  std::string id = c.out.substr(0, 64);
  EXPECT_EQ(inspect("web")["State"]["Status"], "created");
  auto ps = berth({"ps"});
  EXPECT_EQ(ps.out.find("web"), std::string::npos) << "created containers are not listed without -a";
  ps = berth({"ps", "-a"});
  EXPECT_EQ(ps.out.rfind("CONTAINER ID   IMAGE", 0), 0u) << ps.out;
  EXPECT_NE(ps.out.find("Created"), std::string::npos) << ps.out;
  ASSERT_EQ(berth({"start", "web"}).exit_code, 0);
  ps = berth({"ps"});
  EXPECT_NE(ps.out.find(id.substr(0, 12)), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("Up "), std::string::npos) << ps.out;
  EXPECT_NE(ps.out.find("\"sleep 100\""), std::string::npos) << ps.out;
  auto j = inspect(id.substr(0, 8));  // an id prefix works too
  EXPECT_EQ(j["State"]["Running"], true);
  EXPECT_EQ(j["Config"]["Labels"]["tier"], "front");
  EXPECT_GT(j["State"]["Pid"].get<int>(), 0);
  auto rm = berth({"rm", "web"});
  EXPECT_EQ(rm.exit_code, 1) << "a running container is not removed without -f";
  auto stop = berth({"stop", "-t", "1", "web"});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_EQ(inspect("web")["State"]["Status"], "exited");
  EXPECT_EQ(berth({"ps", "-q"}).out, "");
  EXPECT_EQ(berth({"rm", "web"}).exit_code, 0);
  expect_no_trace_of(id);
  EXPECT_EQ(berth({"inspect", "web"}).exit_code, 1);
}

TEST_F(ContainerLifecycle, ConcurrentStartsGiveOneInit) {
  auto c = berth({"create", "--rootfs", rootfs_, "--name", "once", "sh", "-c", "echo started; sleep 100"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  std::vector<std::thread> starters;
  for (int i = 0; i < 6; ++i) starters.emplace_back([&] { berth({"start", "once"}); });
  for (auto& t : starters) t.join();
  ASSERT_TRUE(eventually([&] { return inspect("once")["State"]["Status"] == "running"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(berth({"logs", "once"}).out, "started\n") << "exactly one init ran";
}

TEST_F(ContainerLifecycle, RestartRunsTheContainerAgain) {
  std::string id = run_detached({"--name", "again"}, {"sh", "-c", "echo run; sleep 100"});
  int first_pid = inspect(id)["State"]["Pid"];
  auto r = berth({"restart", "-t", "1", "again"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  auto j = inspect(id);
  EXPECT_EQ(j["State"]["Status"], "running");
  EXPECT_NE(j["State"]["Pid"].get<int>(), first_pid);
  EXPECT_TRUE(eventually([&] { return berth({"logs", "again"}).out == "run\nrun\n"; }));
}

TEST_F(ContainerLifecycle, PsFiltersAndJson) {
  run_detached({"--name", "alpha", "--label", "team=a"}, {"sleep", "100"});
  ASSERT_EQ(run({"--name", "beta", "--label", "team=b"}, {"true"}).exit_code, 0);
  auto names = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "ps");
    args.insert(args.end(), {"--format", "json"});
    std::string out;
    std::istringstream in(berth(args).out);
    for (std::string l; std::getline(in, l);) out += nlohmann::json::parse(l)["Names"].get<std::string>() + " ";
    return out;
  };
  EXPECT_EQ(names({}), "alpha ");
  EXPECT_EQ(names({"-a"}), "beta alpha ");
  EXPECT_EQ(names({"-a", "--filter", "label=team=b"}), "beta ");
  EXPECT_EQ(names({"--filter", "status=exited"}), "beta ");
  EXPECT_EQ(names({"-a", "--filter", "name=alp"}), "alpha ");
  EXPECT_EQ(names({"-a", "--filter", "name=alpha", "--filter", "name=beta"}), "beta alpha ");
  EXPECT_EQ(names({"-a", "--filter", "name=alpha", "--filter", "label=team=b"}), "");
  auto j = nlohmann::json::parse(berth({"ps", "--format", "json"}).out);
  EXPECT_EQ(j["State"], "running");
  EXPECT_EQ(j["Command"], "\"sleep 100\"");
  EXPECT_EQ(berth({"ps", "--filter", "bogus=1"}).exit_code, 125);
}

TEST_F(ContainerLifecycle, ShmSizeUlimitStopSignalRename) {
  auto r = run({"--shm-size", "8m", "--ulimit", "nofile=100:200", "--ulimit", "core=0"},
               {"sh", "-c", "df -k /dev/shm | tail -1 | awk '{print $2}'; ulimit -n; ulimit -Hn; ulimit -c"});
  EXPECT_EQ(r.out, "8192\n100\n200\n0\n") << r.err;
  // Above berth's own hard limit without CAP_SYS_RESOURCE: refused up front.
  struct rlimit own {};
  ::getrlimit(RLIMIT_NOFILE, &own);
  std::string status = read_file("/proc/self/status");
  bool has_resource = std::strtoull(status.c_str() + status.find("CapEff:") + 7, nullptr, 16) & (1ULL << 24);
  if (!has_resource && own.rlim_max != RLIM_INFINITY) {
    auto big = std::to_string(own.rlim_max + 1);
    r = run({"--ulimit", "nofile=" + big + ":" + big}, {"true"});
    EXPECT_EQ(r.exit_code, 125) << r.err;
    EXPECT_NE(r.err.find("CAP_SYS_RESOURCE"), std::string::npos) << r.err;
  }
  EXPECT_EQ(run({"--ulimit", "bogus=1"}, {"true"}).exit_code, 125);
  EXPECT_EQ(run({"--ulimit", "nofile=10:5"}, {"true"}).exit_code, 125);

  // stop sends the container's stop signal first: here USR1, which it traps.
  std::string id = run_detached({"--name", "stopper", "--stop-signal", "SIGUSR1"},
                                {"sh", "-c", "trap 'exit 42' USR1; while true; do sleep 0.05; done"});
  EXPECT_EQ(inspect(id)["Config"]["StopSignal"], "SIGUSR1");
  EXPECT_EQ(berth({"stop", "-t", "5", "stopper"}).exit_code, 0);
  EXPECT_EQ(inspect(id)["State"]["ExitCode"], 42);

  EXPECT_EQ(berth({"rename", "stopper", "renamed"}).exit_code, 0);
  EXPECT_EQ(inspect("renamed")["Id"], id);
  EXPECT_EQ(inspect(id)["Name"], "/renamed");
  ASSERT_EQ(run({"--name", "other"}, {"true"}).exit_code, 0);
  EXPECT_NE(berth({"rename", "renamed", "other"}).exit_code, 0) << "names stay unique";
}

TEST_F(ContainerLifecycle, NamesAreUnique) {
  ASSERT_EQ(run({"--name", "dup"}, {"true"}).exit_code, 0);
  auto r = run({"--name", "dup"}, {"true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("already in use"), std::string::npos) << r.err;
}

TEST_F(ContainerLifecycle, AutoRemove) {
  auto r = run({"--rm"}, {"sh", "-c", "exit 4"});
  EXPECT_EQ(r.exit_code, 4);
  // Gone when run returns (its files are deleted right after, in the background).
  EXPECT_TRUE(container_dirs().empty());
  EXPECT_EQ(berth({"ps", "-aq"}).out, "");
  auto entries = [](const std::string& dir) {
    std::vector<std::string> out;
    if (DIR* d = ::opendir(dir.c_str())) {
      while (auto* e = ::readdir(d))
        if (std::string n = e->d_name; n != "." && n != ".." && n != ".lock") out.push_back(n);
      ::closedir(d);
    }
    return out;
  };
  EXPECT_TRUE(eventually([&] { return entries(root_ + "/containers").empty(); }));
  EXPECT_TRUE(eventually([&] { return entries(run_root_ + "/containers").empty(); }));

  // A --rm container's overlay is volatile (its unmount syncs nothing);
  // any other container's is not.
  EXPECT_NE(run({"--rm"}, {"grep", " / / ", "/proc/self/mountinfo"}).out.find("volatile"), std::string::npos);
  EXPECT_EQ(run({}, {"grep", " / / ", "/proc/self/mountinfo"}).out.find("volatile"), std::string::npos);

  // Files a monitor left when it was killed mid-removal go with the next create.
  pid_t gone = ::fork();
  if (gone == 0) ::_exit(0);
  ::waitpid(gone, nullptr, 0);
  std::string left = root_ + "/containers/.removing-" + std::to_string(gone) + "-" + std::string(64, 'a');
  make_dirs(left + "/upper/x");
  std::string run_left = run_root_ + "/containers/.removing-" + std::to_string(gone) + "-" + std::string(64, 'a');
  make_dirs(run_left);
  ASSERT_EQ(berth({"create", "--rootfs", rootfs_, "true"}).exit_code, 0);
  EXPECT_FALSE(path_exists(left));
  EXPECT_FALSE(path_exists(run_left));
}

TEST_F(ContainerLifecycle, LogsJsonFileShapeTailAndTimestamps) {
  auto r = run({"--name", "talker"}, {"sh", "-c", "echo one; echo two >&2; printf 'no newline'"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = inspect("talker");
  std::string log = read_file(j["LogPath"].get<std::string>());
  std::istringstream in(log);
  std::vector<nlohmann::json> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(lines.size(), 3u) << log;
  EXPECT_EQ(lines[0]["log"], "one\n");
  EXPECT_EQ(lines[0]["stream"], "stdout");
  EXPECT_EQ(lines[1]["log"], "two\n");
  EXPECT_EQ(lines[1]["stream"], "stderr");
  EXPECT_EQ(lines[2]["log"], "no newline");
  std::string t = lines[0]["time"];
  EXPECT_EQ(t.size() >= 20 && t[4] == '-' && t[10] == 'T' && t.back() == 'Z', true) << t;
  auto logs = berth({"logs", "talker"});
  EXPECT_EQ(logs.out, "one\nno newline");
  EXPECT_EQ(logs.err, "two\n");
  logs = berth({"logs", "--tail", "1", "talker"});
  EXPECT_EQ(logs.out, "no newline");
  logs = berth({"logs", "-t", "--tail", "2", "talker"});
  EXPECT_EQ(logs.err, lines[1]["time"].get<std::string>() + " two\n");
}

TEST_F(ContainerLifecycle, LogsFollowUntilTheContainerExits) {
  std::string id = run_detached({}, {"sh", "-c", "for i in 1 2 3 4 5; do echo line-$i; sleep 0.1; done"});
  auto r = berth({"logs", "-f", id});  // returns only once the container has exited
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "line-1\nline-2\nline-3\nline-4\nline-5\n");
  EXPECT_EQ(inspect(id)["State"]["Status"], "exited");
}

TEST_F(ContainerLifecycle, LogRotationKeepsMaxFiles) {
  auto r = run({"--name", "rot", "--log-opt", "max-size=2k", "--log-opt", "max-file=3"},
               {"sh", "-c", "i=0; while [ $i -lt 400 ]; do echo line-$i; i=$((i+1)); done"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string path = inspect("rot")["LogPath"];
  EXPECT_TRUE(path_exists(path));
  EXPECT_TRUE(path_exists(path + ".1"));
  EXPECT_TRUE(path_exists(path + ".2"));
  EXPECT_FALSE(path_exists(path + ".3"));
  for (auto p : {path, path + ".1", path + ".2"}) EXPECT_LE(read_file(p).size(), 2048u) << p;
  auto logs = berth({"logs", "rot"});
  EXPECT_NE(logs.out.find("line-399\n"), std::string::npos);
  EXPECT_EQ(logs.out.find("line-0\n"), std::string::npos) << "the oldest lines are rotated away";
}

TEST_F(ContainerLifecycle, LogDriverNoneWritesNothing) {
  auto r = run({"--name", "quiet", "--log-driver", "none"}, {"echo", "hello"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hello\n") << "attached output still reaches the caller";
  auto j = inspect("quiet");
  EXPECT_EQ(j["LogPath"], "");
  EXPECT_FALSE(path_exists(root_ + "/containers/" + j["Id"].get<std::string>() + "/" + j["Id"].get<std::string>() +
                           "-json.log"));
  EXPECT_NE(berth({"logs", "quiet"}).exit_code, 0);
}

TEST_F(ContainerLifecycle, StdinWithInteractive) {
  auto r = run({"-i"}, {"sh", "-c", "read a; read b; echo got $a $b"}, "first\nsecond\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "got first second\n");
  r = run({}, {"sh", "-c", "cat; echo end"}, "ignored\n");
  EXPECT_EQ(r.out, "end\n") << "without -i stdin is empty";
}

TEST_F(ContainerLifecycle, TtyFromTheContainersOwnDevpts) {
  auto r = run({"-t"}, {"sh", "-c", "test -t 0 && test -t 1 && echo is-tty; tty; echo out; echo err >&2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  // One stream, with the terminal's CRLF line ends.
  EXPECT_EQ(r.out, "is-tty\r\n/dev/pts/0\r\nout\r\nerr\r\n");
  // -it from a pipe: docker's error and exit 1, before anything is made
  // (typing into run -it and exec -it from a terminal: container_attach_test).
  std::string before = berth({"ps", "-aq"}).out;
  r = run({"-i", "-t"}, {"sh"}, "echo typed-$((40+2)); exit 3\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "Error: the input device is not a TTY\n");
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(berth({"ps", "-aq"}).out, before) << "run -it from a pipe left a container";
  // Detached, its stdin is not read: fine.
  std::string id = run_detached({"-i", "-t", "--name", "bg"}, {"sleep", "100"});
  ASSERT_FALSE(id.empty());
  r = berth({"exec", "-i", "-t", "bg", "echo", "ran"}, "input\n");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "Error: the input device is not a TTY\n");
  EXPECT_EQ(r.out, "");
  r = berth({"exec", "-t", "bg", "echo", "ran"}, "input\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ran\r\n");
  r = berth({"exec", "-d", "-i", "-t", "bg", "true"}, "input\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(ContainerLifecycle, AttachedRunForwardsSignals) {
  std::vector<std::string> argv{berth_binary(), "--root", root_, "--run-root", run_root_, "run", "--network", "none", "--rootfs",
                                rootfs_, "--name", "trapper", "sh", "-c",
                                "trap 'echo got-term; exit 9' TERM; echo ready; while true; do sleep 0.05; done"};
  int out[2];
  ASSERT_EQ(::pipe(out), 0);
  pid_t cli = ::fork();
  ASSERT_GE(cli, 0);
  if (cli == 0) {
    ::dup2(out[1], 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out[1]);
  ASSERT_TRUE(eventually([&] { return berth({"logs", "trapper"}).out == "ready\n"; }));
  ::kill(cli, SIGTERM);
  int st = 0;
  ::waitpid(cli, &st, 0);
  std::string text;
  char buf[256];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 9);
  EXPECT_EQ(text, "ready\ngot-term\n");
}

// The process that starts the container is SIGKILLed once the container
// runs: the container and its log go on.
TEST_F(ContainerLifecycle, SurvivesSigkillOfTheStarter) {
  std::vector<std::string> argv{berth_binary(), "--root", root_, "--run-root", run_root_, "run", "--network", "none", "--rootfs",
                                rootfs_,        "--name", "survivor", "sh", "-c",
                                "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.1; done"};
  pid_t starter = ::fork();
  ASSERT_GE(starter, 0);
  if (starter == 0) {
    int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 0);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  bool running = eventually([&] { return inspect("survivor")["State"]["Status"] == "running"; });
  ::kill(starter, SIGKILL);
  int st = 0;
  ::waitpid(starter, &st, 0);
  ASSERT_TRUE(running);
  auto count_lines = [&] {
    auto logs = berth({"logs", "survivor"});
    return std::count(logs.out.begin(), logs.out.end(), '\n');
  };
  long before = count_lines();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  long after = count_lines();
  EXPECT_GT(after, before + 2) << "the log keeps growing after the starter died";
  EXPECT_EQ(inspect("survivor")["State"]["Status"], "running");
  auto ps = berth({"ps"});
  EXPECT_NE(ps.out.find("survivor"), std::string::npos) << ps.out;
}

// With no serve to end it (network_serve_test: serve does).
TEST_F(ContainerLifecycle, DeadMonitorIsReported) {
  std::string id = run_detached_without_serve({"sleep", "100"});
  auto j = inspect(id);
  ASSERT_EQ(j["State"]["Status"], "running");
  int pid = j["State"]["Pid"];
  // The monitor is the init's parent.
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  int ppid = std::atoi(stat.substr(stat.rfind(')') + 4).c_str());
  ASSERT_GT(ppid, 1);
  ASSERT_EQ(::kill(ppid, SIGKILL), 0);
  EXPECT_TRUE(eventually([&] { return inspect(id)["State"]["Status"] == "dead"; }));
  EXPECT_NE(inspect(id)["State"]["Error"].get<std::string>().find("monitor"), std::string::npos);
  EXPECT_EQ(run_berth({"--root", root_, "--run-root", run_root_, "start", id}, "", {"BERTH_IN_SERVE="}).exit_code, 1)
      << "a dead container's process still runs: no second init";
  EXPECT_EQ(berth({"rm", "-f", id}).exit_code, 0);
  expect_no_trace_of(id, pid);
}

TEST_F(ContainerLifecycle, LostRunRootMeansExited255AndRestartable) {
  std::string id = run_detached_without_serve({"sleep", "100"});
  auto j = inspect(id);
  int pid = j["State"]["Pid"];
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  int monitor = std::atoi(stat.substr(stat.rfind(')') + 4).c_str());
  // As after a reboot: monitor and container gone, nothing recorded.
  ::kill(monitor, SIGKILL);
  ::kill(pid, SIGKILL);
  ASSERT_TRUE(eventually([&] { return inspect(id)["State"]["Status"] == "exited"; }));
  EXPECT_EQ(inspect(id)["State"]["ExitCode"], 255);
  EXPECT_EQ(berth({"start", id}).exit_code, 0);
  EXPECT_EQ(inspect(id)["State"]["Status"], "running");
}

TEST_F(ContainerLifecycle, PauseFreezesAndUnpauseResumes) {
  std::string id = run_detached({}, {"sh", "-c", "i=0; while true; do echo $i; i=$((i+1)); sleep 0.05; done"});
  auto lines = [&] {
    auto l = berth({"logs", id});
    return std::count(l.out.begin(), l.out.end(), '\n');
  };
  ASSERT_TRUE(eventually([&] { return lines() > 2; }));
  ASSERT_EQ(berth({"pause", id}).exit_code, 0);
  EXPECT_EQ(inspect(id)["State"]["Status"], "paused");
  EXPECT_NE(berth({"ps"}).out.find("(Paused)"), std::string::npos);
  long a = lines();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  long b = lines();
  EXPECT_EQ(a, b) << "a paused container makes no progress";
  EXPECT_NE(berth({"exec", id, "true"}).exit_code, 0) << "no exec into a paused container";
  ASSERT_EQ(berth({"unpause", id}).exit_code, 0);
  EXPECT_TRUE(eventually([&] { return lines() > b + 3; }));
  EXPECT_EQ(inspect(id)["State"]["Status"], "running");
  // A paused container can be force-removed.
  ASSERT_EQ(berth({"pause", id}).exit_code, 0);
  EXPECT_EQ(berth({"rm", "-f", id}).exit_code, 0);
  expect_no_trace_of(id);
}

TEST_F(ContainerLifecycle, ExecJoinsEveryNamespace) {
  std::string id = run_detached({"-h", "inside", "-e", "FROM_RUN=1"}, {"sh", "-c", "echo marker > /tmp/m; sleep 100"});
  ASSERT_TRUE(eventually([&] { return berth({"exec", id, "cat", "/tmp/m"}).out == "marker\n"; }));
  auto r = berth({"exec", "-e", "X=y", id, "sh", "-c",
                  "hostname; echo $FROM_RUN$X; cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /sys/class/net; "
                  "grep -E 'CapEff|Seccomp:' /proc/self/status; "
                  "for n in cgroup ipc mnt net pid uts; do "
                  "[ \"$(readlink /proc/1/ns/$n)\" = \"$(readlink /proc/self/ns/$n)\" ] && echo same-$n; done"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "inside\n1y\nsleep 100 \nlo\nCapEff:\t00000000a80425fb\nSeccomp:\t2\n"
            "same-cgroup\nsame-ipc\nsame-mnt\nsame-net\nsame-pid\nsame-uts\n");
  r = berth({"exec", "-u", "berth", "-w", "/tmp", id, "sh", "-c", "id -u; pwd; exit 5"});
  EXPECT_EQ(r.exit_code, 5);
  EXPECT_EQ(r.out, "1000\n/tmp\n");
  r = berth({"exec", id, "no-such-thing"});
  EXPECT_EQ(r.exit_code, 127) << r.err;
  // Detached: returns at once, the process runs on.
  r = berth({"exec", "-d", id, "sh", "-c", "sleep 0.2; echo late > /tmp/late"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(eventually([&] { return berth({"exec", id, "cat", "/tmp/late"}).out == "late\n"; }));
  // The exec'd process is in the container's cgroup.
  r = berth({"exec", id, "cat", "/proc/self/cgroup"});
  EXPECT_NE(r.out.find("memory:/\n"), std::string::npos) << r.out;
}

TEST_F(ContainerLifecycle, RmForceLeavesNothing) {
  std::vector<std::pair<std::string, int>> started;
  for (int i = 0; i < 5; ++i) {
    std::string id = run_detached({"--memory", "64m", "--pids-limit", "50", "-v", tmp_.path() + ":/host"},
                                  {"sh", "-c", "sleep 100 & sleep 100"});
    auto j = inspect(id);
    ASSERT_EQ(j["State"]["Status"], "running");
    started.emplace_back(id, j["State"]["Pid"].get<int>());
  }
  for (auto& [id, pid] : started) {
    auto r = berth({"rm", "-f", id});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    expect_no_trace_of(id, pid);
  }
  EXPECT_TRUE(container_dirs().empty());
}

// A `run` killed at every point of its start leaves a container that
// `rm -f` removes without a trace.
TEST_F(ContainerLifecycle, RunKilledMidStartIsRemovable) {
  for (int delay_ms : {1, 3, 6, 10, 20}) {
    std::vector<std::string> argv{berth_binary(), "--root", root_, "--run-root", run_root_, "run", "--network", "none", "-d",
                                  "--rootfs", rootfs_, "sleep", "100"};
    pid_t starter = ::fork();
    ASSERT_GE(starter, 0);
    if (starter == 0) {
      int devnull = ::open("/dev/null", O_RDWR);
      ::dup2(devnull, 1);
      ::dup2(devnull, 2);
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(starter, SIGKILL);
    ::waitpid(starter, nullptr, 0);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  for (auto& id : container_dirs()) {
    if (id.size() != 64) continue;
    auto r = berth({"rm", "-f", id});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    expect_no_trace_of(id);
  }
}

TEST_F(ContainerLifecycle, BadInputExits125AndLeavesNothing) {
  std::string bad_profile = tmp_.write("bad.json", "{\"defaultAction\": ");
  std::string wrong_action = tmp_.write("wrong.json", "{\"defaultAction\": \"SCMP_ACT_SOMETIMES\"}");
  std::vector<std::vector<std::string>> cases = {
      {"--cap-add", "CAP_NOT_A_THING"},
      {"--cap-drop", "bogus"},
      {"--security-opt", "seccomp=" + bad_profile},
      {"--security-opt", "seccomp=" + wrong_action},
      {"--security-opt", "seccomp=" + tmp_.path() + "/missing.json"},
      {"-u", "nobody-here"},
      {"-u", "berth:nogroup-here"},
      {"-v", "relative/path:/x"},
      {"-v", "/tmp:relative"},
      {"-v", "/tmp:/x:bogus"},
      {"--tmpfs", "relative"},
      {"--memory", "lots"},
      {"--network", "bridge-that-does-not-exist"},
      {"--log-driver", "syslog"},
  };
  for (auto& flags : cases) {
    auto r = run(flags, {"true"});
    EXPECT_EQ(r.exit_code, 125) << flags[0] << " " << flags[1] << ": " << r.err;
    EXPECT_FALSE(r.err.empty()) << "a clear message for " << flags[1];
  }
  auto r = berth({"run", "--rootfs", tmp_.path() + "/no-such-rootfs", "true"});
  EXPECT_EQ(r.exit_code, 125) << r.err;
  EXPECT_TRUE(container_dirs().empty()) << "nothing is left after bad input";
}

}  // namespace
}  // namespace berth::test
