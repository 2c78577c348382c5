// The compose CLI beyond up -d/down: `up` in the foreground (prefixed log
// stream, ctrl-c, --abort-on-container-exit, --exit-code-from), up's
// recreate flags, `compose run/top/images/config`, `logs` filters, `ps`
// filters, `down --rmi`, and golden files for up/down progress output.
// Named network_* for the host_network lock: `up` may create bridges.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/wait.h>

#include <chrono>
#include <set>

#include "tests/integration/container_fixture.h"
#include "tests/support/golden.h"

namespace berth::test {
namespace {

// A berth process running in the background with its output in files.
struct Background {
  pid_t pid = -1;
  std::string out_path, err_path;
  std::string out() const { return slurp(out_path); }
  std::string err() const { return slurp(err_path); }
  // Waits for the exit (up to timeout); -1 when it did not end (then killed).
  int wait(int timeout_ms = 30000) {
    for (int waited = 0; waited < timeout_ms; waited += 20) {
      int status = 0;
      if (::waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    pid = -1;
    return -1;
  }
  ~Background() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
};

// Three services, network_mode none: db and web print a line and sleep,
// worker sleeps; web depends on db.
std::string app_yaml(const std::string& greeting = "hi") {
  return "name: app\n"
         "services:\n"
         "  db:\n"
         "    image: busybox:latest\n"
         "    network_mode: none\n"
         "    command: [\"sh\", \"-c\", \"echo db ready; exec sleep 600\"]\n"
         "    stop_signal: SIGKILL\n"
         "  web:\n"
         "    image: busybox:latest\n"
         "    network_mode: none\n"
         "    command: [\"sh\", \"-c\", \"echo web says $$GREETING; exec sleep 600\"]\n"
         "    stop_signal: SIGKILL\n"
         "    environment:\n"
         "      GREETING: " + greeting + "\n"
         "    depends_on: [db]\n"
         "  worker:\n"
         "    image: busybox:latest\n"
         "    network_mode: none\n"
         "    command: [\"sleep\", \"600\"]\n"
         "    stop_signal: SIGKILL\n";
}

class ComposeCliTest : public ContainerTest {
 protected:
  void SetUp() override {
    ContainerTest::SetUp();
    if (IsSkipped()) return;
    start_compose_project();
  }

  void TearDown() override {
    stop_compose_project();
    ContainerTest::TearDown();
  }

  // berth ARGS in the project directory, in the background, stdin /dev/null.
  std::unique_ptr<Background> spawn(std::vector<std::string> args) {
    auto b = std::make_unique<Background>();
    static int n = 0;
    b->out_path = tmp_.path() + "/bg" + std::to_string(++n) + ".out";
    b->err_path = tmp_.path() + "/bg" + std::to_string(n) + ".err";
    auto argv_s = with_roots(std::move(args));
    argv_s.insert(argv_s.begin(), berth_binary());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t pid = ::fork();
    if (pid == 0) {
      if (::chdir(project_dir_.c_str()) != 0) _exit(127);
      int in = ::open("/dev/null", O_RDONLY);
      int out = ::open(b->out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = ::open(b->err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(in, 0);
      ::dup2(out, 1);
      ::dup2(err, 2);
      ::execv(argv[0], argv.data());
      _exit(127);
    }
    b->pid = pid;
    return b;
  }

  // name -> (id, state) of the project's containers.
  std::map<std::string, std::pair<std::string, std::string>> containers() {
    auto r = compose({"compose", "ps", "-a", "--format", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, std::pair<std::string, std::string>> out;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_array())
      for (auto& c : j) out[c["Name"].get<std::string>()] = {c["ID"].get<std::string>(), c["State"].get<std::string>()};
    return out;
  }
};

TEST_F(ComposeCliTest, ForegroundUpStreamsPrefixedLogsAndCtrlCStopsTheApp) {
  write_app(app_yaml());
  auto up = spawn({"up"});
  bool streaming = eventually([&] {
    auto out = up->out();
    return out.find("web-1     | web says hi\n") != std::string::npos &&
           out.find("db-1      | db ready\n") != std::string::npos;
  }, 20000);
  ASSERT_TRUE(streaming) << up->out() << up->err();
  EXPECT_EQ(up->out().rfind("Attaching to db-1, web-1, worker-1\n", 0), 0u) << up->out();
  EXPECT_EQ(up->out().find("\033["), std::string::npos) << "colour on a file";
  EXPECT_NE(up->err().find("Container app-web-1  Started"), std::string::npos) << up->err();
  ASSERT_EQ(::kill(up->pid, SIGINT), 0);
  int rc = up->wait();
  EXPECT_EQ(rc, 130) << up->err();
  std::string err = up->err();
  EXPECT_NE(err.find("Gracefully stopping..."), std::string::npos) << err;
  for (const char* name : {"app-db-1", "app-web-1", "app-worker-1"})
    EXPECT_NE(err.find(std::string("Container ") + name + "  Stopped"), std::string::npos) << err;
  // Stopped, not removed, as compose does; dependents stop first.
  EXPECT_LT(err.find("Container app-web-1  Stopped"), err.find("Container app-db-1  Stopped")) << err;
  auto cs = containers();
  ASSERT_EQ(cs.size(), 3u);
  for (const auto& [name, c] : cs) EXPECT_EQ(c.second, "exited") << name;
}

TEST_F(ComposeCliTest, AttachedUpEndsWhenEveryContainerHasExited) {
  write_app("name: app\n"
            "services:\n"
            "  a:\n"
            "    image: busybox:latest\n"
            "    network_mode: none\n"
            "    command: [\"sh\", \"-c\", \"echo a1; sleep 0.4; echo a2\"]\n"
            "  b:\n"
            "    image: busybox:latest\n"
            "    network_mode: none\n"
            "    command: [\"sh\", \"-c\", \"sleep 0.2; echo b1; sleep 0.4; echo b2; exit 4\"]\n");
  auto r = compose({"up"});
  EXPECT_EQ(r.exit_code, 0) << r.err;  // without --abort-on-container-exit, exit codes do not matter
  EXPECT_NE(r.out.find("a-1  | a1\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("b-1  | b2\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("a-1 exited with code 0\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("b-1 exited with code 4\n"), std::string::npos) << r.out;
  // And `logs` merges both in time order.
  auto logs = compose({"compose", "logs", "--no-log-prefix"});
  EXPECT_EQ(logs.out, "a1\nb1\na2\nb2\n") << logs.out;
}

TEST_F(ComposeCliTest, AbortOnContainerExitAndExitCodeFrom) {
  std::string yaml = "name: app\n"
                     "services:\n"
                     "  job:\n"
                     "    image: busybox:latest\n"
                     "    network_mode: none\n"
                     "    command: [\"sh\", \"-c\", \"sleep 0.5; echo done; exit 3\"]\n"
                     "  server:\n"
                     "    image: busybox:latest\n"
                     "    network_mode: none\n"
                     "    command: [\"sleep\", \"600\"]\n"
                     "    stop_signal: SIGKILL\n";
  write_app(yaml);
  auto start = std::chrono::steady_clock::now();
  auto r = compose({"up", "--abort-on-container-exit"});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("job-1     | done\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("job-1 exited with code 3\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Aborting on container exit...\n"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("Container app-server-1  Stopped"), std::string::npos) << r.err;
  EXPECT_EQ(containers()["app-server-1"].second, "exited");

  // --exit-code-from: the code of that service's container, here the
  // server's, which the abort killed (SIGKILL: 137).
  auto r2 = compose({"up", "--exit-code-from", "server"});
  EXPECT_EQ(r2.exit_code, 137) << r2.out << r2.err;
  auto r3 = compose({"up", "--exit-code-from", "job"});
  EXPECT_EQ(r3.exit_code, 3) << r3.out << r3.err;
  auto bad = compose({"up", "--exit-code-from", "nosuch"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("nosuch"), std::string::npos) << bad.err;
  auto detached = compose({"up", "-d", "--abort-on-container-exit"});
  EXPECT_NE(detached.exit_code, 0);
}

TEST_F(ComposeCliTest, RecreateFlagsAndNoDeps) {
  write_app(app_yaml());
  auto nodeps = compose({"up", "-d", "--no-deps", "web"});
  ASSERT_EQ(nodeps.exit_code, 0) << nodeps.err;
  auto only_web = containers();
  EXPECT_EQ(only_web.size(), 1u);
  EXPECT_TRUE(only_web.count("app-web-1"));
  ASSERT_EQ(compose({"up", "-d"}).exit_code, 0);
  auto before = containers();
  ASSERT_EQ(before.size(), 3u);

  auto force = compose({"up", "-d", "--force-recreate", "web"});
  ASSERT_EQ(force.exit_code, 0) << force.err;
  auto after = containers();
  EXPECT_NE(after["app-web-1"].first, before["app-web-1"].first);
  EXPECT_EQ(after["app-db-1"].first, before["app-db-1"].first);
  EXPECT_EQ(after["app-worker-1"].first, before["app-worker-1"].first);

  write_app(app_yaml("changed"));
  auto keep = compose({"up", "-d", "--no-recreate"});
  ASSERT_EQ(keep.exit_code, 0) << keep.err;
  EXPECT_EQ(containers(), after);
  EXPECT_EQ(lines_of(keep.err, "Container "), "") << keep.err;
  auto both = compose({"up", "-d", "--no-recreate", "--force-recreate"});
  EXPECT_NE(both.exit_code, 0);

  // --remove-orphans: a service dropped from the file goes.
  write_app(app_yaml("changed").substr(0, app_yaml("changed").find("  worker:")));
  auto orphans = compose({"up", "-d", "--remove-orphans"});
  ASSERT_EQ(orphans.exit_code, 0) << orphans.err;
  EXPECT_NE(orphans.err.find("Container app-worker-1  Removed"), std::string::npos) << orphans.err;
  EXPECT_FALSE(containers().count("app-worker-1"));

  // --wait returns once everything runs (no healthchecks here).
  auto wait = compose({"up", "-d", "--wait", "--wait-timeout", "20"});
  EXPECT_EQ(wait.exit_code, 0) << wait.err;
}

TEST_F(ComposeCliTest, RunIsAOneOffContainer) {
  write_app(app_yaml());
  auto r = compose({"compose", "run", "--rm", "-e", "EXTRA=1", "web", "sh", "-c", "echo $EXTRA $GREETING"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1 hi\n");
  // Its dependency was started; web itself was not, and --rm left nothing.
  auto cs = containers();
  EXPECT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs["app-db-1"].second, "running");
  EXPECT_EQ(berth({"ps", "-aq"}).out.size(), 13u) << berth({"ps", "-a"}).out;  // only db

  // stdin reaches the one-off command.
  auto piped = run_berth(with_roots({"compose", "run", "--rm", "--no-deps", "-T", "worker", "cat"}), "piped in\n", {},
                         project_dir_);
  EXPECT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out, "piped in\n");
  auto code = compose({"compose", "run", "--no-deps", "worker", "sh", "-c", "exit 7"});
  EXPECT_EQ(code.exit_code, 7) << code.err;
  auto all = berth({"ps", "-a"});
  EXPECT_NE(all.out.find("app-worker-run-"), std::string::npos) << all.out;
  // A one-off container is not a service container: ps hides it, down removes it.
  EXPECT_FALSE(containers().count("app-worker-1"));
  auto down = compose({"down", "-t", "0"});
  EXPECT_EQ(down.exit_code, 0) << down.err;
  EXPECT_EQ(berth({"ps", "-aq"}).out, "");
  EXPECT_NE(compose({"compose", "run", "nosuch"}).exit_code, 0);
}

TEST_F(ComposeCliTest, LogsFiltersTopImagesPsAndConfig) {
  write_app("name: app\n"
            "services:\n"
            "  talk:\n"
            "    image: busybox:latest\n"
            "    network_mode: none\n"
            "    command: [\"sh\", \"-c\", \"echo one; sleep 1.5; echo two; exec sleep 600\"]\n"
            "    stop_signal: SIGKILL\n");
  ASSERT_EQ(compose({"up", "-d"}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return compose({"compose", "logs"}).out.find("two") != std::string::npos; }, 10000));
  EXPECT_EQ(compose({"compose", "logs", "--tail", "1"}).out, "talk-1  | two\n");
  EXPECT_EQ(compose({"compose", "logs", "--tail", "0"}).out, "");
  EXPECT_NE(compose({"compose", "logs", "--tail", "x"}).exit_code, 0);
  auto ts = compose({"compose", "logs", "-t", "--no-log-prefix"});
  std::istringstream in(ts.out);
  std::string first, second;
  std::getline(in, first);
  std::getline(in, second);
  ASSERT_GT(first.size(), 20u) << ts.out;
  EXPECT_EQ(first.substr(first.size() - 4), " one") << first;
  std::string t1 = first.substr(0, first.find(' '));
  std::string t2 = second.substr(0, second.find(' '));
  EXPECT_LT(t1, t2);
  // --since just after the first line: only the second; --until: only the first.
  EXPECT_EQ(compose({"compose", "logs", "--no-log-prefix", "--since", t2}).out, "two\n");
  EXPECT_EQ(compose({"compose", "logs", "--no-log-prefix", "--until", t2}).out, "one\n");
  EXPECT_EQ(compose({"compose", "logs", "--no-log-prefix", "--since", "1h"}).out, "one\ntwo\n");
  EXPECT_EQ(compose({"compose", "logs", "--no-log-prefix", "--until", "1h"}).out, "");
  EXPECT_NE(compose({"compose", "logs", "--since", "yesterday"}).exit_code, 0);

  auto top = compose({"compose", "top"});
  EXPECT_EQ(top.exit_code, 0) << top.err;
  EXPECT_EQ(top.out.rfind("app-talk-1\nUID", 0), 0u) << top.out;
  EXPECT_NE(top.out.find("sleep 600"), std::string::npos) << top.out;

  auto images = compose({"compose", "images"});
  EXPECT_EQ(images.exit_code, 0) << images.err;
  std::string id = berth({"images", "-q"}).out.substr(0, 12);
  EXPECT_NE(lines_of(images.out, "app-talk-1").find("busybox"), std::string::npos) << images.out;
  EXPECT_NE(lines_of(images.out, "app-talk-1").find(id), std::string::npos) << images.out << id;

  auto q = compose({"compose", "ps", "-q"});
  EXPECT_EQ(q.out.size(), 65u) << q.out;
  EXPECT_EQ(compose({"compose", "ps", "--status", "exited", "-q"}).out, "");
  auto j = nlohmann::json::parse(compose({"compose", "ps", "--format", "json"}).out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["Health"], "");
  EXPECT_TRUE(j[0]["Publishers"].is_array());
  EXPECT_EQ(compose({"compose", "config", "--services"}).out, "talk\n");
  auto named = compose({"compose", "-p", "other", "config"});
  EXPECT_EQ(named.exit_code, 0) << named.err;
  EXPECT_EQ(named.out.rfind("name: other\n", 0), 0u) << named.out;
}

TEST_F(ComposeCliTest, DownRmiAllRemovesTheImages) {
  write_app(app_yaml());
  ASSERT_EQ(compose({"up", "-d"}).exit_code, 0);
  auto bad = compose({"down", "--rmi", "some"});
  EXPECT_NE(bad.exit_code, 0);
  auto local = compose({"down", "--rmi", "local", "-t", "0"});
  EXPECT_EQ(local.exit_code, 0) << local.err;
  EXPECT_EQ(lines_of(local.err, "Image "), "") << local.err;  // busybox:latest has a custom tag
  EXPECT_NE(berth({"images", "-q"}).out, "");
  ASSERT_EQ(compose({"up", "-d"}).exit_code, 0);
  auto down = compose({"down", "--rmi", "all", "-t", "0"});
  EXPECT_EQ(down.exit_code, 0) << down.err;
  EXPECT_NE(down.err.find("Image busybox:latest  Removed"), std::string::npos) << down.err;
  EXPECT_EQ(berth({"images", "-q"}).out, "");
  EXPECT_NE(compose({"up", "-d"}).exit_code, 0);
}

// compose's progress lines for up and down, as golden files (-t 0 and
// SIGKILL stop signals keep them deterministic).
TEST_F(ComposeCliTest, UpAndDownOutputGolden) {
  write_app(app_yaml() +
            "    volumes: [\"data:/data\"]\n"
            "volumes:\n"
            "  data: {}\n");
  auto up = compose({"up", "-d"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  compare_or_update_golden(tests_dir() + "/integration/golden/compose-up.txt", up.err);
  auto down = compose({"down", "-v", "-t", "0"});
  ASSERT_EQ(down.exit_code, 0) << down.err;
  compare_or_update_golden(tests_dir() + "/integration/golden/compose-down.txt", down.err);
}

}  // namespace
}  // namespace berth::test

namespace berth::test {
namespace {

// --wait waits for healthchecks (run by the `berth serve` that up starts)
// and fails on an unhealthy service.
TEST_F(ComposeCliTest, UpWaitWaitsForHealthyAndFailsOnUnhealthy) {
  std::string svc = "    image: busybox:latest\n"
                    "    network_mode: none\n"
                    "    stop_signal: SIGKILL\n";
  write_app("name: app\n"
            "services:\n"
            "  slow:\n" + svc +
            "    command: [\"sh\", \"-c\", \"sleep 1; touch /tmp/ok; exec sleep 600\"]\n"
            "    healthcheck:\n"
            "      test: [\"CMD\", \"test\", \"-f\", \"/tmp/ok\"]\n"
            "      interval: 300ms\n"
            "      retries: 20\n");
  auto up = compose({"up", "-d", "--wait", "--wait-timeout", "30"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  auto j = nlohmann::json::parse(compose({"compose", "ps", "--format", "json"}).out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["Health"], "healthy") << j.dump();
  EXPECT_NE(j[0]["Status"].get<std::string>().find("(healthy)"), std::string::npos) << j.dump();

  write_app("name: app\n"
            "services:\n"
            "  sick:\n" + svc +
            "    command: [\"sleep\", \"600\"]\n"
            "    healthcheck:\n"
            "      test: [\"CMD\", \"false\"]\n"
            "      interval: 200ms\n"
            "      retries: 1\n");
  auto sick = compose({"up", "-d", "--wait", "--wait-timeout", "30", "--remove-orphans"});
  EXPECT_NE(sick.exit_code, 0);
  EXPECT_NE(sick.err.find("app-sick-1 is unhealthy"), std::string::npos) << sick.err;
}

}  // namespace
}  // namespace berth::test
