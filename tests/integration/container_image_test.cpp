// run/create IMAGE, image holds (rmi while a container uses its image) and
// commit, driven through the binary. Each test has its own --root/--run-root
// (ContainerTest) and removes its containers in TearDown.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/integration/container_fixture.h"

namespace berth::test {
namespace {

std::string first_line(const std::string& s) { return s.substr(0, s.find('\n')); }

class ContainerImageTest : public ContainerTest {
 protected:
  void SetUp() override {
    ContainerTest::SetUp();
    if (IsSkipped()) return;
    tar_ = tmp_.path() + "/busybox.tar";
    make_busybox_tar(tar_);
    import("busybox:latest");
  }

  // Imports the busybox tar under name with --change instructions; returns the image ID.
  std::string import(const std::string& name, const std::vector<std::string>& changes = {}) {
    std::vector<std::string> args{"import"};
    for (auto& c : changes) args.push_back("--change=" + c);
    args.insert(args.end(), {tar_, name});
    auto r = berth(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return first_line(r.out);
  }

  // `berth run IMAGE-AND-FLAGS...`: stdout, expecting exit 0.
  std::string run_out(std::vector<std::string> args) {
    args.insert(args.begin(), "run");
    auto r = berth(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out;
  }

  std::string create(std::vector<std::string> args) {
    args.insert(args.begin(), "create");
    auto r = berth(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return first_line(r.out);
  }

  std::string commit(std::vector<std::string> args) {
    args.insert(args.begin(), "commit");
    auto r = berth(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out.rfind("sha256:", 0), 0u) << r.out;
    return first_line(r.out);
  }

  nlohmann::json image_inspect(const std::string& ref) {
    auto r = berth({"image", "inspect", ref});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    return j.is_array() && !j.empty() ? j[0] : nlohmann::json();
  }

  // The store's holders (white box: rmi would drop stale holds itself and hide a missed release).
  // The store's holds: one empty file <holder>.<image hex> each.
  std::vector<std::string> holders() {
    std::vector<std::string> out;
    if (DIR* d = ::opendir((root_ + "/image/holds").c_str())) {
      while (auto* e = ::readdir(d)) {
        std::string n = e->d_name;
        if (n[0] != '.') out.push_back(n.substr(0, n.rfind('.')));
      }
      ::closedir(d);
    }
    return out;
  }

  std::string tar_;
};

TEST_F(ContainerImageTest, RunsImageByNameAndByIdPrefix) {
  EXPECT_EQ(run_out({"--rm", "busybox", "echo", "by name"}), "by name\n");
  auto ids = berth({"images", "-q"});
  ASSERT_EQ(ids.exit_code, 0) << ids.err;
  std::string prefix = first_line(ids.out);
  ASSERT_EQ(prefix.size(), 12u) << ids.out;
  EXPECT_EQ(run_out({"--rm", prefix, "echo", "by id"}), "by id\n");

  std::string id = create({"--name", "c1", "busybox", "true"});
  auto j = inspect(id);
  EXPECT_EQ(j["Config"]["Image"], "busybox");
  std::string full_id = image_inspect("busybox")["Id"];
  EXPECT_EQ(j["Image"], full_id);
  auto ps = berth({"ps", "-a", "--format", "json"});
  ASSERT_EQ(ps.exit_code, 0) << ps.err;
  EXPECT_EQ(nlohmann::json::parse(first_line(ps.out))["Image"], "busybox");
  // --rootfs still works next to images.
  EXPECT_EQ(run({"--rm"}, {"echo", "rootfs"}).out, "rootfs\n");
}

TEST_F(ContainerImageTest, ImageDefaultsApplyAndFlagsOverride) {
  import("defaults:1", {R"(CMD ["sh", "-c", "echo $GREETING $(pwd) $(id -u) $OTHER"])", "ENV GREETING=hello OTHER=kept",
                        "WORKDIR /tmp", "USER berth", "STOPSIGNAL SIGQUIT", "LABEL from=image both=image"});
  EXPECT_EQ(run_out({"--rm", "defaults:1"}), "hello /tmp 1000 kept\n");
  EXPECT_EQ(run_out({"--rm", "-e", "GREETING=bye", "-w", "/", "-u", "0", "defaults:1"}), "bye / 0 kept\n");
  EXPECT_EQ(run_out({"--rm", "defaults:1", "echo", "args replace Cmd"}), "args replace Cmd\n");

  std::string id = create({"-l", "both=container", "defaults:1"});
  auto j = inspect(id);
  EXPECT_EQ(j["Config"]["StopSignal"], "SIGQUIT");
  EXPECT_EQ(j["Config"]["Labels"]["from"], "image");
  EXPECT_EQ(j["Config"]["Labels"]["both"], "container");
  EXPECT_EQ(j["Config"]["Cmd"], nlohmann::json::array({"sh", "-c", "echo $GREETING $(pwd) $(id -u) $OTHER"}));
  EXPECT_EQ(j["Config"]["User"], "berth");

  import("ep:1", {R"(ENTRYPOINT ["echo", "ep"])", R"(CMD ["default"])"});
  EXPECT_EQ(run_out({"--rm", "ep:1"}), "ep default\n");
  EXPECT_EQ(run_out({"--rm", "ep:1", "x", "y"}), "ep x y\n");
  // --entrypoint replaces the entrypoint and drops the image's Cmd.
  EXPECT_EQ(run_out({"--rm", "--entrypoint", "echo", "ep:1"}), "\n");
  EXPECT_EQ(run_out({"--rm", "--entrypoint", "echo", "ep:1", "a"}), "a\n");
}

TEST_F(ContainerImageTest, MissingImageFailsWithNothingLeft) {
  for (const char* verb : {"run", "create"}) {
    auto r = berth({verb, "nosuch", "true"});
    EXPECT_EQ(r.exit_code, 125) << verb;
    EXPECT_NE(r.err.find("Unable to find image 'nosuch:latest' locally"), std::string::npos) << r.err;
  }
  EXPECT_EQ(berth({"ps", "-aq"}).out, "");
  EXPECT_TRUE(container_dirs().empty());
  EXPECT_EQ(berth({"run", "busybox"}).exit_code, 125) << "busybox has no Cmd: no command";
  EXPECT_TRUE(container_dirs().empty());
}

TEST_F(ContainerImageTest, RmiRefusesWhileAContainerHoldsTheImage) {
  std::string id = create({"busybox", "true"});
  auto r = berth({"rmi", "busybox"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("conflict: unable to remove repository reference"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(id), std::string::npos) << r.err;
  EXPECT_NE(berth({"images", "-q"}).out, "");
  EXPECT_EQ(holders(), std::vector<std::string>{id});
  ASSERT_EQ(berth({"rm", id}).exit_code, 0);
  EXPECT_TRUE(holders().empty()) << "rm releases the image";
  r = berth({"rmi", "busybox"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(berth({"images", "-q"}).out, "");
}

// Holds are not fsync'd: a hold a crash lost comes back from the container
// before rmi decides.
TEST_F(ContainerImageTest, RmiRestoresAHoldACrashLost) {
  std::string id = create({"busybox", "true"});
  ASSERT_EQ(holders(), std::vector<std::string>{id});
  for (auto& h : std::filesystem::directory_iterator(root_ + "/image/holds")) std::filesystem::remove(h.path());
  ASSERT_TRUE(holders().empty());
  auto r = berth({"rmi", "busybox"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(id), std::string::npos) << r.err;
  EXPECT_EQ(holders(), std::vector<std::string>{id});
  ASSERT_EQ(berth({"rm", id}).exit_code, 0);
  EXPECT_EQ(berth({"rmi", "busybox"}).exit_code, 0);
}

TEST_F(ContainerImageTest, RmContainersReleaseTheirImage) {
  EXPECT_EQ(run_out({"--rm", "busybox", "true"}), "");
  EXPECT_TRUE(holders().empty()) << "an attached --rm run releases its image at once";
  // Detached: the monitor removes the container; its hold is dropped later.
  auto r = berth({"run", "-d", "--rm", "busybox", "true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(eventually([&] { return container_dirs().empty(); }));
  r = berth({"rmi", "busybox"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(berth({"images", "-q"}).out, "");
}

TEST_F(ContainerImageTest, CommitCapturesDeletionsReplacementsAndAdditions) {
  // A base layer with something to delete, replace and keep.
  std::string base = create({"busybox", "sh", "-c",
                             "mkdir -p /data/gone/sub /data/opaque && echo a > /data/gone/sub/f && "
                             "echo old > /data/opaque/old && echo keep > /data/keep && echo del > /data/del && "
                             "echo v1 > /data/replace"});
  ASSERT_EQ(berth({"start", "-a", base}).exit_code, 0);
  commit({base, "base:1"});

  std::string changed = create({"base:1", "sh", "-c",
                                "rm /data/del && echo v2 > /data/replace && rm -rf /data/gone /data/opaque && "
                                "mkdir /data/opaque && echo new > /data/opaque/new && echo added > /data/added && "
                                "ln -s keep /data/link"});
  ASSERT_EQ(berth({"start", "-a", changed}).exit_code, 0);
  std::string img = commit({"-m", "changes", "-a", "tester", changed, "changed:1"});

  EXPECT_EQ(run_out({"--rm", "changed:1", "sh", "-c", "cd /data && find . | sort && cat replace opaque/new added link"}),
            ".\n./added\n./keep\n./link\n./opaque\n./opaque/new\n./replace\nv2\nnew\nadded\nkeep\n");
  auto j = image_inspect(img);
  EXPECT_EQ(j["RootFS"]["Layers"].size(), 3u) << j.dump();
  for (auto& e : j["Config"]["Env"]) EXPECT_EQ(e.get<std::string>().rfind("HOSTNAME=", 0), std::string::npos);
  // The parent image is held by the committed-from container, not by the new one.
  EXPECT_NE(berth({"rmi", "base:1"}).exit_code, 0);
}

TEST_F(ContainerImageTest, CommitAppliesChangesAndPausesARunningContainer) {
  std::string id = create({"busybox", "sh", "-c", "echo live > /live && sleep 1000"});
  ASSERT_EQ(berth({"start", id}).exit_code, 0);
  ASSERT_TRUE(eventually([&] { return berth({"exec", id, "cat", "/live"}).out == "live\n"; }));
  commit({"-c", R"(CMD ["cat", "/live"])", "-c", "ENV COMMITTED=yes", id, "live:1"});
  EXPECT_EQ(inspect(id)["State"]["Status"], "running") << "unpaused after commit";
  EXPECT_EQ(run_out({"--rm", "live:1"}), "live\n");
  EXPECT_EQ(run_out({"--rm", "live:1", "sh", "-c", "echo $COMMITTED"}), "yes\n");
  commit({"-c", R"(CMD ["echo", "hi"])", "--pause=false", id, "hi:1"});
  EXPECT_EQ(run_out({"--rm", "hi:1"}), "hi\n");
  auto bad = berth({"commit", "-c", "BOGUS x", id});
  EXPECT_EQ(bad.exit_code, 125) << bad.err;
}

}  // namespace
}  // namespace berth::test
