// The CLI as a client of `berth serve` (POST /commands, supervisor/commands.h):
// a command runs as serve's child with the client's arguments, environment,
// working directory, umask and stdio; the client passes its signals on and
// returns the command's exit status; commands that start processes start a
// serve when none runs, and a serve the user starts takes over from it.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>

#include "tests/integration/serve_fixture.h"

namespace berth::test {
namespace {


// A cgroup in every cgroup hierarchy mounted here, as a login session, a CI
// job or a service unit gets one from its manager; ended (every process in
// it SIGKILLed, as systemd stops a unit) and removed at scope exit.
class SessionCgroups {
 public:
  SessionCgroups() {
    std::string name = "berth-test-session-" + std::to_string(::getpid());
    std::istringstream in(read_file("/proc/self/mountinfo"));
    for (std::string line; std::getline(in, line);) {
      auto sep = line.find(" - ");
      if (sep == std::string::npos) continue;
      std::istringstream pre(line.substr(0, sep)), post(line.substr(sep + 3));
      std::string f, mount_point, fstype, source, super;
      for (int i = 0; i < 5 && pre >> f; ++i) mount_point = f;
      post >> fstype >> source >> super;
      if ((fstype != "cgroup" && fstype != "cgroup2") || mount_point.rfind("/sys/fs/cgroup/", 0) != 0) continue;
      std::string dir = mount_point + "/" + name;
      if (::mkdir(dir.c_str(), 0755) != 0) continue;
      dirs_.push_back(dir);
      if (fstype == "cgroup" && super.find("cpuset") != std::string::npos)
        for (const char* knob : {"/cpuset.cpus", "/cpuset.mems"}) std::ofstream(dir + knob) << read_file(mount_point + knob);
    }
  }
  ~SessionCgroups() {
    end();
    for (auto& d : dirs_) ::rmdir(d.c_str());
  }
  const std::vector<std::string>& dirs() const { return dirs_; }
  // argv that joins this session and then runs cmd.
  std::vector<std::string> run_in(const std::vector<std::string>& cmd) const {
    std::string join;
    for (auto& d : dirs_) join += "echo $$ > " + d + "/cgroup.procs && ";
    std::vector<std::string> argv{"/bin/sh", "-c", join + "exec \"$@\"", "sh"};
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return argv;
  }
  // Every process in the session, with its command line.
  std::string processes() const {
    std::string out;
    for (auto& d : dirs_) {
      std::istringstream pids(read_file(d + "/cgroup.procs"));
      for (std::string pid; pids >> pid;) {
        std::string cmdline;
        read_file_if_exists("/proc/" + pid + "/cmdline", cmdline);
        std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
        out += d + ": " + pid + " " + cmdline + "\n";
      }
    }
    return out;
  }
  // The session ends: everything in it is killed, until nothing is left.
  void end() {
    for (int round = 0; round < 100 && !processes().empty(); ++round) {
      for (auto& d : dirs_) {
        std::istringstream pids(read_file(d + "/cgroup.procs"));
        for (pid_t pid; pids >> pid;) ::kill(pid, SIGKILL);
      }
      ::usleep(10'000);
    }
  }

 private:
  std::vector<std::string> dirs_;
};

class ServeCommandsTest : public ServeFixture {
 protected:
  void TearDown() override {
    for (pid_t c : clients_) {
      ::kill(c, SIGKILL);
      ::waitpid(c, nullptr, 0);
    }
    ServeFixture::TearDown();
  }

  // The pid in <run-root>/berth.pid when that process lives, else 0.
  pid_t daemon_pid() {
    std::string text;
    read_file_if_exists(run_root_ + "/berth.pid", text);
    pid_t pid = std::atoi(text.c_str());
    return pid > 0 && alive(pid) ? pid : 0;
  }

  // Live processes whose parent is `parent` and whose command line (NULs
  // as spaces) contains `needle`.
  static std::vector<pid_t> children_of(pid_t parent, const std::string& needle) {
    std::vector<pid_t> out;
    for (auto& name : list_directory("/proc")) {
      if (name[0] < '0' || name[0] > '9') continue;
      std::string stat, cmdline;
      try {
        read_file_if_exists("/proc/" + name + "/stat", stat);
        read_file_if_exists("/proc/" + name + "/cmdline", cmdline);
      } catch (...) {
        continue;
      }
      auto rp = stat.rfind(')');
      if (rp == std::string::npos || rp + 2 >= stat.size() || stat[rp + 2] == 'Z') continue;
      pid_t ppid = std::atoi(stat.c_str() + rp + 4);  // ") S PPID"
      std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
      if (ppid == parent && cmdline.find(needle) != std::string::npos) out.push_back(std::atoi(name.c_str()));
    }
    return out;
  }

  // Starts `berth ARGS...` as a client in the background (stdio /dev/null).
  pid_t start_client(std::vector<std::string> args) {
    args.insert(args.begin(), {berth_binary(), "--root", root_, "--run-root", run_root_});
    return start_background(args);
  }

  // Starts argv in the background (stdio /dev/null); TearDown kills and reaps it.
  pid_t start_background(std::vector<std::string> args) {
    pid_t pid = ::fork();
    if (pid == 0) {
      int null = ::open("/dev/null", O_RDWR);
      for (int fd = 0; fd < 3; ++fd) ::dup2(null, fd);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    clients_.push_back(pid);
    return pid;
  }

  // Waits for client `pid`; returns its wait status.
  int wait_client(pid_t pid) {
    int st = 0;
    ::waitpid(pid, &st, 0);
    clients_.erase(std::remove(clients_.begin(), clients_.end(), pid), clients_.end());
    return st;
  }

  // A foreground `berth run --name NAME` client (CMD, by default a shell
  // that exits 42 on SIGTERM) whose container runs; sets `command` to the
  // pid of serve's child that runs it (0 if there is not exactly one).
  pid_t start_running_client(pid_t serve, const std::string& name, pid_t& command,
                             std::vector<std::string> cmd = {"sh", "-c",
                                                             "trap 'exit 42' TERM; while :; do sleep 0.1; done"}) {
    std::vector<std::string> args{"run", "--name", name, "--network", "none", "--rootfs", rootfs_};
    args.insert(args.end(), cmd.begin(), cmd.end());
    pid_t client = start_client(args);
    command = 0;
    EXPECT_TRUE(eventually([&] { return state_of(name) == "running"; }, 10000)) << serve_log();
    auto commands = children_of(serve, "--name " + name);
    EXPECT_EQ(commands.size(), 1u) << "no single child of serve runs `berth run --name " << name << "`; serve's log:\n"
                                   << serve_log();
    if (commands.size() == 1) command = commands[0];
    return client;
  }

  // The container runs, and its log keeps growing.
  void expect_running_and_logging(const std::string& name) {
    EXPECT_EQ(state_of(name), "running");
    auto lines = [&] {
      std::string out = berth({"logs", name}).out;
      return std::count(out.begin(), out.end(), '\n');
    };
    auto before = lines();
    EXPECT_TRUE(eventually([&] { return lines() >= before + 3; })) << "the log of " << name << " stopped growing";
  }

  std::string state_of(const std::string& name) {
    auto j = inspect(name);
    return j.is_object() ? j["State"].value("Status", "") : "";
  }

  std::vector<pid_t> clients_;
};

TEST_F(ServeCommandsTest, ACommandRunsAsServesChildAndGetsTheClientsSignalsAndExitStatus) {
  pid_t serve = start_serve();
  // The work is done by serve's child, not by the client (whose shell,
  // SSH session or CI job may end before the container does).
  pid_t command = 0;
  pid_t client = start_running_client(serve, "fg", command);
  ASSERT_GT(command, 0);
  // It shows in ps as berth, not as the /proc/PID/exe serve ran it from.
  std::string cmdline;
  read_file_if_exists("/proc/" + std::to_string(command) + "/cmdline", cmdline);
  EXPECT_EQ(cmdline.rfind(std::string("berth\0", 6), 0), 0u) << cmdline;
  EXPECT_TRUE(children_of(client, "").empty()) << "the client started a process of its own";

  // SIGTERM to the client reaches the command, which proxies it to the
  // container (docker's --sig-proxy); the container's exit code comes back.
  ASSERT_EQ(::kill(client, SIGTERM), 0);
  int st = wait_client(client);
  ASSERT_TRUE(WIFEXITED(st)) << "status " << st;
  EXPECT_EQ(WEXITSTATUS(st), 42);
  EXPECT_TRUE(eventually([&] { return !alive(command); }));
  EXPECT_EQ(state_of("fg"), "exited");
}

TEST_F(ServeCommandsTest, TheClientsEnvironmentDirectoryUmaskAndStdinGoWithTheCommand) {
  start_serve();
  std::string dir = tmp_.path() + "/work";
  make_dirs(dir);
  make_busybox_tar(dir + "/rootfs.tar");
  std::string global = "'" + berth_binary() + "' --root '" + root_ + "' --run-root '" + run_root_ + "'";
  // A relative path (the client's directory) and the client's umask.
  Result imp = test::run({"/bin/sh", "-c", "umask 077 && exec " + global + " import rootfs.tar img:1"}, {}, {}, dir);
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  Result save = test::run({"/bin/sh", "-c", "umask 077 && exec " + global + " save -o saved.tar img:1"}, {}, {}, dir);
  ASSERT_EQ(save.exit_code, 0) << save.err;
  struct stat st {};
  ASSERT_EQ(::stat((dir + "/saved.tar").c_str(), &st), 0) << "save -o did not write in the client's directory";
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "the client's umask 077 was not applied";

  // `-e NAME` takes the value from the client's environment; stdin is the client's.
  Result env = run_berth({"--root", root_, "--run-root", run_root_, "run", "--rm", "-i", "--network", "none", "-e",
                          "GREETING", "img:1", "sh", "-c", "echo $GREETING; cat; exit 7"},
                         "from stdin\n", {"GREETING=hello from the client"});
  EXPECT_EQ(env.exit_code, 7) << env.err;
  EXPECT_EQ(env.out, "hello from the client\nfrom stdin\n");
}

TEST_F(ServeCommandsTest, OnlyCommandsThatStartProcessesStartAServeAndTheUsersServeTakesOver) {
  // Store and reading commands do their work here when no serve runs.
  std::string tar = tmp_.path() + "/busybox.tar";
  make_busybox_tar(tar);
  ASSERT_EQ(berth({"import", tar, "busybox:latest"}).exit_code, 0);
  ASSERT_EQ(berth({"tag", "busybox:latest", "other:1"}).exit_code, 0);
  ASSERT_EQ(berth({"ps", "-a"}).exit_code, 0);
  EXPECT_EQ(daemon_pid(), 0) << "a store or reading command started a serve";
  // The command line is checked here first: a usage error starts nothing.
  Result bad = berth({"run", "--no-such-flag", "busybox:latest"});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_NE(bad.err.find("no-such-flag"), std::string::npos) << bad.err;
  EXPECT_EQ(daemon_pid(), 0) << "a usage error started a serve";
  // Nor does a foreground `run --rm`: its container lives and dies with it.
  Result once = run({"--rm"}, {"echo", "once"});
  EXPECT_EQ(once.exit_code, 0) << once.err;
  EXPECT_EQ(once.out, "once\n");
  EXPECT_EQ(daemon_pid(), 0) << "a foreground run --rm started a serve";

  // `run` starts one (as docker's daemon is always there) and runs through it.
  std::string id = run_detached({"--name", "keep"}, {"sleep", "600"});
  ASSERT_FALSE(id.empty());
  pid_t started = daemon_pid();
  ASSERT_GT(started, 0);
  std::string pidfile;
  read_file_if_exists(run_root_ + "/berth.pid", pidfile);
  EXPECT_NE(pidfile.find("started-by-cli"), std::string::npos) << pidfile;

  // A serve the user starts replaces it; the container runs on.
  pid_t mine = start_serve();
  EXPECT_TRUE(eventually([&] { return !alive(started); })) << "the CLI's serve is still running";
  EXPECT_TRUE(eventually([&] { return daemon_pid() == mine; })) << serve_log();
  EXPECT_EQ(state_of("keep"), "running");
  // And a second `berth serve` is still refused.
  Result again = berth({"serve"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_NE(again.err.find("another berth serve"), std::string::npos) << again.err;
}

TEST_F(ServeCommandsTest, EndingTheSessionThatRanACommandLeavesItsContainerAndServeRunning) {
  // A login session, CI job or service unit runs `berth run -d` (which
  // starts serve, as a first run does) and then ends: its manager kills
  // whatever is in its cgroups. As with docker, whose daemon and shims live
  // in a unit of their own, the container runs on, logged and restarted.
  SessionCgroups session;
  ASSERT_FALSE(session.dirs().empty()) << "no cgroup hierarchy to make a session in";
  Result r = test::run(session.run_in({berth_binary(), "--root", root_, "--run-root", run_root_, "run", "-d", "--network",
                                       "none", "--rootfs", rootfs_, "--name", "ticker", "--restart", "always", "sh", "-c",
                                       "while true; do echo tick; sleep 0.1; done"}));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  pid_t serve = daemon_pid();
  ASSERT_GT(serve, 0);
  EXPECT_EQ(session.processes(), "") << "serve or the container's monitor stayed in the cgroups of the session that started them";
  session.end();

  EXPECT_TRUE(alive(serve)) << "serve ended with the session";
  expect_running_and_logging("ticker");
  // Serve still enforces the restart policy.
  pid_t first = inspect("ticker")["State"].value("Pid", 0);
  ASSERT_GT(first, 0);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  EXPECT_TRUE(eventually(
      [&] {
        auto j = inspect("ticker");
        return j.is_object() && j["State"].value("Status", "") == "running" && j["State"].value("Pid", 0) != first &&
               j["State"].value("Pid", 0) > 0;
      },
      10000))
      << serve_log();
}

TEST_F(ServeCommandsTest, EndingTheSessionOfAForegroundRunLeavesItsContainerRunning) {
  // A foreground `run --rm` starts no serve: the CLI starts the container's
  // monitor itself. When the session it runs in ends, the CLI goes with it
  // and, as with docker, the container runs on with its log.
  SessionCgroups session;
  ASSERT_FALSE(session.dirs().empty()) << "no cgroup hierarchy to make a session in";
  start_background(session.run_in({berth_binary(), "--root", root_, "--run-root", run_root_, "run", "--rm", "--network",
                                   "none", "--rootfs", rootfs_, "--name", "fg", "sh", "-c",
                                   "while true; do echo tick; sleep 0.1; done"}));
  ASSERT_TRUE(eventually([&] { return state_of("fg") == "running"; }, 10000));
  EXPECT_EQ(daemon_pid(), 0) << "a foreground run --rm started a serve";
  EXPECT_EQ(session.processes().find("berth-monitor"), std::string::npos)
      << "the container's monitor stayed in the session's cgroups:\n"
      << session.processes();
  session.end();

  expect_running_and_logging("fg");
}

TEST_F(ServeCommandsTest, AServeRunAsAServiceKeepsItsContainersMonitorsInItsCgroup) {
  // berth.service (KillMode=process) holds serve and the monitors, as
  // containerd's unit holds docker's shims: `systemctl status` shows them,
  // and stopping the unit stops serve alone.
  SessionCgroups unit;
  ASSERT_FALSE(unit.dirs().empty()) << "no cgroup hierarchy to make a unit in";
  pid_t serve = start_serve();
  for (auto& d : unit.dirs()) std::ofstream(d + "/cgroup.procs") << serve;
  std::string id = run_detached({"--name", "held"}, {"sleep", "600"});
  ASSERT_FALSE(id.empty());
  // (`run -d` returns once the container runs; its monitor execs berth-monitor just after.)
  EXPECT_TRUE(eventually([&] { return unit.processes().find("berth-monitor --id " + id) != std::string::npos; }))
      << "the container's monitor left the cgroup of the serve that started it:\n"
      << unit.processes();
  EXPECT_NE(unit.processes().find(" serve"), std::string::npos) << unit.processes();
  EXPECT_EQ(berth({"rm", "-f", "held"}).exit_code, 0);
  stop_serve();
}

TEST_F(ServeCommandsTest, AKilledClientTakesItsCommandAlongButNotTheContainer) {
  pid_t serve = start_serve();
  pid_t command = 0;
  pid_t client = start_running_client(serve, "orphan", command, {"sleep", "600"});
  ASSERT_GT(command, 0);
  ASSERT_EQ(::kill(client, SIGKILL), 0);
  wait_client(client);
  // As with docker: the CLI is gone, the container is not.
  EXPECT_TRUE(eventually([&] { return !alive(command); })) << "the command outlived its client";
  EXPECT_EQ(state_of("orphan"), "running");
  EXPECT_TRUE(alive(serve));
}

TEST_F(ServeCommandsTest, AProcessServeStartedNeverHandsItsWorkBack) {
  pid_t serve = start_serve();
  // The marker serve sets, present with any value (even empty): the command
  // runs here, once, instead of going back to serve again and again.
  Result r = run_berth({"--root", root_, "--run-root", run_root_, "run", "--rm", "--network", "none", "--rootfs",
                        rootfs_, "echo", "here"},
                       "", {"BERTH_IN_SERVE="});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "here\n");
  EXPECT_TRUE(children_of(serve, "run").empty());
  // And serve refuses such a command outright.
  std::string body = R"({"Args":["ps"],"Env":["BERTH_IN_SERVE="]})";
  std::string reply = http_unix(socket_, "/commands", "POST", body);
  EXPECT_NE(reply.find(" 400 "), std::string::npos) << reply;
  EXPECT_NE(reply.find("runs in berth serve already"), std::string::npos) << reply;
}

// The state letter of /proc/PID/stat ('T': stopped), '?' when gone.
char proc_state(pid_t pid) {
  std::string stat;
  if (!read_file_if_exists("/proc/" + std::to_string(pid) + "/stat", stat)) return '?';
  auto rp = stat.rfind(')');
  return rp != std::string::npos && rp + 2 < stat.size() ? stat[rp + 2] : '?';
}

TEST_F(ServeCommandsTest, CtrlZStopsTheCommandWithItsClientAndFgContinuesBoth) {
  pid_t serve = start_serve();
  pid_t command = 0;
  pid_t client = start_running_client(serve, "job", command);
  ASSERT_GT(command, 0);
  ASSERT_EQ(::kill(client, SIGTSTP), 0);
  EXPECT_TRUE(eventually([&] { return proc_state(client) == 'T' && proc_state(command) == 'T'; }))
      << "client " << proc_state(client) << ", command " << proc_state(command);
  ASSERT_EQ(::kill(client, SIGCONT), 0);
  EXPECT_TRUE(eventually([&] { return proc_state(client) != 'T' && proc_state(command) != 'T'; }))
      << "client " << proc_state(client) << ", command " << proc_state(command);
  // Still the same command, still passing signals on.
  ASSERT_EQ(::kill(client, SIGTERM), 0);
  int st = wait_client(client);
  ASSERT_TRUE(WIFEXITED(st)) << "status " << st;
  EXPECT_EQ(WEXITSTATUS(st), 42);
}

TEST_F(ServeCommandsTest, WhenServeDiesTheClientPassesSignalsOnAndGetsTheCommandsExitStatus) {
  pid_t serve = start_serve();
  pid_t command = 0;
  pid_t client = start_running_client(serve, "lone", command);
  ASSERT_GT(command, 0);
  stop_serve(SIGKILL);
  EXPECT_TRUE(alive(command)) << "the command died with serve";
  // ctrl-c, say: the client passes it on itself now, waits for the end,
  // and gets the exit status the command left.
  ASSERT_EQ(::kill(client, SIGTERM), 0);
  int st = wait_client(client);
  ASSERT_TRUE(WIFEXITED(st)) << "status " << st;
  EXPECT_EQ(WEXITSTATUS(st), 42) << "the command left its status for its client";
  EXPECT_FALSE(alive(command));
  EXPECT_FALSE(path_exists(run_root_ + "/commands/" + std::to_string(command))) << "the status file is left";
  // Nothing else the command started (its monitor's cleanup, say) left one.
  EXPECT_TRUE(list_directory(run_root_ + "/commands").empty());
  EXPECT_TRUE(eventually([&] { return state_of("lone") == "exited"; }));
  EXPECT_EQ(inspect("lone")["State"]["ExitCode"], 42);
}

TEST_F(ServeCommandsTest, BadCommandRequestsGetAClearErrorAndRunNothing) {
  pid_t serve = start_serve();
  auto post = [&](const std::string& target, const std::string& body) {
    return http_unix(socket_, target, "POST", body);
  };
  std::string not_json = post("/commands", "up -d");
  EXPECT_NE(not_json.find(" 400 "), std::string::npos) << not_json;
  EXPECT_NE(not_json.find("not a JSON object"), std::string::npos) << not_json;
  std::string no_args = post("/commands", R"({"Args":[]})");
  EXPECT_NE(no_args.find("is empty: no command to run"), std::string::npos) << no_args;
  std::string bad_umask = post("/commands", R"({"Args":["ps"],"Umask":4096})");
  EXPECT_NE(bad_umask.find("must be an integer from 0 to 0777"), std::string::npos) << bad_umask;
  std::string unknown = post("/commands/1/signal?signal=15", "");
  EXPECT_NE(unknown.find(" 404 "), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("no such command: 1"), std::string::npos) << unknown;
  std::string bad_signal = post("/commands/1/signal?signal=TERM", "");
  EXPECT_NE(bad_signal.find(" 400 "), std::string::npos) << bad_signal;
  EXPECT_NE(bad_signal.find("invalid signal: \\\"TERM\\\""), std::string::npos) << bad_signal;
  std::string bad_pid = post("/commands/1x/signal?signal=15", "");
  EXPECT_NE(bad_pid.find(" 400 "), std::string::npos) << bad_pid;
  EXPECT_NE(bad_pid.find("invalid command pid: 1x"), std::string::npos) << bad_pid;
  std::string other_method = http_unix(socket_, "/containers/json", "PUT", "{}");
  EXPECT_NE(other_method.find(" 405 "), std::string::npos) << other_method;
  EXPECT_NE(other_method.find("PUT /containers/json: only GET"), std::string::npos) << other_method;
  EXPECT_TRUE(children_of(serve, "").empty()) << "a bad request started a process";
  EXPECT_TRUE(alive(serve));
}

TEST_F(ServeCommandsTest, AStoppedServeGetsAClearErrorAndLaterRunsNothing) {
  pid_t serve = start_serve();
  ASSERT_EQ(::kill(serve, SIGSTOP), 0);  // a ctrl-z'd `berth serve`
  auto start = std::chrono::steady_clock::now();
  Result r = run({"-d", "--name", "late"}, {"true"});
  auto waited = std::chrono::steady_clock::now() - start;
  ::kill(serve, SIGCONT);
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("did not take the command"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("pid " + std::to_string(serve)), std::string::npos) << r.err;
  EXPECT_LT(waited, std::chrono::seconds(20));
  // Continued, serve finds the request of a client that hung up: it runs nothing.
  EXPECT_TRUE(eventually([&] { return serve_log().find("hung up before its command started") != std::string::npos; }))
      << serve_log();
  EXPECT_EQ(berth({"ps", "-aq"}).out, "");
  EXPECT_TRUE(children_of(serve, "").empty());
}

}  // namespace
}  // namespace berth::test
