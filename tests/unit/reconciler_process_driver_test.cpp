// The ProcessDriver runs each operation of a blocking driver in its own
// process: independent operations overlap, the executor's bound holds,
// dependency order holds, and a failure (an error or a dead worker) is
// reported for its operation while the independent ones still run.
//
// The inner driver runs in the children, so it records what happens in
// files (under a flock), not in memory.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <thread>

#include "base/fs.h"
#include "reconciler/process_driver.h"
#include "reconciler/reconciler.h"
#include "spec/spec.h"
#include "tests/unit/reconciler_fake_driver.h"

using namespace berth;
using namespace berth::reconciler;

namespace {

using fake::load;

std::string services(int n, const std::string& extra = {}) {
  std::string y = "services:\n";
  for (int i = 1; i <= n; ++i) y += "  s" + std::to_string(i) + ":\n    image: busybox\n" + extra;
  return y;
}

class Dir {
 public:
  Dir() {
    char t[] = "/tmp/berth-process-driver-XXXXXX";
    path = ::mkdtemp(t);
  }
  ~Dir() { std::filesystem::remove_all(path); }
  std::string path;
};

// A blocking driver whose operations log "begin X" / "end X" lines to a
// shared file, keep a count of the operations running at once (and the
// highest count seen), and can wait for others, fail, or die.
class FileDriver : public Driver {
 public:
  explicit FileDriver(std::string dir) : dir_(std::move(dir)) {}
  std::string fail_call;      // this call completes with an error
  std::string die_call;       // this call's process is killed (SIGKILL)
  int rendezvous = 0;         // create_container waits until this many creates have begun

  void create_network(const NetworkSpec& n, Completion done) override { call("create_network " + n.name, done); }
  void remove_network(const std::string& name, Completion done) override { call("remove_network " + name, done); }
  void create_volume(const VolumeSpec& v, Completion done) override { call("create_volume " + v.name, done); }
  void remove_volume(const std::string& name, Completion done) override { call("remove_volume " + name, done); }
  void create_container(const ContainerSpec& c, Completion done) override {
    call("create_container " + c.name, done, rendezvous);
  }
  void start_container(const std::string& c, Completion done) override { call("start_container " + c, done); }
  void stop_container(const std::string& c, std::chrono::seconds, Completion done) override {
    call("stop_container " + c, done);
  }
  void remove_container(const std::string& c, Completion done) override { call("remove_container " + c, done); }
  void rename_container(const std::string& c, const std::string& n, Completion done) override {
    call("rename_container " + c + " " + n, done);
  }
  void wait_condition(const WaitFor& w, Completion done) override {
    call("wait_condition " + w.service + " " + w.condition, done);
  }

  std::vector<std::string> log() const {
    std::vector<std::string> lines;
    std::ifstream in(dir_ + "/log");
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    return lines;
  }
  int max_running() const { return counter("max"); }

 private:
  // Under the flock: adds `delta` to the running count, appends a log line.
  void record(const std::string& line, int delta) const {
    UniqueFd lock(::open((dir_ + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    ::flock(lock.get(), LOCK_EX);
    int running = counter("running") + delta;
    write_counter("running", running);
    if (running > counter("max")) write_counter("max", running);
    std::ofstream(dir_ + "/log", std::ios::app) << line << "\n";
  }
  int counter(const std::string& name) const {
    std::ifstream in(dir_ + "/" + name);
    int v = 0;
    in >> v;
    return v;
  }
  void write_counter(const std::string& name, int v) const { std::ofstream(dir_ + "/" + name) << v; }
  int lines_starting(const std::string& prefix) const {
    int n = 0;
    for (const auto& l : log())
      if (l.rfind(prefix, 0) == 0) ++n;
    return n;
  }

  void call(const std::string& what, const Completion& done, int wait_for = 0) {
    record("begin " + what, +1);
    if (what == die_call) ::kill(::getpid(), SIGKILL);
    if (wait_for > 0) {
      // Proves concurrency: passes only if `wait_for` creates run at once.
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
      while (lines_starting("begin create_container") < wait_for) {
        if (std::chrono::steady_clock::now() > deadline) {
          record("end " + what, -1);
          return done(Error("rendezvous timed out"));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    record("end " + what, -1);
    if (what == fail_call) return done(Error("no such image: nope", 0, 125));
    done(std::nullopt);
  }

  std::string dir_;
};

std::size_t index_of(const std::vector<std::string>& log, const std::string& line) {
  auto it = std::find(log.begin(), log.end(), line);
  EXPECT_NE(it, log.end()) << "missing " << line;
  return static_cast<std::size_t>(it - log.begin());
}

ExecutionResult run(const Plan& p, Driver& inner, std::size_t limit, std::vector<std::string>* events = nullptr) {
  ProcessDriver driver(inner);
  ExecutorOptions o;
  o.max_parallel = limit;
  if (events) o.on_event = [events](const Event& e) { events->push_back(e.str()); };
  return run_plan(p, driver, o, [&] { return driver.drain(); });
}

}  // namespace

TEST(ReconcilerProcessDriver, IndependentContainersAreCreatedAtOnce) {
  Dir dir;
  FileDriver inner(dir.path);
  inner.rendezvous = 5;  // every create waits for the other four
  ExecutionResult r = run(plan(desired_state(load(services(5))), {}), inner, 5);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_EQ(inner.max_running(), 5);
  for (int i = 1; i <= 5; ++i) EXPECT_LT(index_of(inner.log(), "end create_container app-s" + std::to_string(i) + "-1"),
                                         index_of(inner.log(), "begin start_container app-s" + std::to_string(i) + "-1"));
}

TEST(ReconcilerProcessDriver, NeverRunsMoreThanTheLimit) {
  Dir dir;
  FileDriver inner(dir.path);
  inner.rendezvous = 3;  // the first three creates wait for each other: the limit is reached
  ExecutionResult r = run(plan(desired_state(load(services(8))), {}), inner, 3);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_EQ(inner.max_running(), 3);  // reached, never passed
  EXPECT_EQ(inner.log().size(), 2u * (1 + 8 + 8));  // network, creates, starts: begin + end each
}

TEST(ReconcilerProcessDriver, ADependencyChainStartsInOrder) {
  Dir dir;
  FileDriver inner(dir.path);
  ExecutionResult r = run(plan(desired_state(load(R"(
services:
  db: {image: busybox}
  api: {image: busybox, depends_on: {db: {condition: service_healthy}}}
  web: {image: busybox, depends_on: [api]}
  a: {image: busybox}
  b: {image: busybox}
)")),
                               {}),
                          inner, 8);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  auto log = inner.log();
  EXPECT_LT(index_of(log, "end start_container app-db-1"), index_of(log, "begin wait_condition db service_healthy"));
  EXPECT_LT(index_of(log, "end wait_condition db service_healthy"), index_of(log, "begin start_container app-api-1"));
  EXPECT_LT(index_of(log, "end start_container app-api-1"), index_of(log, "begin start_container app-web-1"));
}

TEST(ReconcilerProcessDriver, AFailureIsReportedForItsServiceAndTheOthersRun) {
  Dir dir;
  FileDriver inner(dir.path);
  inner.fail_call = "create_container app-api-1";
  std::vector<std::string> events;
  Plan p = plan(desired_state(load(R"(
services:
  api: {image: busybox}
  web: {image: busybox, depends_on: [api]}
  other: {image: busybox}
)")),
                {});
  ExecutionResult r = run(p, inner, 4, &events);
  ASSERT_EQ(r.errors.size(), 3u);  // api's create failed; its start and web's start are skipped
  EXPECT_NE(std::find(r.errors.begin(), r.errors.end(),
                      "service api: create container app-api-1: no such image: nope"),
            r.errors.end());
  EXPECT_NE(std::find(events.begin(), events.end(), "Container app-api-1  Error no such image: nope"), events.end());
  EXPECT_NE(std::find(events.begin(), events.end(), "Container app-other-1  Started"), events.end());
  auto log = inner.log();
  EXPECT_EQ(std::count(log.begin(), log.end(), "end start_container app-other-1"), 1);
  EXPECT_EQ(std::count(log.begin(), log.end(), "begin start_container app-web-1"), 0);
}

TEST(ReconcilerProcessDriver, AWorkerThatDiesFailsItsOperation) {
  Dir dir;
  FileDriver inner(dir.path);
  inner.die_call = "start_container app-s1-1";
  ExecutionResult r = run(plan(desired_state(load(services(2))), {}), inner, 4);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].find("service s1: start container app-s1-1: the worker process died of signal 9"),
            std::string::npos)
      << r.errors[0];
  auto log = inner.log();
  EXPECT_EQ(std::count(log.begin(), log.end(), "end start_container app-s2-1"), 1);
}

TEST(ReconcilerProcessDriver, DrainWithNothingRunningSaysSo) {
  Dir dir;
  FileDriver inner(dir.path);
  ProcessDriver driver(inner);
  EXPECT_FALSE(driver.drain());
}

TEST(ReconcilerProcessDriver, ParallelLimitComesFromComposeParallelLimit) {
  ::setenv("COMPOSE_PARALLEL_LIMIT", "3", 1);
  EXPECT_EQ(parallel_limit(0, 8), 3u);
  ::setenv("COMPOSE_PARALLEL_LIMIT", "zero", 1);
  EXPECT_EQ(parallel_limit(0, 8), 8u);
  ::unsetenv("COMPOSE_PARALLEL_LIMIT");
  EXPECT_EQ(parallel_limit(0, 8), 8u);
}

TEST(ReconcilerProcessDriver, ParallelFlagWinsOverComposeParallelLimit) {
  ::setenv("COMPOSE_PARALLEL_LIMIT", "3", 1);
  EXPECT_EQ(parallel_limit(1, 8), 1u);
  EXPECT_EQ(parallel_limit(-1, 8), std::numeric_limits<std::size_t>::max());  // -1: no limit, as compose
  ::unsetenv("COMPOSE_PARALLEL_LIMIT");
  EXPECT_EQ(parallel_limit(5, 8), 5u);
}
