// `berth up --dry-run` / `down --dry-run` through the real binary. Each
// test has empty roots of its own, so the plans here are those of a first
// `up` and of a `down` with nothing to remove.
#include <gtest/gtest.h>
#include <unistd.h>

#include "tests/support/run.h"

using berth::test::run_berth;
using berth::test::TempDir;

namespace {

// berth with roots of the test's own under `roots`, never the host's.
berth::test::Result berth_in(const TempDir& roots, const std::vector<std::string>& args, const std::string& cwd = {}) {
  return run_berth(args, "", {"BERTH_ROOT=" + roots.path() + "/.root", "BERTH_RUN_ROOT=" + roots.path() + "/.run"},
                   cwd);
}

const char* kApp = R"(name: shop
services:
  web:
    image: busybox
    depends_on:
      db: {condition: service_healthy}
  db:
    image: busybox
    volumes: [data:/data]
  debug:
    image: busybox
    profiles: [debug]
volumes:
  data: {}
)";

}  // namespace

TEST(ComposeDryRun, UpPrintsThePlanOfAFirstUp) {
  TempDir dir;
  dir.write("compose.yaml", kApp);
  auto r = berth_in(dir, {"up", "--dry-run"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "[] -> #1 network:default, CreateNetwork shop_default, no existing network\n"
            "[] -> #2 volume:data, CreateVolume shop_data, no existing volume\n"
            "[1,2] -> #3 service:db:1, CreateContainer shop-db-1, no existing container\n"
            "[3] -> #4 service:db:1, StartContainer shop-db-1, no existing container\n"
            "[1] -> #5 service:web:1, CreateContainer shop-web-1, no existing container\n"
            "[4,5] -> #6 service:web:1, StartContainer shop-web-1, no existing container"
            " (waits for db:service_healthy)\n");
  EXPECT_NE(::access((dir.path() + "/.run/berth.pid").c_str(), F_OK), 0) << "a dry run started a berth serve";
}

TEST(ComposeDryRun, UpTakesProjectFlagsScaleAndServices) {
  TempDir dir;
  std::string file = dir.write("sub/app.yaml", kApp);
  auto r = berth_in(dir, {"up", "--dry-run", "-f", file, "-p", "other", "--scale", "web=2", "--no-deps", "web"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "[] -> #1 network:default, CreateNetwork other_default, no existing network\n"
            "[1] -> #2 service:web:1, CreateContainer other-web-1, no existing container\n"
            "[2] -> #3 service:web:1, StartContainer other-web-1, no existing container\n"
            "[1] -> #4 service:web:2, CreateContainer other-web-2, no existing container\n"
            "[4] -> #5 service:web:2, StartContainer other-web-2, no existing container\n");
}

TEST(ComposeDryRun, BadInputIsAClearError) {
  TempDir dir;
  dir.write("compose.yaml", kApp);
  auto scale = berth_in(dir, {"up", "--dry-run", "--scale", "nope=2"}, dir.path());
  EXPECT_EQ(scale.exit_code, 1);
  EXPECT_NE(scale.err.find("--scale: no such service: nope"), std::string::npos) << scale.err;
  auto both = berth_in(dir, {"up", "--dry-run", "--force-recreate", "--no-recreate"}, dir.path());
  EXPECT_EQ(both.exit_code, 125) << both.err;
  auto service = berth_in(dir, {"up", "--dry-run", "nope"}, dir.path());
  EXPECT_NE(service.exit_code, 0);
  TempDir broken;
  broken.write("compose.yaml", "services:\n  web: {}\n");
  auto invalid = berth_in(broken, {"up", "--dry-run"}, broken.path());
  EXPECT_EQ(invalid.exit_code, 1);
  EXPECT_NE(invalid.err.find("has neither an image nor a build context"), std::string::npos) << invalid.err;
}

TEST(ComposeDryRun, DownOfAnEmptyWorldPlansNothing) {
  TempDir dir;
  dir.write("compose.yaml", kApp);
  auto r = berth_in(dir, {"down", "--dry-run", "-v", "--remove-orphans"}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}
