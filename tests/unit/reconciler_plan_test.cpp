// Golden tests of the planner: each directory under tests/reconciler-golden/
// holds compose.yaml, observed.json, an optional `options` file and
// expected.txt (the rendered plan). After comparing, each case executes its
// plan against a fake world and plans again: that second plan must be empty.
// BERTH_UPDATE_GOLDEN=1 rewrites expected.txt.
//
// observed.json is ObservedState's JSON form with two conveniences for
// hand-written cases: "${HASH:svc}" anywhere in a string is the service's
// current config hash, and a container given as {"service": s, "number": n}
// gets the labels berth would have put on it (project "app"), its name
// app-s-n and id "id-app-s-n", unless the entry sets them itself.
//
// `options` lines: project=NAME, scale=SVC=N, service=SVC, no_deps,
// force_recreate, no_recreate, remove_orphans, image=SVC=DIGEST,
// down, remove_volumes, down_without_file.
#include <gtest/gtest.h>

#include <dirent.h>

#include <algorithm>
#include <sstream>

#include "base/error.h"
#include "base/fs.h"
#include "reconciler/reconciler.h"
#include "spec/spec.h"
#include "tests/support/golden.h"
#include "tests/unit/reconciler_fake_driver.h"

using namespace berth;
using namespace berth::reconciler;

namespace {

std::string golden_dir() { return std::string(BERTH_TESTS_DIR) + "/reconciler-golden"; }

std::vector<std::string> cases() {
  std::vector<std::string> out;
  if (DIR* d = opendir(golden_dir().c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name[0] != '.' && is_directory(golden_dir() + "/" + name)) out.push_back(name);
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct CaseOptions {
  std::string project = "app";
  DesiredOptions desired;
  UpOptions up;
  bool down = false;
  bool down_without_file = false;
  bool remove_volumes = false;
};

CaseOptions read_options(const std::string& dir) {
  CaseOptions o;
  std::string text;
  if (!read_file_if_exists(dir + "/options", text)) return o;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::size_t eq = line.find('=');
    std::string key = line.substr(0, eq), value = eq == std::string::npos ? "" : line.substr(eq + 1);
    auto pair = [&](std::string& first) {
      std::size_t e = value.find('=');
      first = value.substr(0, e);
      return value.substr(e + 1);
    };
    std::string svc;
    if (key == "project") o.project = value;
    else if (key == "scale") {
      std::string n = pair(svc);
      o.desired.scale[svc] = std::stoll(n);
    } else if (key == "image") {
      std::string digest = pair(svc);
      o.desired.image_ids[svc] = digest;
    }
    else if (key == "service") o.up.services.push_back(value);
    else if (key == "no_deps") o.up.no_deps = true;
    else if (key == "force_recreate") o.up.force_recreate = true;
    else if (key == "no_recreate") o.up.no_recreate = true;
    else if (key == "remove_orphans") o.up.remove_orphans = true;
    else if (key == "down") o.down = true;
    else if (key == "down_without_file") o.down = o.down_without_file = true;
    else if (key == "remove_volumes") o.remove_volumes = true;
    else ADD_FAILURE() << dir << "/options: unknown key " << key;
  }
  return o;
}

std::string substitute_hashes(std::string text, const spec::Project& project) {
  const std::string marker = "${HASH:";
  for (std::size_t pos; (pos = text.find(marker)) != std::string::npos;) {
    std::size_t end = text.find('}', pos);
    std::string service = text.substr(pos + marker.size(), end - pos - marker.size());
    text.replace(pos, end + 1 - pos, spec::service_config_hash(project, service));
  }
  return text;
}

ObservedState read_observed(const std::string& dir, const spec::Project& project, const std::string& project_name) {
  std::string text;
  if (!read_file_if_exists(dir + "/observed.json", text)) return {};
  nlohmann::json j = nlohmann::json::parse(substitute_hashes(text, project));
  for (auto& c : j["containers"]) {
    if (!c.contains("service")) continue;
    std::string service = c["service"];
    int number = c.value("number", 1);
    std::string name = project_name + "-" + service + "-" + std::to_string(number);
    if (!c.contains("name")) c["name"] = name;
    if (!c.contains("id")) c["id"] = "id-" + c["name"].get<std::string>();
    nlohmann::json labels = {{label::project, project_name},
                             {label::service, service},
                             {label::container_number, std::to_string(number)},
                             {label::oneoff, "False"}};
    if (project.services.count(service)) labels[label::config_hash] = spec::service_config_hash(project, service);
    if (c.contains("labels"))
      for (auto& [k, v] : c["labels"].items()) labels[k] = v;
    c["labels"] = labels;
    c.erase("service");
    c.erase("number");
  }
  return observed_from_json(j);
}

class ReconcilerGolden : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(ReconcilerGolden, PlanMatchesAndSecondPlanIsEmpty) {
  std::string dir = golden_dir() + "/" + GetParam();
  CaseOptions o = read_options(dir);
  spec::LoadOptions load;
  load.working_directory = dir;
  load.project_name = o.project;
  spec::Project project;
  ASSERT_NO_THROW(project = spec::load_project(load));
  ObservedState observed = read_observed(dir, project, o.project);
  DesiredState desired = desired_state(project, o.desired);

  DownOptions down{o.project, std::nullopt, o.remove_volumes, o.up.remove_orphans};
  if (!o.down_without_file) {
    down.services.emplace();
    for (const auto& [name, _] : project.services) down.services->insert(name);
  }
  Plan first = o.down ? plan_down(observed, down) : plan(desired, observed, o.up);
  test::compare_or_update_golden(dir + "/expected.txt", render(first));
  // Planning is deterministic.
  EXPECT_EQ(first, o.down ? plan_down(observed, down) : plan(desired, observed, o.up));

  fake::FakeDriver driver;
  driver.world = observed;
  ExecutionResult result = run_plan(first, driver);
  EXPECT_TRUE(result.ok()) << result.errors.front();
  UpOptions again = o.up;
  again.force_recreate = false;  // forcing always recreates; the fixed point is the unforced plan
  Plan second = o.down ? plan_down(driver.world, down) : plan(desired, driver.world, again);
  EXPECT_TRUE(second.empty()) << "second plan against the executed world:\n" << render(second);
}

INSTANTIATE_TEST_SUITE_P(Cases, ReconcilerGolden, ::testing::ValuesIn(cases()));

// ------------------------------------------------------------------ rules not covered by a golden case

namespace {

using fake::load;

const char* kWebDb = R"(
services:
  web:
    image: busybox
    labels: {team: blue}
    depends_on:
      db: {condition: service_healthy, restart: true}
    volumes: [data:/data]
  db:
    image: busybox
networks:
  back: {}
volumes:
  data: {}
  shared: {external: true}
)";

}  // namespace

TEST(ReconcilerDesired, NamesAndLabelsMirrorCompose) {
  spec::Project p = load(kWebDb);
  DesiredOptions options;
  options.scale = {{"web", 2}};
  options.image_ids = {{"web", "sha256:abc"}};
  DesiredState d = desired_state(p, options);
  ASSERT_EQ(d.services.at("web").containers.size(), 2u);
  const ContainerSpec& web2 = d.services.at("web").containers[1];
  EXPECT_EQ(web2.name, "app-web-2");
  EXPECT_EQ(web2.labels.at(label::project), "app");
  EXPECT_EQ(web2.labels.at(label::service), "web");
  EXPECT_EQ(web2.labels.at(label::container_number), "2");
  EXPECT_EQ(web2.labels.at(label::config_hash), spec::service_config_hash(p, "web"));
  EXPECT_EQ(web2.labels.at(label::image), "sha256:abc");
  EXPECT_EQ(web2.labels.at(label::oneoff), "False");
  EXPECT_EQ(web2.labels.at(label::depends_on), "db:service_healthy:true");
  EXPECT_EQ(web2.labels.at("team"), "blue");
  EXPECT_EQ(web2.networks, std::vector<std::string>{"app_default"});
  EXPECT_EQ(web2.volumes, std::vector<std::string>{"app_data"});
  EXPECT_FALSE(d.services.at("db").containers[0].labels.count(label::image));  // digest not known
  EXPECT_EQ(d.networks.at("back").name, "app_back");
  EXPECT_EQ(d.networks.at("back").labels.at(label::network), "back");
  EXPECT_EQ(d.volumes.at("data").labels.at(label::volume), "data");
  EXPECT_TRUE(d.volumes.at("shared").external);
  EXPECT_FALSE(d.volumes.at("shared").labels.count(label::project));  // not ours
}

TEST(ReconcilerDesired, RejectsBadScale) {
  spec::Project p = load(kWebDb);
  auto scaled = [](const std::string& service, std::int64_t n) {
    DesiredOptions o;
    o.scale[service] = n;
    return o;
  };
  EXPECT_THROW(desired_state(p, scaled("nope", 1)), Error);
  EXPECT_THROW(desired_state(p, scaled("web", -1)), Error);
  spec::Project named = load("services:\n  web:\n    image: busybox\n    container_name: fixed\n");
  EXPECT_THROW(desired_state(named, scaled("web", 2)), Error);
  EXPECT_EQ(desired_state(named).services.at("web").containers[0].name, "fixed");
}

TEST(ReconcilerPlan, RejectsContradictoryOptionsAndUnknownServices) {
  DesiredState d = desired_state(load(kWebDb));
  UpOptions both;
  both.force_recreate = both.no_recreate = true;
  EXPECT_THROW(plan(d, {}, both), Error);
  EXPECT_THROW(plan(d, {}, {.services = {"nope"}}), Error);
}

TEST(ReconcilerPlan, SelectedServicePullsInDependenciesUnlessNoDeps) {
  DesiredState d = desired_state(load(kWebDb));
  Plan with_deps = plan(d, {}, {.services = {"web"}});
  Plan without = plan(d, {}, {.no_deps = true, .services = {"web"}});
  auto mentions = [](const Plan& p, const std::string& resource) {
    return std::any_of(p.operations.begin(), p.operations.end(),
                       [&](const Operation& op) { return op.resource == resource; });
  };
  EXPECT_TRUE(mentions(with_deps, "service:db:1"));
  EXPECT_FALSE(mentions(without, "service:db:1"));
  EXPECT_TRUE(mentions(without, "service:web:1"));
  // Only the selected services' networks and volumes: "back" is unused.
  EXPECT_FALSE(mentions(with_deps, "network:back"));
  EXPECT_TRUE(mentions(plan(d, {}), "network:back"));
  // With --no-deps, web does not wait for a db that is not part of the plan.
  for (const auto& op : without.operations) EXPECT_TRUE(op.waits.empty()) << render(op);
}

TEST(ReconcilerPlan, ExactNameWinsAmongContainersClaimingTheSameNumber) {
  DesiredState d = desired_state(load("services:\n  web:\n    image: busybox\n"));
  const std::string hash = d.services.at("web").config_hash;
  auto container = [&](const std::string& name, const std::string& id) {
    ObservedContainer c;
    c.id = id;
    c.name = name;
    c.state = ContainerState::running;
    c.labels = {{label::project, "app"}, {label::service, "web"}, {label::container_number, "1"},
                {label::config_hash, hash}};
    return c;
  };
  ObservedState o;
  o.networks.push_back({"n", "app_default", {{label::project, "app"}, {label::network, "default"}}});
  o.containers = {container("zz_app-web-1", "b"), container("app-web-1", "a")};
  EXPECT_EQ(render(plan(d, o)),
            "[] -> #1 service:web:1, StopContainer zz_app-web-1, duplicate container number\n"
            "[1] -> #2 service:web:1, RemoveContainer zz_app-web-1, duplicate container number\n");
}

TEST(ReconcilerObserved, JsonRoundTripsAndRejectsUnknownStates) {
  ObservedState o;
  ObservedContainer c;
  c.id = "x";
  c.name = "app-web-1";
  c.labels = {{label::service, "web"}, {label::container_number, "3"}};
  c.state = ContainerState::exited;
  c.exit_code = 137;
  c.health = Health::unhealthy;
  c.image_id = "sha256:1";
  o.containers.push_back(c);
  o.networks.push_back({"n1", "app_default", {{label::network, "default"}}});
  o.volumes.push_back({"app_data", {{label::volume, "data"}}});
  EXPECT_EQ(observed_from_json(to_json(o)), o);
  EXPECT_EQ(c.number(), 3);
  EXPECT_EQ(c.service(), "web");
  EXPECT_FALSE(c.is_up());
  EXPECT_THROW(observed_from_json(nlohmann::json::parse(R"({"containers":[{"state":"zombie"}]})")), Error);
}

TEST(ReconcilerPlan, AnUnknownImageDigestIsNotAChange) {
  DesiredOptions known;
  known.image_ids["web"] = "sha256:new";
  DesiredState d = desired_state(load("services:\n  web:\n    image: busybox\n"), known);
  ObservedContainer c;
  c.id = "c1";
  c.name = "app-web-1";
  c.state = ContainerState::running;
  c.labels = {{label::project, "app"}, {label::service, "web"}, {label::container_number, "1"},
              {label::config_hash, d.services.at("web").config_hash}};
  ObservedState o;
  o.networks.push_back({"n", "app_default", {{label::project, "app"}, {label::network, "default"}}});
  o.containers.push_back(c);
  EXPECT_TRUE(plan(d, o).empty()) << render(plan(d, o));
  o.containers[0].image_id = "sha256:old";  // the runtime knows what it runs
  EXPECT_EQ(render(plan(d, o)).find("image changed") != std::string::npos, true) << render(plan(d, o));
}
