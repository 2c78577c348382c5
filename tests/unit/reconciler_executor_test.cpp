// The executor against a fake Driver: dependency order, bounded
// parallelism, failure propagation, depends_on waits and progress events.
#include <gtest/gtest.h>

#include <algorithm>

#include "reconciler/reconciler.h"
#include "spec/spec.h"
#include "tests/unit/reconciler_fake_driver.h"

using namespace berth;
using namespace berth::reconciler;
using berth::reconciler::fake::FakeDriver;

namespace {

using fake::load;

// db <- api <- web (service_healthy on db), and an independent `other`.
const char* kChain = R"(
services:
  db:
    image: busybox
  api:
    image: busybox
    depends_on:
      db: {condition: service_healthy}
  web:
    image: busybox
    depends_on: [api]
  other:
    image: busybox
    deploy: {replicas: 3}
)";

std::size_t position(const std::vector<std::string>& calls, const std::string& call) {
  auto it = std::find(calls.begin(), calls.end(), call);
  EXPECT_NE(it, calls.end()) << "missing call " << call;
  return static_cast<std::size_t>(it - calls.begin());
}

}  // namespace

TEST(ReconcilerExecutor, RunsEveryOperationInDependencyOrder) {
  Plan p = plan(desired_state(load(kChain)), {});
  FakeDriver driver;
  ExecutionResult r = run_plan(p, driver);
  ASSERT_TRUE(r.ok()) << r.errors.front();
  EXPECT_TRUE(std::all_of(r.status.begin(), r.status.end(), [](OpStatus s) { return s == OpStatus::done; }));
  const auto& c = driver.calls;
  EXPECT_LT(position(c, "create_network app_default"), position(c, "create_container app-db-1"));
  EXPECT_LT(position(c, "create_container app-db-1"), position(c, "start_container app-db-1"));
  EXPECT_LT(position(c, "start_container app-db-1"), position(c, "wait_condition db service_healthy"));
  EXPECT_LT(position(c, "wait_condition db service_healthy"), position(c, "start_container app-api-1"));
  EXPECT_LT(position(c, "start_container app-api-1"), position(c, "start_container app-web-1"));
  EXPECT_EQ(driver.world.containers.size(), 6u);
}

TEST(ReconcilerExecutor, HonoursTheParallelismBoundAndStillRespectsOrder) {
  Plan p = plan(desired_state(load(kChain)), {});
  for (std::size_t limit : {1u, 2u, 3u}) {
    FakeDriver driver;
    driver.defer = true;
    ExecutorOptions options;
    options.max_parallel = limit;
    Executor executor(p, driver, options);
    executor.start();
    std::size_t most_in_flight = executor.in_flight();
    while (driver.complete_next()) {
      most_in_flight = std::max(most_in_flight, executor.in_flight());
    }
    ASSERT_TRUE(executor.finished());
    EXPECT_TRUE(executor.result().ok());
    EXPECT_LE(driver.max_pending, limit);
    EXPECT_LE(most_in_flight, limit);
    // With more than one slot, independent work really overlaps.
    if (limit > 1) {
      EXPECT_GT(driver.max_pending, 1u);
    }
    EXPECT_LT(position(driver.calls, "start_container app-api-1"), position(driver.calls, "start_container app-web-1"));
  }
}

TEST(ReconcilerExecutor, AFailureSkipsItsDependentsButNotIndependentBranches) {
  Plan p = plan(desired_state(load(kChain)), {});
  FakeDriver driver;
  driver.fail.insert("create_container app-db-1");
  ExecutorOptions two;
  two.max_parallel = 2;
  ExecutionResult r = run_plan(p, driver, two);
  ASSERT_FALSE(r.ok());
  // The independent service came up completely.
  for (int n = 1; n <= 3; ++n) position(driver.calls, "start_container app-other-" + std::to_string(n));
  // Nothing that depends on db started. (Creating them does not depend on
  // db: creates run in parallel, starts wait for their dependencies.)
  for (const auto& call : driver.calls) {
    EXPECT_NE(call, "start_container app-api-1");
    EXPECT_NE(call, "start_container app-web-1");
  }
  auto has = [&](const std::string& text) {
    return std::any_of(r.errors.begin(), r.errors.end(), [&](const std::string& e) { return e.find(text) != std::string::npos; });
  };
  EXPECT_TRUE(has("service db: create container app-db-1: create_container app-db-1 failed (fake)"));
  EXPECT_TRUE(has("service api: start container app-api-1 skipped: dependency service:db:1"));
  EXPECT_TRUE(has("service web: start container app-web-1 skipped: dependency service:api:1"));
  std::size_t failed = std::count(r.status.begin(), r.status.end(), OpStatus::failed);
  EXPECT_EQ(failed, 1u);
}

TEST(ReconcilerExecutor, RequiredFalseToleratesAFailedDependency) {
  Plan p = plan(desired_state(load(R"(
services:
  cache:
    image: busybox
  web:
    image: busybox
    depends_on:
      cache: {condition: service_healthy, required: false}
)")),
                {});
  FakeDriver driver;
  driver.fail = {"start_container app-cache-1", "wait_condition cache service_healthy"};
  std::vector<std::string> events;
  ExecutionResult r = run_plan(p, driver, {.on_event = [&](const Event& e) { events.push_back(e.str()); }});
  position(driver.calls, "start_container app-web-1");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].find("service cache: start container app-cache-1"), std::string::npos) << r.errors[0];
  EXPECT_NE(std::find_if(events.begin(), events.end(),
                         [](const std::string& e) { return e.rfind("Container app-web-1  Warning dependency cache", 0) == 0; }),
            events.end());
}

TEST(ReconcilerExecutor, AFailedRequiredWaitFailsTheStart) {
  Plan p = plan(desired_state(load(kChain)), {}, {.services = {"api"}});
  FakeDriver driver;
  driver.fail.insert("wait_condition db service_healthy");
  ExecutionResult r = run_plan(p, driver);
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0],
            "service api: start container app-api-1: dependency db did not reach service_healthy: "
            "wait_condition db service_healthy failed (fake)");
}

TEST(ReconcilerExecutor, EmitsComposeStyleProgress) {
  Plan p = plan(desired_state(load(kChain)), {}, {.services = {"api"}});
  FakeDriver driver;
  std::vector<std::string> events;
  run_plan(p, driver, {.max_parallel = 1, .on_event = [&](const Event& e) { events.push_back(e.str()); }});
  std::vector<std::string> expected = {
      "Network app_default  Creating", "Network app_default  Created",  "Container app-db-1  Creating",
      "Container app-db-1  Created",   "Container app-db-1  Starting",  "Container app-db-1  Started",
      "Container app-api-1  Creating", "Container app-api-1  Created",  "Container app-db-1  Waiting",
      "Container app-db-1  Healthy",   "Container app-api-1  Starting", "Container app-api-1  Started",
  };
  EXPECT_EQ(events, expected);
}

TEST(ReconcilerExecutor, RecreateAndDownDriveTheWorldToTheirFixedPoints) {
  spec::Project p = load(kChain);
  FakeDriver driver;
  ASSERT_TRUE(run_plan(plan(desired_state(p), {}), driver).ok());
  // Change db: db and (no restart: true) nobody else is recreated.
  p.services.at("db").environment["X"] = "1";
  Plan changed = plan(desired_state(p), driver.world);
  std::set<std::string> touched;
  for (const auto& op : changed.operations) touched.insert(op.resource);
  EXPECT_EQ(touched, std::set<std::string>{"service:db:1"});
  ASSERT_TRUE(run_plan(changed, driver).ok());
  EXPECT_TRUE(plan(desired_state(p), driver.world).empty());
  // Down removes everything of the project.
  DownOptions everything;
  everything.project = "app";
  Plan down = plan_down(driver.world, everything);
  driver.calls.clear();
  ASSERT_TRUE(run_plan(down, driver).ok());
  EXPECT_TRUE(driver.world.containers.empty());
  EXPECT_TRUE(driver.world.networks.empty());
  // Stopping goes dependents first: web before api before db.
  EXPECT_LT(position(driver.calls, "stop_container app-web-1"), position(driver.calls, "stop_container app-api-1"));
  EXPECT_LT(position(driver.calls, "stop_container app-api-1"), position(driver.calls, "stop_container app-db-1"));
}

TEST(ReconcilerExecutor, AStalledDriverIsAnErrorNotAHang) {
  Plan p = plan(desired_state(load(kChain)), {});
  FakeDriver driver;
  driver.defer = true;
  EXPECT_THROW(run_plan(p, driver), Error);
}

TEST(ReconcilerExecutor, RunsHandBuiltRenamesThroughTheDriver) {
  // `plan` does not emit renames yet; a caller-built plan may.
  Operation rename;
  rename.id = 1;
  rename.kind = OpKind::RenameContainer;
  rename.resource = "service:web:1";
  rename.cause = "test";
  rename.service = "web";
  rename.name = "app-web-1";
  rename.container_id = "c1";
  rename.new_name = "c1_app-web-1";
  Plan p;
  p.operations.push_back(rename);
  EXPECT_EQ(render(p), "[] -> #1 service:web:1, RenameContainer app-web-1 to c1_app-web-1, test\n");
  FakeDriver driver;
  ObservedContainer c;
  c.id = "c1";
  c.name = "app-web-1";
  driver.world.containers.push_back(c);
  std::vector<std::string> events;
  ExecutorOptions options;
  options.on_event = [&](const Event& e) { events.push_back(e.str()); };
  ASSERT_TRUE(run_plan(p, driver, options).ok());
  EXPECT_EQ(driver.world.containers.at(0).name, "c1_app-web-1");
  EXPECT_EQ(events, (std::vector<std::string>{"Container app-web-1  Renaming", "Container app-web-1  Renamed"}));
}

TEST(ReconcilerExecutor, CompletionsOutOfOrderKeepTheDependencyOrder) {
  Plan p = plan(desired_state(load(kChain)), {});
  FakeDriver driver;
  driver.defer = true;
  ExecutorOptions options;
  options.max_parallel = 3;
  Executor executor(p, driver, options);
  executor.start();
  while (driver.complete_next(/*newest_first=*/true)) {
  }
  ASSERT_TRUE(executor.finished());
  EXPECT_TRUE(executor.result().ok());
  EXPECT_LE(driver.max_pending, 3u);
  const auto& c = driver.calls;
  EXPECT_LT(position(c, "create_container app-db-1"), position(c, "start_container app-db-1"));
  EXPECT_LT(position(c, "start_container app-db-1"), position(c, "start_container app-api-1"));
  EXPECT_LT(position(c, "start_container app-api-1"), position(c, "start_container app-web-1"));
  EXPECT_TRUE(plan(desired_state(load(kChain)), driver.world).empty());
}

TEST(ReconcilerExecutor, OrderedEventsAreThoseOfAOneAtATimeRun) {
  Plan p = plan(desired_state(load(kChain)), {});
  std::vector<std::string> serial, overlapped;
  FakeDriver one;
  ASSERT_TRUE(run_plan(p, one, {.max_parallel = 1, .on_event = [&](const Event& e) { serial.push_back(e.str()); }}).ok());
  FakeDriver many;
  many.defer = true;
  ExecutorOptions o;
  o.max_parallel = 4;
  o.ordered_events = true;
  o.on_event = [&](const Event& e) { overlapped.push_back(e.str()); };
  Executor executor(p, many, o);
  executor.start();
  // Completions come newest first: without ordering, the events would too.
  while (!executor.finished()) ASSERT_TRUE(many.complete_next(true));
  EXPECT_GT(many.max_pending, 1u);
  EXPECT_EQ(overlapped, serial);
}
