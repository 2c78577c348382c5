// compose and the registry: `up` pulls the images a project lacks (by each
// service's pull_policy, or `up --pull`), `compose pull` / `berth pull` in a
// project, and `compose push`, against a real docker-registry on 127.0.0.1.
// The registry's access log says what was transferred. network_mode: none
// throughout, so no bridge or nft state is involved.
#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/integration/container_fixture.h"
#include "tests/support/busybox.h"
#include "tests/support/registry.h"

namespace berth::test {
namespace {

// Lines of the registry's access log with this method and path part.
int requests(const RegistryServer& registry, const std::string& method, const std::string& what) {
  std::istringstream in(registry.log());
  int n = 0;
  for (std::string line; std::getline(in, line);)
    if (line.find("\"" + method + " /v2/") != std::string::npos && line.find(what) != std::string::npos) ++n;
  return n;
}

class RegistryComposeTest : public ContainerTest {
 protected:
  void SetUp() override {
    ContainerTest::SetUp();
    if (IsSkipped()) return;
    if (!have_docker_registry()) GTEST_SKIP() << "docker-registry is not installed (apt-get install docker-registry)";
    registry_ = std::make_unique<RegistryServer>();
    ref_ = registry_->address() + "/berth/app:1";
    project_dir_ = tmp_.path() + "/app";
    make_dirs(project_dir_);
  }
  void TearDown() override {
    if (!project_dir_.empty() && !root_.empty()) compose({"down", "-t", "0"});
    ContainerTest::TearDown();
  }
  // busybox imported as ref into a root of its own; returns that root.
  std::string source_root(const std::string& ref) {
    std::string root = tmp_.path() + "/source";
    std::string tar = tmp_.path() + "/busybox.tar";
    if (!path_exists(tar)) make_busybox_tar(tar);
    Result r = run_berth({"--root", root, "import", tar, ref});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return root;
  }
  // ref in the registry (pushed from the source root).
  void publish(const std::string& ref) {
    Result push = run_berth({"--root", source_root(ref), "push", ref});
    ASSERT_EQ(push.exit_code, 0) << push.out << push.err;
  }
  std::string app(const std::string& image, const std::string& extra = {}) {
    return "name: app\nservices:\n  web:\n    image: " + image +
           "\n    network_mode: none\n    command: [\"sleep\", \"600\"]\n    stop_signal: SIGKILL\n" + extra;
  }
  bool have_image(const std::string& ref) { return berth({"image", "inspect", ref}).exit_code == 0; }

  std::unique_ptr<RegistryServer> registry_;
  std::string ref_;
};

TEST_F(RegistryComposeTest, UpPullsAMissingImageOnceAndASecondUpTransfersNothing) {
  publish(ref_);
  int pushed_gets = requests(*registry_, "GET", "/blobs/");
  write_app(app(ref_));
  ASSERT_FALSE(have_image(ref_));
  Result up = compose({"up", "-d"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  EXPECT_NE(up.err.find("web Pulling"), std::string::npos) << up.err;
  EXPECT_NE(up.err.find(" Pull complete"), std::string::npos) << up.err;
  EXPECT_NE(up.err.find("web Pulled"), std::string::npos) << up.err;
  EXPECT_NE(up.err.find("Container app-web-1  Started"), std::string::npos) << up.err;
  EXPECT_TRUE(have_image(ref_));
  EXPECT_EQ(requests(*registry_, "GET", "/blobs/") - pushed_gets, 2) << registry_->log();  // config + one layer
  int manifests = requests(*registry_, "GET", "/manifests/");

  // The image is there now (pull_policy missing, the default): no request at all.
  Result again = compose({"up", "-d"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.err.find("Pulling"), std::string::npos) << again.err;
  EXPECT_EQ(requests(*registry_, "GET", "/blobs/") - pushed_gets, 2) << registry_->log();
  EXPECT_EQ(requests(*registry_, "GET", "/manifests/"), manifests) << registry_->log();
}

TEST_F(RegistryComposeTest, PullPolicyNeverWithAMissingImageFailsClearlyAndAsksNothing) {
  publish(ref_);
  write_app(app(ref_, "    pull_policy: never\n"));
  Result up = compose({"up", "-d"});
  EXPECT_NE(up.exit_code, 0);
  EXPECT_NE(up.err.find("Error service web: Unable to find image '" + ref_ + "' locally, and its pull_policy is never"), std::string::npos)
      << up.err;
  EXPECT_EQ(requests(*registry_, "GET", "/manifests/"), 0) << registry_->log();
  EXPECT_FALSE(have_image(ref_));
  EXPECT_EQ(compose({"compose", "ps", "-a", "-q"}).out, "");

  // `up --pull missing` overrides the service's policy.
  Result pulled = compose({"up", "-d", "--pull", "missing"});
  ASSERT_EQ(pulled.exit_code, 0) << pulled.err;
  EXPECT_TRUE(have_image(ref_));
}

TEST_F(RegistryComposeTest, PullPolicyAlwaysRechecksTheManifestButFetchesNoStoredBlob) {
  publish(ref_);
  write_app(app(ref_, "    pull_policy: always\n"));
  Result up = compose({"up", "-d"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  int manifests = requests(*registry_, "GET", "/manifests/"), blobs = requests(*registry_, "GET", "/blobs/");
  Result again = compose({"up", "-d"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("web Pulled"), std::string::npos) << again.err;
  EXPECT_NE(again.err.find("Already exists"), std::string::npos) << again.err;
  EXPECT_EQ(requests(*registry_, "GET", "/manifests/"), manifests + 1) << registry_->log();
  EXPECT_EQ(requests(*registry_, "GET", "/blobs/"), blobs) << registry_->log();
  // --pull never wins over the policy: no request.
  Result never = compose({"up", "-d", "--pull", "never"});
  ASSERT_EQ(never.exit_code, 0) << never.err;
  EXPECT_EQ(requests(*registry_, "GET", "/manifests/"), manifests + 1) << registry_->log();
}

TEST_F(RegistryComposeTest, RefreshPolicyPullsOnlyWhenTheImageIsOlderThanItsInterval) {
  publish(ref_);
  write_app(app(ref_, "    pull_policy: every_2h30m\n"));
  ASSERT_EQ(compose({"up", "-d"}).exit_code, 0);
  int manifests = requests(*registry_, "GET", "/manifests/");
  ASSERT_EQ(manifests, 1) << registry_->log();
  // Tagged just now: younger than the interval.
  ASSERT_EQ(compose({"up", "-d"}).exit_code, 0);
  EXPECT_EQ(requests(*registry_, "GET", "/manifests/"), manifests) << registry_->log();
  // every_1s: older than that by now.
  ::sleep(2);
  write_app(app(ref_, "    pull_policy: every_1s\n"));
  Result up = compose({"up", "-d"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  EXPECT_EQ(requests(*registry_, "GET", "/manifests/"), manifests + 1) << registry_->log();
  write_app(app(ref_, "    pull_policy: every_5x\n"));
  Result bad = compose({"up", "-d"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("pull_policy"), std::string::npos) << bad.err;
}

TEST_F(RegistryComposeTest, ComposePushThenComposePullRoundTrip) {
  // The service's image is in the source root only; push it from there.
  std::string source = source_root(ref_);
  // As compose, push is for the images the project builds (build and image);
  // other's image is someone else's and is skipped.
  write_app(app(ref_, "    build: .\n") + "  other:\n    image: " + registry_->address() + "/berth/missing:1\n    network_mode: none\n");
  Result push = run_berth({"--root", source, "compose", "push"}, "", {}, project_dir_);
  ASSERT_EQ(push.exit_code, 0) << push.out << push.err;
  EXPECT_NE(push.err.find("web Pushed"), std::string::npos) << push.err;
  EXPECT_NE(push.err.find("other Skipped"), std::string::npos) << push.err;
  EXPECT_GE(requests(*registry_, "PUT", "/manifests/1"), 1) << registry_->log();
  EXPECT_EQ(requests(*registry_, "PUT", "/berth/missing/manifests/"), 0) << registry_->log();
  std::string id = nlohmann::json::parse(run_berth({"--root", source, "image", "inspect", ref_}).out)[0].value("Id", "");

  // compose pull: web's image arrives; other's does not exist, which fails the pull...
  Result pull = compose({"compose", "pull"});
  EXPECT_NE(pull.exit_code, 0);
  EXPECT_NE(pull.err.find("Error service other: pulling " + registry_->address() + "/berth/missing:1"), std::string::npos) << pull.err;
  ASSERT_TRUE(have_image(ref_)) << pull.err;
  EXPECT_EQ(nlohmann::json::parse(berth({"image", "inspect", ref_}).out)[0].value("Id", ""), id);
  // ...unless ignored.
  Result ignored = compose({"compose", "pull", "--ignore-pull-failures", "-q"});
  EXPECT_EQ(ignored.exit_code, 0) << ignored.err;
  EXPECT_EQ(ignored.err.find("Pulling"), std::string::npos) << ignored.err;
  // `berth pull` in the project directory is compose's pull; a service filter pulls only that one.
  Result plain = compose({"pull", "web"});
  EXPECT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_NE(plain.err.find("web Pulled"), std::string::npos) << plain.err;
  EXPECT_EQ(plain.err.find("other"), std::string::npos) << plain.err;
  // An explicit missing policy (--policy, or the service's pull_policy) skips an image already here.
  int manifests = requests(*registry_, "GET", "/manifests/");
  Result missing = compose({"compose", "pull", "--policy", "missing", "web"});
  EXPECT_EQ(missing.exit_code, 0) << missing.err;
  EXPECT_NE(missing.err.find("web Skipped - Image is already present locally"), std::string::npos) << missing.err;
  EXPECT_EQ(requests(*registry_, "GET", "/manifests/"), manifests) << registry_->log();
  EXPECT_NE(compose({"compose", "pull", "--policy", "sometimes"}).exit_code, 0);
  // The docker-style `berth pull REF` still works as before.
  Result one = compose({"pull", ref_});
  EXPECT_EQ(one.exit_code, 0) << one.err;
  EXPECT_NE(one.out.find("Status: Image is up to date for " + ref_), std::string::npos) << one.out;
}

}  // namespace
}  // namespace berth::test
