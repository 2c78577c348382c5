// `berth up` runs independent operations at once (each in its own
// process, COMPOSE_PARALLEL_LIMIT at a time): a dependency chain still
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

}  // namespace
}  // namespace berth::test
