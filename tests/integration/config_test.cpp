// `berth config` driven through the real binary.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/run.h"

using berth::test::run_berth;
using berth::test::TempDir;

namespace {

const char* kStack = R"(name: demo
services:
  web:
    image: nginx:${TAG:-1.25}
    ports: ["8080:80"]
    depends_on: [app]
  app:
    image: example/app
    depends_on: [db]
    volumes: [data:/data]
  db:
    image: postgres:16
    isolation: process
  debug:
    image: busybox
    profiles: [debug]
volumes:
  data: {}
)";

std::vector<std::string> lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST(Config, PrintsTheNormalizedProject) {
  TempDir dir;
  dir.write("compose.yaml", kStack);
  auto r = run_berth({"config"}, "", {"TAG=1.27"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out.rfind("name: demo\nservices:\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("image: nginx:1.27"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("published: \"8080\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("name: demo_data"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("debug:"), std::string::npos) << "profiled service shown without --profile";
}

TEST(Config, WarningsGoToStderrWithLocation) {
  TempDir dir;
  dir.write("compose.yaml", kStack);
  auto r = run_berth({"config", "-q"}, "", {}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find(dir.path() + "/compose.yaml:13:5: services.db.isolation: not supported by berth on Linux"),
            std::string::npos)
      << r.err;
}

TEST(Config, QuietReportsEveryErrorOnItsOwnLocatedLine) {
  TempDir dir;
  dir.write("compose.yaml", "services:\n  web:\n    imgae: nginx\n  db:\n    image: x\n    ports: ['99999']\n");
  auto r = run_berth({"config", "-q"}, "", {}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  auto err = lines(r.err);
  ASSERT_EQ(err.size(), 2u) << r.err;
  EXPECT_EQ(err[0], dir.path() + "/compose.yaml:3:5: services.web: unknown key \"imgae\" (did you mean \"image\"?)");
  EXPECT_EQ(err[1].rfind(dir.path() + "/compose.yaml:6:13: services.db.ports[0]: invalid port \"99999\"", 0), 0u) << err[1];
}

TEST(Config, JsonFormat) {
  TempDir dir;
  dir.write("compose.yaml", kStack);
  auto r = run_berth({"config", "--format", "json"}, "", {}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["name"], "demo");
  EXPECT_EQ(j["services"]["web"]["ports"][0]["target"], 80);
  EXPECT_EQ(j["services"]["app"]["depends_on"]["db"]["condition"], "service_started");
  auto bad = run_berth({"config", "--format", "toml"}, "", {}, dir.path());
  EXPECT_EQ(bad.exit_code, 125);
}

TEST(Config, ListingFlags) {
  TempDir dir;
  dir.write("compose.yaml", kStack);
  EXPECT_EQ(run_berth({"config", "--services"}, "", {}, dir.path()).out, "db\napp\nweb\n");
  EXPECT_EQ(run_berth({"config", "--services", "--profile", "debug"}, "", {}, dir.path()).out, "db\napp\ndebug\nweb\n");
  EXPECT_EQ(run_berth({"config", "--volumes"}, "", {}, dir.path()).out, "data\n");
  EXPECT_EQ(run_berth({"config", "--networks"}, "", {}, dir.path()).out, "default\n");
  EXPECT_EQ(run_berth({"config", "--profiles"}, "", {}, dir.path()).out, "debug\n");
}

TEST(Config, HashLines) {
  TempDir dir;
  dir.write("compose.yaml", kStack);
  auto all = run_berth({"config", "--hash", "*"}, "", {}, dir.path());
  ASSERT_EQ(all.exit_code, 0) << all.err;
  auto l = lines(all.out);
  ASSERT_EQ(l.size(), 3u) << all.out;
  EXPECT_EQ(l[0].rfind("app ", 0), 0u);
  EXPECT_EQ(l[0].size(), 4u + 64u);
  auto one = run_berth({"config", "--hash", "web"}, "", {}, dir.path());
  EXPECT_EQ(one.out, l[2] + "\n");
  auto changed = run_berth({"config", "--hash", "web"}, "", {"TAG=2"}, dir.path());
  EXPECT_NE(changed.out, one.out);
  EXPECT_EQ(run_berth({"config", "--hash", "app"}, "", {"TAG=2"}, dir.path()).out, l[0] + "\n");
  EXPECT_EQ(run_berth({"config", "--hash", "ghost"}, "", {}, dir.path()).exit_code, 1);
}

TEST(Config, FilesProjectNameDirectoryAndEnvFile) {
  TempDir dir;
  dir.write("a/base.yaml", "services:\n  web: {image: 'nginx:${TAG}', ports: ['80:80']}\n");
  dir.write("a/prod.yaml", "services:\n  web: {ports: ['443:443']}\n");
  dir.write("a/prod.env", "TAG=prod\n");
  auto bad = run_berth({"config", "-f", "a/base.yaml", "-p", "Shop", "--env-file", "a/prod.env"}, "", {}, dir.path());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("invalid project name \"Shop\" (-p)"), std::string::npos) << bad.err;
  auto r = run_berth({"config", "--format", "json", "-f", "a/base.yaml", "-f", "a/prod.yaml", "-p", "shop",
                      "--env-file", "a/prod.env"},
                     "", {}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["name"], "shop");
  EXPECT_EQ(j["services"]["web"]["image"], "nginx:prod");
  EXPECT_EQ(j["services"]["web"]["ports"].size(), 2u);

  dir.write("proj/compose.yaml", "services:\n  web: {image: x, volumes: ['./html:/html']}\n");
  auto d = run_berth({"config", "--format", "json", "--project-directory", "proj"}, "", {}, dir.path());
  ASSERT_EQ(d.exit_code, 0) << d.err;
  auto dj = nlohmann::json::parse(d.out);
  EXPECT_EQ(dj["name"], "proj");
  EXPECT_EQ(dj["services"]["web"]["volumes"][0]["source"], dir.path() + "/proj/html");
}

TEST(Config, NoComposeFileIsAnError) {
  TempDir dir;
  auto r = run_berth({"config", "--project-directory", dir.path()}, "", {}, dir.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no configuration file provided"), std::string::npos) << r.err;
}

TEST(Config, OutputLoadsBackToTheSameOutput) {
  TempDir dir;
  dir.write("compose.yaml", kStack);
  auto first = run_berth({"config"}, "", {}, dir.path());
  ASSERT_EQ(first.exit_code, 0) << first.err;
  dir.write("again/compose.yaml", first.out);
  auto second = run_berth({"config", "-p", "demo"}, "", {}, dir.path() + "/again");
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_EQ(second.out, first.out);
}
