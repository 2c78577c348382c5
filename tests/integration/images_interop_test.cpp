// berth's archives against the real tools: skopeo reads them, a private
// dockerd loads them, and `docker save` output loads into berth with the same
// image ID, DiffIDs and config. Each part is skipped only when its tool is missing.
#include <gtest/gtest.h>
#include <unistd.h>

#include <memory>
#include <nlohmann/json.hpp>

#include "base/fs.h"
#include "tests/support/busybox.h"
#include "tests/support/dockerd.h"
#include "tests/support/run.h"

using berth::test::PrivateDockerd;
using berth::test::Result;
using berth::test::run;
using berth::test::run_berth;
using berth::test::TempDir;
using nlohmann::json;

namespace {

const char* kSkopeo = "/usr/bin/skopeo";

// One berth store with two images (busybox and a three-layer image), saved both ways.
class ImagesInterop : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    root_ = dir_->path() + "/root";
    std::string tar = dir_->path() + "/busybox.tar";
    berth::test::make_busybox_tar(tar);
    Result r = berth({"import", tar, "busybox:interop", "-c", "CMD [\"sh\"]", "-c", "ENV GREETING=hello"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // A second image on top of the first: busybox layer + one more.
    std::string extra = dir_->path() + "/extra";
    berth::make_dirs(extra + "/etc");
    berth::write_file_atomic(extra + "/etc/.wh.group", "");
    berth::write_file_atomic(extra + "/etc/motd", "interop\n");
    ASSERT_EQ(run({"/bin/tar", "--numeric-owner", "-C", extra, "-cf", dir_->path() + "/extra.tar", "."}).exit_code, 0);
    json config = json::parse(berth({"image", "inspect", "busybox:interop"}).out)[0];
    std::string ad = dir_->path() + "/two.d";
    berth::make_dirs(ad);
    ASSERT_EQ(berth({"save", "-o", dir_->path() + "/base.tar", "busybox:interop"}).exit_code, 0);
    ASSERT_EQ(run({"/bin/tar", "-C", ad, "-xf", dir_->path() + "/base.tar"}).exit_code, 0);
    json manifest = json::parse(berth::read_file(ad + "/manifest.json"));
    std::string config_path = ad + "/" + manifest[0]["Config"].get<std::string>();
    json image_config = json::parse(berth::read_file(config_path));
    Result sum = run({"/usr/bin/sha256sum", dir_->path() + "/extra.tar"});
    image_config["rootfs"]["diff_ids"].push_back("sha256:" + sum.out.substr(0, 64));
    image_config["config"]["Cmd"] = {"cat", "/etc/motd"};
    berth::write_file_atomic(ad + "/layered.json", image_config.dump());
    // The extra layer gzip'd, as pulled layers come: berth keeps it so, and
    // its saves below decompress it (docker and skopeo check the DiffID).
    ASSERT_EQ(run({"/bin/sh", "-c", "gzip -nc '" + dir_->path() + "/extra.tar' > '" + ad + "/extra.tar.gz'"}).exit_code, 0);
    manifest.push_back({{"Config", "layered.json"}, {"RepoTags", {"berth-test/layered:2"}},
                        {"Layers", {manifest[0]["Layers"][0], "extra.tar.gz"}}});
    berth::write_file_atomic(ad + "/manifest.json", manifest.dump());
    ASSERT_EQ(run({"/bin/tar", "-C", ad, "-cf", dir_->path() + "/two.tar", "."}).exit_code, 0);
    r = berth({"load", "-i", dir_->path() + "/two.tar"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    docker_archive_ = dir_->path() + "/berth-docker.tar";
    oci_archive_ = dir_->path() + "/berth-oci.tar";
    ASSERT_EQ(berth({"save", "-o", docker_archive_, "busybox:interop", "berth-test/layered:2"}).exit_code, 0);
    ASSERT_EQ(berth({"save", "--format", "oci", "-o", oci_archive_, "busybox:interop"}).exit_code, 0);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }

  static Result berth(std::vector<std::string> args) {
    args.insert(args.begin(), {"--root", root_});
    return run_berth(args);
  }
  static json inspect(const std::string& image) {
    Result r = berth({"image", "inspect", image});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.exit_code == 0 ? json::parse(r.out)[0] : json();
  }

  static TempDir* dir_;
  static std::string root_, docker_archive_, oci_archive_;
};

TempDir* ImagesInterop::dir_ = nullptr;
std::string ImagesInterop::root_, ImagesInterop::docker_archive_, ImagesInterop::oci_archive_;

}  // namespace

TEST_F(ImagesInterop, SkopeoReadsBerthDockerArchive) {
  if (::access(kSkopeo, X_OK) != 0) GTEST_SKIP() << "skopeo is not installed (Debian package skopeo)";
  for (const char* image : {"busybox:interop", "berth-test/layered:2"}) {
    Result r = run({kSkopeo, "inspect", "docker-archive:" + docker_archive_ + ":" + image});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    json j = json::parse(r.out);
    json mine = inspect(image);
    EXPECT_EQ(j["Layers"], mine["RootFS"]["Layers"]) << image;
    Result c = run({kSkopeo, "inspect", "--config", "docker-archive:" + docker_archive_ + ":" + image});
    ASSERT_EQ(c.exit_code, 0) << c.err;
    json theirs = json::parse(c.out)["config"];
    EXPECT_EQ(theirs["Cmd"], mine["Config"]["Cmd"]);
    EXPECT_EQ(theirs["Env"], mine["Config"]["Env"]);
  }
}

TEST_F(ImagesInterop, SkopeoReadsBerthOciArchive) {
  if (::access(kSkopeo, X_OK) != 0) GTEST_SKIP() << "skopeo is not installed (Debian package skopeo)";
  Result r = run({kSkopeo, "inspect", "oci-archive:" + oci_archive_});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["Layers"], inspect("busybox:interop")["RootFS"]["Layers"]);
  Result raw = run({kSkopeo, "inspect", "--raw", "oci-archive:" + oci_archive_});
  ASSERT_EQ(raw.exit_code, 0) << raw.err;
  EXPECT_EQ(json::parse(raw.out)["mediaType"], "application/vnd.oci.image.manifest.v1+json");
}

TEST_F(ImagesInterop, SkopeoWrittenArchivesLoadIntoBerth) {
  if (::access(kSkopeo, X_OK) != 0) GTEST_SKIP() << "skopeo is not installed (Debian package skopeo)";
  // skopeo recompresses layers (gzip) and writes its own OCI layout: a different producer.
  std::string out = dir_->path() + "/skopeo-oci.tar";
  Result c = run({kSkopeo, "copy", "--quiet", "docker-archive:" + docker_archive_ + ":berth-test/layered:2",
                  "oci-archive:" + out + ":example.com/skopeo/copy:1"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  TempDir other;
  Result l = run_berth({"--root", other.path(), "load", "-i", out});
  ASSERT_EQ(l.exit_code, 0) << l.err;
  EXPECT_NE(l.out.find("Loaded image: example.com/skopeo/copy:1"), std::string::npos) << l.out;
  Result i = run_berth({"--root", other.path(), "image", "inspect", "example.com/skopeo/copy:1"});
  ASSERT_EQ(i.exit_code, 0) << i.err;
  json copy = json::parse(i.out)[0];
  json original = inspect("berth-test/layered:2");
  EXPECT_EQ(copy["RootFS"], original["RootFS"]);
  EXPECT_EQ(copy["Config"], original["Config"]);
}

class ImagesDocker : public ImagesInterop {
 protected:
  static void SetUpTestSuite() {
    ImagesInterop::SetUpTestSuite();
    if (!PrivateDockerd::unavailable_reason().empty()) return;
    try {
      dockerd_ = new PrivateDockerd();
    } catch (const std::exception& e) {
      start_error_ = e.what();
    }
  }
  static void TearDownTestSuite() {
    delete dockerd_;
    dockerd_ = nullptr;
    ImagesInterop::TearDownTestSuite();
  }
  void SetUp() override {
    std::string why = PrivateDockerd::unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    ASSERT_NE(dockerd_, nullptr) << "private dockerd failed to start: " << start_error_;
  }
  static PrivateDockerd* dockerd_;
  static std::string start_error_;
};

PrivateDockerd* ImagesDocker::dockerd_ = nullptr;
std::string ImagesDocker::start_error_;

TEST_F(ImagesDocker, DockerLoadsBerthArchive) {
  Result l = dockerd_->docker({"load", "-i", docker_archive_});
  ASSERT_EQ(l.exit_code, 0) << l.err << "\n" << dockerd_->log();
  EXPECT_NE(l.out.find("Loaded image: busybox:interop"), std::string::npos) << l.out;
  EXPECT_NE(l.out.find("Loaded image: berth-test/layered:2"), std::string::npos) << l.out;
  for (const char* image : {"busybox:interop", "berth-test/layered:2"}) {
    Result i = dockerd_->docker({"image", "inspect", image});
    ASSERT_EQ(i.exit_code, 0) << i.err;
    json theirs = json::parse(i.out)[0];
    json mine = inspect(image);
    EXPECT_EQ(theirs["Id"], mine["Id"]) << image;
    EXPECT_EQ(theirs["RootFS"]["Layers"], mine["RootFS"]["Layers"]) << image;
    EXPECT_EQ(theirs["Config"]["Cmd"], mine["Config"]["Cmd"]) << image;
    EXPECT_EQ(theirs["Size"], mine["Size"]) << image;
  }
}

TEST_F(ImagesDocker, DockerSaveLoadsIntoBerthIdentically) {
  // An image made by docker itself (docker import), plus berth's two after a trip through docker.
  Result imp = dockerd_->docker({"import", "-c", "CMD [\"sh\"]", "-c", "ENV FROM=docker", dir_->path() + "/busybox.tar", "made-by-docker:1"});
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  if (dockerd_->docker({"image", "inspect", "berth-test/layered:2"}).exit_code != 0)
    ASSERT_EQ(dockerd_->docker({"load", "-i", docker_archive_}).exit_code, 0);
  std::string saved = dir_->path() + "/docker-saved.tar";
  Result s = dockerd_->docker({"save", "-o", saved, "made-by-docker:1", "berth-test/layered:2", "busybox:interop"});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  TempDir other;
  Result l = run_berth({"--root", other.path(), "load", "-i", saved});
  ASSERT_EQ(l.exit_code, 0) << l.err;
  for (const char* image : {"made-by-docker:1", "berth-test/layered:2", "busybox:interop"}) {
    json theirs = json::parse(dockerd_->docker({"image", "inspect", image}).out)[0];
    Result i = run_berth({"--root", other.path(), "image", "inspect", image});
    ASSERT_EQ(i.exit_code, 0) << i.err;
    json mine = json::parse(i.out)[0];
    EXPECT_EQ(mine["Id"], theirs["Id"]) << image;
    EXPECT_EQ(mine["RootFS"]["Layers"], theirs["RootFS"]["Layers"]) << image;
    EXPECT_EQ(mine["Config"], theirs["Config"]) << image;
    EXPECT_EQ(mine["Created"], theirs["Created"]) << image;
  }
  Result rt = run_berth({"--root", other.path(), "image", "inspect", "made-by-docker:1"});
  EXPECT_NE(rt.out.find("FROM=docker"), std::string::npos);
}
