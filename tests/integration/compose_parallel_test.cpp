// `berth up` runs independent operations at once (each in its own
// process, --parallel or COMPOSE_PARALLEL_LIMIT at a time): a dependency chain still
// starts in order, every service of a wide app comes up, and a service that
// fails is reported for itself while the others keep running, as compose.
// network_mode: none throughout, so no bridge or nft state is involved.
#include <gtest/gtest.h>

#include "tests/integration/container_fixture.h"

namespace berth::test {
namespace {

class ComposeParallelTest : public ContainerTest {
 protected:
  void TearDown() override {
    stop_compose_project();
    ContainerTest::TearDown();
  }
  static std::string service(const std::string& name, const std::string& extra = {}) {
    return "  " + name +
           ":\n"
           "    image: busybox:latest\n"
           "    network_mode: none\n"
           "    command: [\"sleep\", \"600\"]\n"
           "    stop_signal: SIGKILL\n" +
           extra;
  }
  std::vector<std::string> running() {
    auto r = compose({"compose", "ps", "--services"});
    std::vector<std::string> out;
    std::istringstream in(r.out);
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
  }
};

std::size_t at(const std::string& text, const std::string& line) {
  std::size_t p = text.find(line);
  EXPECT_NE(p, std::string::npos) << "no \"" << line << "\" in:\n" << text;
  return p;
}

TEST_F(ComposeParallelTest, AChainStartsInOrderAmongManyIndependentServices) {
  start_compose_project();
  std::string yaml = "name: app\nservices:\n" + service("db") + service("api", "    depends_on: [db]\n") +
                     service("web", "    depends_on: [api]\n");
  for (int i = 1; i <= 8; ++i) yaml += service("s" + std::to_string(i));
  write_app(yaml);
  auto up = compose({"up", "-d"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  EXPECT_LT(at(up.err, "Container app-db-1  Started"), at(up.err, "Container app-api-1  Starting")) << up.err;
  EXPECT_LT(at(up.err, "Container app-api-1  Started"), at(up.err, "Container app-web-1  Starting")) << up.err;
  EXPECT_EQ(running().size(), 11u) << compose({"compose", "ps", "-a"}).out;
  // Nothing changed: nothing to do, nothing printed.
  auto again = compose({"up", "-d"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.err.find("Container"), std::string::npos) << again.err;
  // down removes all eleven, in parallel.
  auto down = compose({"down", "-t", "0"});
  ASSERT_EQ(down.exit_code, 0) << down.err;
  for (const char* name : {"app-db-1", "app-web-1", "app-s8-1"})
    EXPECT_NE(down.err.find(std::string("Container ") + name + "  Removed"), std::string::npos) << down.err;
  EXPECT_EQ(compose({"compose", "ps", "-a", "-q"}).out, "");
}

TEST_F(ComposeParallelTest, AFailingServiceIsReportedAndTheOthersKeepRunning) {
  start_compose_project();
  write_app("name: app\nservices:\n" + service("good1") + service("good2") +
            service("bad", "    user: nosuchuser\n") + service("after_bad", "    depends_on: [bad]\n"));
  auto up = compose({"up", "-d"});
  EXPECT_NE(up.exit_code, 0);
  EXPECT_NE(up.err.find("Error service bad: create container app-bad-1: "), std::string::npos) << up.err;
  EXPECT_NE(up.err.find("nosuchuser"), std::string::npos) << up.err;
  EXPECT_NE(up.err.find("Error service after_bad: "), std::string::npos) << up.err;
  EXPECT_NE(up.err.find("Container app-good1-1  Started"), std::string::npos) << up.err;
  EXPECT_NE(up.err.find("Container app-good2-1  Started"), std::string::npos) << up.err;
  EXPECT_EQ(running(), (std::vector<std::string>{"good1", "good2"}));
}

TEST_F(ComposeParallelTest, ParallelLimitOneStillRunsEverything) {
  start_compose_project();
  write_app("name: app\nservices:\n" + service("a") + service("b", "    depends_on: [a]\n") + service("c"));
  auto up = run_berth(with_roots({"up", "-d"}), "", {"COMPOSE_PARALLEL_LIMIT=1"}, project_dir_);
  ASSERT_EQ(up.exit_code, 0) << up.err;
  EXPECT_EQ(running(), (std::vector<std::string>{"a", "b", "c"}));
}

// An RFC 3339 time as berth inspect prints it ("2026-12-02T03:07:39.75281208Z",
// a fraction of up to 9 digits) as a string that sorts by time: the
// fraction padded to nanoseconds.
std::string sortable_time(std::string t) {
  EXPECT_FALSE(t.empty());
  if (!t.empty() && t.back() == 'Z') t.pop_back();
  std::size_t dot = t.find('.');
  std::string whole = t.substr(0, dot), fraction = dot == std::string::npos ? "" : t.substr(dot + 1);
  fraction.resize(9, '0');
  return whole + "." + fraction;
}

// --parallel 1 (compose's global flag; it wins over COMPOSE_PARALLEL_LIMIT):
// one operation at a time, in plan order. The plan of three independent
// services is create a, start a, create b, start b, create c, start c; run
// one at a time, each container is created after the previous one started,
// which the containers' own timestamps show. (With the default limit the
// three creates run at once.)
TEST_F(ComposeParallelTest, ParallelOneRunsOneOperationAtATimeInPlanOrder) {
  start_compose_project();
  write_app("name: app\nservices:\n" + service("a") + service("b") + service("c"));
  auto plan = compose({"up", "--dry-run"});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_LT(at(plan.out, "StartContainer app-a-1"), at(plan.out, "CreateContainer app-b-1")) << plan.out;
  EXPECT_LT(at(plan.out, "StartContainer app-b-1"), at(plan.out, "CreateContainer app-c-1")) << plan.out;
  auto up = run_berth(with_roots({"compose", "--parallel", "1", "up", "-d"}), "", {"COMPOSE_PARALLEL_LIMIT=8"},
                      project_dir_);
  ASSERT_EQ(up.exit_code, 0) << up.err;
  std::vector<std::string> times;  // created a, started a, created b, ...
  for (const char* name : {"app-a-1", "app-b-1", "app-c-1"}) {
    auto r = compose({"inspect", "--format", "{{.Created}} {{.State.StartedAt}}", name});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::istringstream in(r.out);
    std::string created, started;
    in >> created >> started;
    times.push_back(sortable_time(created));
    times.push_back(sortable_time(started));
  }
  for (std::size_t i = 1; i < times.size(); ++i) EXPECT_LT(times[i - 1], times[i]) << "event " << i;
  EXPECT_EQ(running(), (std::vector<std::string>{"a", "b", "c"}));
}

// down --parallel 1 stops one container at a time: each one's TERM handler
// writes "start", waits a moment and writes "end" to a shared file, so the
// lines pair up only when no two stops overlap. (Without the flag down
// stops a level's containers all at once, as compose.)
TEST_F(ComposeParallelTest, DownWithParallelOneStopsOneContainerAtATime) {
  start_compose_project();
  std::string shared = tmp_.path() + "/shared";
  make_dirs(shared);
  std::string yaml = "name: app\nservices:\n";
  for (const char* name : {"a", "b", "c"})
    yaml += std::string("  ") + name +
            ":\n"
            "    image: busybox:latest\n"
            "    network_mode: none\n"
            "    volumes: [\"" + shared + ":/shared\"]\n"
            "    environment: {N: " + name + "}\n"
            "    command: [\"sh\", \"-c\", \"trap 'echo start-$$N >> /shared/log; sleep 0.2; echo end-$$N >> "
            "/shared/log; exit 0' TERM; while :; do sleep 0.05; done\"]\n";
  write_app(yaml);
  auto up = compose({"up", "-d"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  auto down = compose({"down", "--parallel", "1", "-t", "10"});
  ASSERT_EQ(down.exit_code, 0) << down.err;
  std::string log;
  ASSERT_TRUE(read_file_if_exists(shared + "/log", log));
  std::vector<std::string> lines;
  std::istringstream in(log);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_EQ(lines.size(), 6u) << log;
  for (std::size_t i = 0; i < lines.size(); i += 2) {
    ASSERT_EQ(lines[i].rfind("start-", 0), 0u) << log;
    EXPECT_EQ(lines[i + 1], "end-" + lines[i].substr(6)) << log;
  }
}

TEST_F(ComposeParallelTest, ParallelTakesAPositiveNumberOrMinusOne) {
  start_compose_project();
  write_app("name: app\nservices:\n" + service("a"));
  auto zero = compose({"up", "-d", "--parallel", "0"});
  EXPECT_NE(zero.exit_code, 0);
  EXPECT_NE(zero.err.find("--parallel: want a positive number, or -1 for unlimited, got \"0\""), std::string::npos)
      << zero.err;
  EXPECT_EQ(compose({"compose", "ps", "-a", "-q"}).out, "");
  auto unlimited = compose({"up", "-d", "--parallel", "-1"});
  ASSERT_EQ(unlimited.exit_code, 0) << unlimited.err;
  EXPECT_EQ(running(), (std::vector<std::string>{"a"}));
}

}  // namespace
}  // namespace berth::test
