// berth import/load/save/images/tag/rmi/image *: driven through the binary,
// each test with its own --root.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "base/fs.h"
#include "tests/support/busybox.h"
#include "tests/support/run.h"
#include "tests/support/ustar.h"

using berth::test::Result;
using berth::test::run;
using berth::test::run_berth;
using berth::test::TarEntry;
using berth::test::TempDir;
using berth::test::pax_record;
using berth::test::ustar;
using nlohmann::json;

namespace {

std::string sha256_hex(const std::string& path) {
  Result r = run({"/usr/bin/sha256sum", path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out.substr(0, 64);
}

std::string digest_of_bytes(const TempDir& dir, const std::string& bytes) {
  return "sha256:" + sha256_hex(dir.write("digest-input", bytes));
}

// Every file and directory below root/image except the lock and index, for "unchanged" checks.
std::set<std::string> store_listing(const std::string& root) {
  std::set<std::string> out;
  std::function<void(const std::string&, const std::string&)> walk = [&](const std::string& dir, const std::string& rel) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n == "." || n == "..") continue;
      std::string r = rel.empty() ? n : rel + "/" + n;
      out.insert(r);
      struct stat st {};
      if (::lstat((dir + "/" + n).c_str(), &st) == 0 && S_ISDIR(st.st_mode)) walk(dir + "/" + n, r);
    }
    ::closedir(d);
  };
  walk(root + "/image", "");
  return out;
}

size_t count_entries(const std::string& dir) {
  size_t n = 0;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) ++n;
    ::closedir(d);
  }
  return n;
}

class Images : public ::testing::Test {
 protected:
  TempDir dir;
  std::string root = dir.path() + "/root";

  Result berth(std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), {"--root", root});
    return run_berth(args, input);
  }
  json inspect(const std::string& image) {
    Result r = berth({"image", "inspect", image});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out).at(0);
  }
  std::string import_busybox(const std::string& ref = "busybox") {
    std::string tar = dir.path() + "/busybox.tar";
    if (!berth::path_exists(tar)) berth::test::make_busybox_tar(tar);
    Result r = berth({"import", tar, ref, "--change", "CMD [\"sh\"]"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }

  // Writes a layer directory with /bin/tar (GNU headers, as real images have).
  std::string tar_dir(const std::string& src, const std::string& out) {
    Result r = run({"/bin/tar", "--numeric-owner", "--xattrs", "-C", src, "-cf", out, "."});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return out;
  }

  // A docker-save archive (built with /bin/tar) of one image whose layers are the given tar files.
  std::string docker_archive(const std::string& name, const std::vector<std::string>& layer_tars, const std::string& tag,
                             std::vector<std::string> diff_ids = {}) {
    std::string ad = dir.path() + "/" + name + ".d";
    berth::make_dirs(ad);
    json layers = json::array();
    bool compute = diff_ids.empty();
    for (size_t i = 0; i < layer_tars.size(); ++i) {
      std::string lname = "layer" + std::to_string(i) + "/layer.tar";
      berth::make_dirs(ad + "/layer" + std::to_string(i));
      EXPECT_EQ(run({"/bin/cp", layer_tars[i], ad + "/" + lname}).exit_code, 0);
      layers.push_back(lname);
      if (compute) {
        // DiffIDs are digests of the uncompressed stream.
        std::string plain = layer_tars[i];
        if (plain.size() > 3 && plain.substr(plain.size() - 3) == ".gz") {
          Result z = run({"/bin/sh", "-c", "gzip -dc '" + plain + "' > '" + plain + ".raw'"});
          EXPECT_EQ(z.exit_code, 0);
          plain += ".raw";
        }
        diff_ids.push_back("sha256:" + sha256_hex(plain));
      }
    }
    json config = {{"architecture", "amd64"},
                   {"os", "linux"},
                   {"created", "2024-05-06T07:08:09Z"},
                   {"config", {{"Cmd", {"/bin/sh"}}, {"Env", {"PATH=/bin"}}}},
                   {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
    berth::write_file_atomic(ad + "/config.json", config.dump());
    json manifest = json::array({{{"Config", "config.json"}, {"RepoTags", {tag}}, {"Layers", layers}}});
    berth::write_file_atomic(ad + "/manifest.json", manifest.dump());
    std::string out = dir.path() + "/" + name;
    Result r = run({"/bin/tar", "-C", ad, "-cf", out, "."});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return out;
  }

  // Three layers: a base with links, then whiteouts and an opaque directory, then more files.
  std::string multi_layer_archive(const std::string& name, const std::string& tag) {
    std::string l1 = dir.path() + "/ml1";
    for (auto d : {"/etc", "/data/old", "/bin", "/var/log"}) berth::make_dirs(l1 + d);
    berth::write_file_atomic(l1 + "/etc/passwd", "root:x:0:0::/root:/bin/sh\n");
    berth::write_file_atomic(l1 + "/etc/remove-me", "gone in layer 2\n");
    berth::write_file_atomic(l1 + "/data/old/file", "hidden by opaque\n");
    berth::write_file_atomic(l1 + "/bin/tool", "#!/bin/sh\necho tool\n", 0755);
    ::link((l1 + "/bin/tool").c_str(), (l1 + "/bin/tool-hardlink").c_str());
    ::symlink("tool", (l1 + "/bin/tool-symlink").c_str());
    ::symlink("/etc/passwd", (l1 + "/etc/abs-link").c_str());
    ::mkfifo((l1 + "/var/log/fifo").c_str(), 0600);
    std::string l2 = dir.path() + "/ml2";
    berth::make_dirs(l2 + "/etc");
    berth::make_dirs(l2 + "/data/old");
    berth::write_file_atomic(l2 + "/etc/.wh.remove-me", "");
    berth::write_file_atomic(l2 + "/data/old/.wh..wh..opq", "");
    berth::write_file_atomic(l2 + "/data/old/new", "after opaque\n");
    std::string l3 = dir.path() + "/ml3";
    berth::make_dirs(l3 + "/srv");
    std::string big;
    for (int i = 0; i < 300000; ++i) big += static_cast<char>('a' + (i * 31) % 26);
    berth::write_file_atomic(l3 + "/srv/big", big);
    std::string t1 = tar_dir(l1, dir.path() + "/ml1.tar");
    std::string t2 = tar_dir(l2, dir.path() + "/ml2.tar");
    std::string t3 = tar_dir(l3, dir.path() + "/ml3.tar");
    EXPECT_EQ(run({"/bin/gzip", "-kf", t3}).exit_code, 0);  // one compressed layer, as registries serve them
    return docker_archive(name, {t1, t2, t3 + ".gz"}, tag);
  }

  void expect_store_empty() {
    EXPECT_EQ(count_entries(root + "/image/blobs/sha256"), 0u);
    EXPECT_EQ(count_entries(root + "/image/layers"), 0u);
    EXPECT_EQ(count_entries(root + "/image/tmp"), 0u);
  }

  // Loading must fail with an error mentioning `needle`, and leave the store as it was.
  void expect_load_rejected(const std::string& archive, const std::string& needle) {
    ASSERT_EQ(berth({"images", "-q"}).exit_code, 0);  // the store exists (empty or not) before the attempt
    auto before = store_listing(root);
    std::string index_before;
    berth::read_file_if_exists(root + "/image/index.json", index_before);
    Result r = berth({"load", "-i", archive});
    EXPECT_NE(r.exit_code, 0) << "accepted " << archive << "\n" << r.out;
    EXPECT_NE(r.err.find(needle), std::string::npos) << "error should mention " << needle << ":\n" << r.err;
    EXPECT_EQ(store_listing(root), before) << "the store changed";
    std::string index_after;
    berth::read_file_if_exists(root + "/image/index.json", index_after);
    EXPECT_EQ(index_after, index_before);
    EXPECT_EQ(count_entries(root + "/image/tmp"), 0u);
  }
};

}  // namespace

TEST_F(Images, ImportBusyboxFixture) {
  ASSERT_TRUE(berth::test::have_busybox()) << "busybox-static is required";
  std::string id = import_busybox();
  EXPECT_EQ(id.rfind("sha256:", 0), 0u) << id;
  Result ls = berth({"images"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_EQ(ls.out.rfind("REPOSITORY   TAG      IMAGE ID       CREATED", 0), 0u) << ls.out;
  EXPECT_NE(ls.out.find("busybox      latest   " + id.substr(7, 12)), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("ago"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("MB"), std::string::npos) << ls.out;
  json j = inspect("busybox");
  EXPECT_EQ(j["Id"], id);
  EXPECT_EQ(j["RepoTags"], json::array({"busybox:latest"}));
  EXPECT_EQ(j["Config"]["Cmd"], json::array({"sh"}));
  EXPECT_EQ(j["Os"], "linux");
  EXPECT_GT(j["Size"].get<uint64_t>(), 500000u);
  ASSERT_EQ(j["RootFS"]["Layers"].size(), 1u);
  std::string layer = j["GraphDriver"]["Data"]["LowerDir"];
  struct stat st {};
  ASSERT_EQ(::lstat((layer + "/bin/busybox").c_str(), &st), 0) << layer;
  EXPECT_TRUE(st.st_mode & S_IXUSR);
  EXPECT_EQ(::lstat((layer + "/bin/sh").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  struct stat home {};
  ASSERT_EQ(::lstat((layer + "/home/berth").c_str(), &home), 0);
  EXPECT_EQ(home.st_uid, 1000u) << "ownership preserved";
  struct stat tmp {};
  ASSERT_EQ(::lstat((layer + "/tmp").c_str(), &tmp), 0);
  EXPECT_EQ(tmp.st_mode & 07777, 01777u) << "modes preserved";

  // docker's --format templates.
  Result f = berth({"image", "inspect", "--format", "{{.Id}} {{json .Config.Cmd}} {{index .RepoTags 0}}", "busybox"});
  EXPECT_EQ(f.exit_code, 0) << f.err;
  EXPECT_EQ(f.out, id + " [\"sh\"] busybox:latest\n");
  Result bad = berth({"image", "inspect", "-f", "{{.Nope}}", "busybox"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("map has no entry for key \"Nope\""), std::string::npos) << bad.err;
}

// A second import of the same rootfs finds its layer by the tar's digest
// (its DiffID): nothing is unpacked again, and the progress names the layer.
TEST_F(Images, ImportOfAKnownRootfsReusesItsLayer) {
  ASSERT_TRUE(berth::test::have_busybox()) << "busybox-static is required";
  import_busybox("one");
  std::string tar = dir.path() + "/busybox.tar";
  std::string diff_id = inspect("one")["RootFS"]["Layers"][0];
  Result again = berth({"import", tar, "two"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("Loading layer " + diff_id.substr(7, 12) + "  already exists"), std::string::npos) << again.err;
  EXPECT_EQ(inspect("two")["RootFS"]["Layers"][0], diff_id);
}

TEST_F(Images, ImportFromStdinWithEveryChange) {
  std::string layer = ustar({{"hello", '0', "hi\n"}});
  std::string tar = dir.write("rootfs.tar", layer);
  ASSERT_EQ(run({"/bin/gzip", "-k", tar}).exit_code, 0);
  Result r = berth({"import", "-", "me/app:v1", "-m", "from a test",
                    "-c", "CMD echo hello", "-c", "ENTRYPOINT [\"/bin/sh\", \"-c\"]", "-c", "ENV A=1 B=\"two words\"",
                    "-c", "WORKDIR /srv", "-c", "USER 1000:1000", "-c", "EXPOSE 80 53/udp", "-c", "LABEL team=core",
                    "-c", "VOLUME [\"/data\"]", "-c", "STOPSIGNAL SIGINT"},
                   berth::read_file(tar + ".gz"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json c = inspect("me/app:v1");
  EXPECT_EQ(c["Comment"], "from a test");
  json cfg = c["Config"];
  EXPECT_EQ(cfg["Cmd"], json::array({"/bin/sh", "-c", "echo hello"}));
  EXPECT_EQ(cfg["Entrypoint"], json::array({"/bin/sh", "-c"}));
  EXPECT_EQ(cfg["Env"], json::array({"A=1", "B=two words"}));
  EXPECT_EQ(cfg["WorkingDir"], "/srv");
  EXPECT_EQ(cfg["User"], "1000:1000");
  EXPECT_TRUE(cfg["ExposedPorts"].contains("80/tcp"));
  EXPECT_TRUE(cfg["ExposedPorts"].contains("53/udp"));
  EXPECT_EQ(cfg["Labels"]["team"], "core");
  EXPECT_TRUE(cfg["Volumes"].contains("/data"));
  EXPECT_EQ(cfg["StopSignal"], "SIGINT");
  // The DiffID is the digest of the uncompressed tar.
  EXPECT_EQ(c["RootFS"]["Layers"][0], "sha256:" + sha256_hex(tar));
  // The store keeps the gzip as it came (the layer's blob), not the tar.
  EXPECT_TRUE(berth::path_exists(root + "/image/blobs/sha256/" + sha256_hex(tar + ".gz")));
  EXPECT_FALSE(berth::path_exists(root + "/image/blobs/sha256/" + sha256_hex(tar)));
  json meta = json::parse(berth::read_file(root + "/image/layers/" + sha256_hex(tar) + "/meta.json"));
  EXPECT_EQ(meta["blob"]["media_type"], "application/vnd.oci.image.layer.v1.tar+gzip");
  EXPECT_EQ(count_entries(root + "/image/tmp"), 0u);

  Result bad = berth({"import", tar, "x", "-c", "RUN rm -rf /"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("RUN"), std::string::npos) << bad.err;
  Result bad_ref = berth({"import", tar, "Bad:Name"});
  EXPECT_NE(bad_ref.exit_code, 0);
  EXPECT_NE(bad_ref.err.find("invalid reference format"), std::string::npos) << bad_ref.err;
}

TEST_F(Images, MultiLayerImageUnpacksWhiteoutsOpaqueDirsAndLinks) {
  Result r = berth({"load", "-i", multi_layer_archive("ml.tar", "multi:1")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Loaded image: multi:1\n");
  json j = inspect("multi:1");
  ASSERT_EQ(j["RootFS"]["Layers"].size(), 3u);
  std::string lower = j["GraphDriver"]["Data"]["LowerDir"];
  std::vector<std::string> dirs;
  for (size_t start = 0;;) {
    size_t colon = lower.find(':', start);
    dirs.push_back(lower.substr(start, colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  ASSERT_EQ(dirs.size(), 3u);
  const std::string top = dirs[0], middle = dirs[1], base = dirs[2];
  EXPECT_TRUE(berth::path_exists(top + "/srv/big"));
  struct stat st {};
  ASSERT_EQ(::lstat((middle + "/etc/remove-me").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) << "whiteout is a 0:0 char device";
  char v[4] = {};
  EXPECT_EQ(::getxattr((middle + "/data/old").c_str(), "trusted.overlay.opaque", v, sizeof v), 1);
  EXPECT_EQ(v[0], 'y');
  EXPECT_EQ(berth::read_file(middle + "/data/old/new"), "after opaque\n");
  struct stat a {}, b {};
  ASSERT_EQ(::lstat((base + "/bin/tool").c_str(), &a), 0);
  ASSERT_EQ(::lstat((base + "/bin/tool-hardlink").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino) << "hardlink kept";
  EXPECT_EQ(a.st_mode & 0777, 0755u);
  char target[64] = {};
  ASSERT_GT(::readlink((base + "/bin/tool-symlink").c_str(), target, sizeof target), 0);
  EXPECT_STREQ(target, "tool");
  ASSERT_GT(::readlink((base + "/etc/abs-link").c_str(), target, sizeof target), 0);
  EXPECT_STREQ(target, "/etc/passwd");
  ASSERT_EQ(::lstat((base + "/var/log/fifo").c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));

  // The layers really stack under overlayfs: whiteout hides, opaque hides, links work.
  std::string merged = dir.path() + "/merged";
  berth::make_dirs(merged);
  Result mount = run({"/bin/mount", "-t", "overlay", "overlay", "-o", "lowerdir=" + lower, merged});
  if (mount.exit_code == 0) {
    EXPECT_FALSE(berth::path_exists(merged + "/etc/remove-me"));
    EXPECT_FALSE(berth::path_exists(merged + "/data/old/file"));
    EXPECT_TRUE(berth::path_exists(merged + "/data/old/new"));
    EXPECT_EQ(berth::read_file(merged + "/bin/tool-symlink"), "#!/bin/sh\necho tool\n");
    run({"/bin/umount", merged});
  }
}

TEST_F(Images, LayerDevicesXattrsAndZstd) {
  std::string layer = dir.write("dev.tar", ustar({{"dev/", '5', "", "", 0755},
                                                  {"dev/null", '3', "", "", 0666, 1, 3},
                                                  {"dev/loop9", '4', "", "", 0660, 7, 9},
                                                  {"PaxHeaders/cap", 'x', pax_record("SCHILY.xattr.user.berth", "kept")},
                                                  {"bin/cap", '0', "x", "", 0755}}));
  std::string archive;
  if (::access("/usr/bin/zstd", X_OK) == 0) {
    ASSERT_EQ(run({"/usr/bin/zstd", "-q", "-k", layer, "-o", layer + ".zst"}).exit_code, 0);
    std::string diff_id = "sha256:" + sha256_hex(layer);
    archive = docker_archive("dev-archive.tar", {layer + ".zst"}, "dev:1", {diff_id});
  } else {
    archive = docker_archive("dev-archive.tar", {layer}, "dev:1");
  }
  Result r = berth({"load", "-i", archive});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string diff = inspect("dev:1")["GraphDriver"]["Data"]["LowerDir"];
  struct stat st {};
  ASSERT_EQ(::lstat((diff + "/dev/null").c_str(), &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(1, 3));
  EXPECT_EQ(st.st_mode & 07777, 0666u);
  ASSERT_EQ(::lstat((diff + "/dev/loop9").c_str(), &st), 0);
  EXPECT_TRUE(S_ISBLK(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(7, 9));
  char value[16] = {};
  ASSERT_EQ(::lgetxattr((diff + "/bin/cap").c_str(), "user.berth", value, sizeof value), 4) << "xattr from the pax header";
  EXPECT_STREQ(value, "kept");
  // Saved uncompressed, loaded again: same DiffID.
  ASSERT_EQ(berth({"save", "-o", dir.path() + "/again.tar", "dev:1"}).exit_code, 0);
  TempDir other;
  ASSERT_EQ(run_berth({"--root", other.path(), "load", "-i", dir.path() + "/again.tar"}).exit_code, 0);
  Result i = run_berth({"--root", other.path(), "image", "inspect", "dev:1"});
  EXPECT_EQ(json::parse(i.out)[0]["RootFS"], inspect("dev:1")["RootFS"]);
}

// Under a pids limit that leaves no thread to start, load unpacks its
// layers on its own thread (it used to end in std::terminate).
TEST_F(Images, LoadUnderAPidsLimitUnpacksOnItsOwnThread) {
  if (!berth::test::have_pids_cgroup()) GTEST_SKIP() << "needs root and the cgroup v1 pids controller";
  std::string archive = multi_layer_archive("ml.tar", "multi:1");
  Result r = berth::test::run_berth_with_pids_max(1, {"--root", root, "load", "-i", archive});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Loaded image: multi:1\n");
  EXPECT_EQ(inspect("multi:1")["RootFS"]["Layers"].size(), 3u);
}

TEST_F(Images, SaveLoadRoundTripsKeepIdsAndDiffIds) {
  import_busybox("busybox:1");
  ASSERT_EQ(berth({"load", "-i", multi_layer_archive("ml.tar", "multi:1")}).exit_code, 0);
  json bb = inspect("busybox:1"), ml = inspect("multi:1");
  for (std::string format : {"docker", "oci"}) {
    SCOPED_TRACE(format);
    std::string archive = dir.path() + "/saved-" + format + ".tar";
    Result s = berth({"save", "--format", format, "-o", archive, "busybox:1", "multi:1"});
    ASSERT_EQ(s.exit_code, 0) << s.err;
    Result list = run({"/bin/tar", "-tf", archive});
    EXPECT_NE(list.out.find("index.json"), std::string::npos);
    EXPECT_NE(list.out.find("oci-layout"), std::string::npos);
    EXPECT_EQ(list.out.find("manifest.json") != std::string::npos, format == "docker");
    TempDir other;
    Result l = run_berth({"--root", other.path(), "load", "-i", archive});
    ASSERT_EQ(l.exit_code, 0) << l.err;
    EXPECT_NE(l.out.find("Loaded image: busybox:1"), std::string::npos) << l.out;
    EXPECT_NE(l.out.find("Loaded image: multi:1"), std::string::npos) << l.out;
    for (auto* original : {&bb, &ml}) {
      std::string name = (*original)["RepoTags"][0];
      Result i = run_berth({"--root", other.path(), "image", "inspect", name});
      ASSERT_EQ(i.exit_code, 0) << i.err;
      json copy = json::parse(i.out)[0];
      EXPECT_EQ(copy["Id"], (*original)["Id"]);
      EXPECT_EQ(copy["RootFS"], (*original)["RootFS"]);
      EXPECT_EQ(copy["Config"], (*original)["Config"]);
      EXPECT_EQ(copy["Size"], (*original)["Size"]);
    }
  }
  // Saving to stdout streams the same bytes.
  Result to_stdout = run({"/bin/sh", "-c", "'" + berth::test::berth_binary() + "' --root '" + root + "' save busybox:1 multi:1 > '" +
                                              dir.path() + "/stdout.tar'"});
  ASSERT_EQ(to_stdout.exit_code, 0) << to_stdout.err;
  EXPECT_EQ(sha256_hex(dir.path() + "/stdout.tar"), sha256_hex(dir.path() + "/saved-docker.tar"));
  // Loading from stdin.
  TempDir third;
  Result from_stdin = run({"/bin/sh", "-c", "'" + berth::test::berth_binary() + "' --root '" + third.path() + "' load < '" +
                                               dir.path() + "/saved-oci.tar'"});
  ASSERT_EQ(from_stdin.exit_code, 0) << from_stdin.err;
  EXPECT_NE(from_stdin.out.find("Loaded image: multi:1"), std::string::npos);
  EXPECT_NE(from_stdin.err.find("done"), std::string::npos) << "plain progress lines off a terminal: " << from_stdin.err;
}

TEST_F(Images, ListTagRemoveLikeDocker) {
  std::string id = import_busybox();
  ASSERT_EQ(berth({"tag", "busybox", "localhost:5000/tools/bb:v1"}).exit_code, 0);
  ASSERT_EQ(berth({"image", "tag", id.substr(7, 8), "other"}).exit_code, 0);
  Result q = berth({"images", "-q"});
  EXPECT_EQ(q.out, id.substr(7, 12) + "\n");
  Result all = berth({"image", "ls", "--no-trunc", "--digests"});
  EXPECT_NE(all.out.find("DIGEST"), std::string::npos);
  EXPECT_NE(all.out.find(id), std::string::npos);
  EXPECT_NE(all.out.find("localhost:5000/tools/bb"), std::string::npos) << all.out;
  Result js = berth({"images", "--format", "json"});
  ASSERT_EQ(js.exit_code, 0);
  std::set<std::string> repos;
  for (size_t start = 0; start < js.out.size();) {
    size_t nl = js.out.find('\n', start);
    json row = json::parse(js.out.substr(start, nl - start));
    repos.insert(row["Repository"].get<std::string>() + ":" + row["Tag"].get<std::string>());
    EXPECT_EQ(row["ID"], id.substr(7, 12));
    start = nl + 1;
  }
  EXPECT_EQ(repos, (std::set<std::string>{"busybox:latest", "localhost:5000/tools/bb:v1", "other:latest"}));
  Result filtered = berth({"images", "busybox"});
  EXPECT_EQ(filtered.out.find("other"), std::string::npos) << filtered.out;

  Result refused = berth({"rmi", id});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("must be forced"), std::string::npos) << refused.err;
  Result untag = berth({"rmi", "other"});
  ASSERT_EQ(untag.exit_code, 0) << untag.err;
  EXPECT_EQ(untag.out, "Untagged: other:latest\n");
  Result missing = berth({"rmi", "nothere"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("No such image: nothere"), std::string::npos) << missing.err;
  Result forced = berth({"image", "rm", "-f", id.substr(7, 12)});
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_NE(forced.out.find("Untagged: busybox:latest\n"), std::string::npos) << forced.out;
  EXPECT_NE(forced.out.find("Untagged: localhost:5000/tools/bb:v1\n"), std::string::npos) << forced.out;
  EXPECT_NE(forced.out.find("Deleted: " + id + "\n"), std::string::npos) << forced.out;
  expect_store_empty();
  Result none = berth({"images"});
  EXPECT_EQ(none.out, "REPOSITORY   TAG   IMAGE ID   CREATED   SIZE\n");
}

TEST_F(Images, RmiOfEveryImageLeavesAnEmptyStore) {
  import_busybox("bb:1");
  import_busybox("bb:2");  // same content: same layer, shared
  ASSERT_EQ(berth({"load", "-i", multi_layer_archive("ml.tar", "multi:1")}).exit_code, 0);
  EXPECT_EQ(count_entries(root + "/image/layers"), 4u);
  Result rm = berth({"rmi", "bb:1", "bb:2", "multi:1"});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  expect_store_empty();
}

TEST_F(Images, PruneRemovesDanglingImages) {
  std::string old_id = import_busybox("bb");
  // Re-importing the name with other settings leaves the first image dangling.
  Result r = berth({"import", dir.path() + "/busybox.tar", "bb", "-c", "CMD [\"true\"]"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(berth({"images"}).out.find("<none>"), std::string::npos);
  Result p = berth({"image", "prune", "-f"});
  ASSERT_EQ(p.exit_code, 0) << p.err;
  EXPECT_NE(p.out.find("deleted: " + old_id), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("Total reclaimed space:"), std::string::npos);
  EXPECT_EQ(berth({"images", "-q"}).out.size(), 13u);
  Result all = berth({"image", "prune", "-a", "-f"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  expect_store_empty();
}

TEST_F(Images, ConcurrentLoadsDoNotCorruptTheStore) {
  std::string a = multi_layer_archive("a.tar", "a:1");
  import_busybox("seed");
  std::string b = dir.path() + "/b.tar";
  ASSERT_EQ(berth({"save", "-o", b, "seed"}).exit_code, 0);
  ASSERT_EQ(berth({"rmi", "seed"}).exit_code, 0);
  std::vector<Result> results(6);
  std::vector<std::thread> threads;
  for (int i = 0; i < 6; ++i)
    threads.emplace_back([&, i] { results[i] = berth({"load", "-q", "-i", i % 2 ? a : b}); });
  for (auto& t : threads) t.join();
  for (auto& r : results) EXPECT_EQ(r.exit_code, 0) << r.err;
  Result ls = berth({"images", "--format", "json"});
  EXPECT_NE(ls.out.find("\"a\""), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("\"seed\""), std::string::npos) << ls.out;
  ASSERT_EQ(berth({"rmi", "a:1", "seed"}).exit_code, 0);
  expect_store_empty();
}

TEST_F(Images, SavePipedIntoLoadOnTheSameRootDoesNotDeadlock) {
  std::string id = import_busybox("bb:1");
  std::string b = "'" + berth::test::berth_binary() + "' --root '" + root + "'";
  // save holds the store shared while it writes; load must read its input before locking.
  Result r = run({"/usr/bin/timeout", "60", "/bin/sh", "-c", b + " save bb:1 | " + b + " load -q"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "Loaded image: bb:1\n");
  EXPECT_EQ(inspect("bb:1")["Id"], id);
  EXPECT_EQ(count_entries(root + "/image/tmp"), 0u);
}

// ---- malicious and broken archives ---------------------------------------

TEST_F(Images, RejectsPathTraversal) {
  import_busybox();  // a non-empty store must stay as it is too
  std::string layer = dir.write("evil.tar", ustar({{"ok", '0', "x"}, {"../../escaped", '0', "pwned"}}));
  expect_load_rejected(docker_archive("evil-archive.tar", {layer}, "evil:1"), "../../escaped");
  EXPECT_FALSE(berth::path_exists(root + "/image/escaped"));
}

TEST_F(Images, RejectsAbsoluteSymlinkEscape) {
  std::string outside = dir.path() + "/outside";
  berth::make_dirs(outside);
  std::string layer = dir.write("evil.tar", ustar({{"escape", '2', "", outside, 0777}, {"escape/pwned", '0', "x"}}));
  std::string archive = docker_archive("evil-archive.tar", {layer}, "evil:1");
  expect_load_rejected(archive, "escape/pwned");
  Result r = berth({"load", "-i", archive});
  EXPECT_NE(r.err.find("symlink"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("sha256:" + sha256_hex(layer)), std::string::npos) << "names the layer: " << r.err;
  EXPECT_FALSE(berth::path_exists(outside + "/pwned"));
}

TEST_F(Images, RejectsHardlinkToOutside) {
  std::string layer = dir.write("evil.tar", ustar({{"passwd", '1', "", "../../../../../../etc/passwd"}}));
  expect_load_rejected(docker_archive("evil-archive.tar", {layer}, "evil:1"), "passwd");
  std::string abs = dir.write("evil2.tar", ustar({{"shadow", '1', "", "/etc/shadow"}}));
  expect_load_rejected(docker_archive("evil-archive2.tar", {abs}, "evil:2"), "shadow");
}

TEST_F(Images, RejectsDigestMismatch) {
  import_busybox();
  std::string layer = dir.write("layer.tar", ustar({{"file", '0', "content"}}));
  std::string wrong = "sha256:" + std::string(64, 'e');
  expect_load_rejected(docker_archive("mismatch.tar", {layer}, "bad:1", {wrong}), wrong);
  // An OCI blob whose content does not match its name.
  std::string oci = dir.path() + "/oci";
  ASSERT_EQ(berth({"save", "--format", "oci", "-o", dir.path() + "/good-oci.tar", "busybox"}).exit_code, 0);
  berth::make_dirs(oci);
  ASSERT_EQ(run({"/bin/tar", "-C", oci, "-xf", dir.path() + "/good-oci.tar"}).exit_code, 0);
  json index = json::parse(berth::read_file(oci + "/index.json"));
  std::string manifest_digest = index["manifests"][0]["digest"];
  json manifest = json::parse(berth::read_file(oci + "/blobs/sha256/" + manifest_digest.substr(7)));
  std::string layer_blob = oci + "/blobs/sha256/" + manifest["layers"][0]["digest"].get<std::string>().substr(7);
  {
    std::fstream f(layer_blob, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1000);
    f.put('X');
  }
  ASSERT_EQ(run({"/bin/tar", "-C", oci, "-cf", dir.path() + "/tampered.tar", "."}).exit_code, 0);
  expect_load_rejected(dir.path() + "/tampered.tar", manifest["layers"][0]["digest"].get<std::string>());
}

TEST_F(Images, RejectsTruncatedGzipLayer) {
  std::string noise;
  for (int i = 0; i < 400000; ++i) noise += static_cast<char>((i * 2654435761u) >> 13);
  std::string layer = dir.write("layer.tar", ustar({{"noise", '0', noise}}));
  std::string diff_id = "sha256:" + sha256_hex(layer);
  ASSERT_EQ(run({"/bin/gzip", "-k", layer}).exit_code, 0);
  std::string gz = berth::read_file(layer + ".gz");
  std::string cut = dir.write("cut.tar.gz", gz.substr(0, gz.size() * 2 / 3));
  expect_load_rejected(docker_archive("truncated.tar", {cut}, "cut:1", {diff_id}), diff_id);
}

TEST_F(Images, RejectsManifestPointingAtMissingBlob) {
  std::string layer = dir.write("layer.tar", ustar({{"file", '0', "content"}}));
  std::string archive = docker_archive("ok.tar", {layer}, "ok:1");
  // Drop the layer from the archive but keep the manifest.
  std::string ad = dir.path() + "/ok.tar.d";
  ASSERT_EQ(run({"/bin/rm", "-r", ad + "/layer0"}).exit_code, 0);
  ASSERT_EQ(run({"/bin/tar", "-C", ad, "-cf", dir.path() + "/missing.tar", "."}).exit_code, 0);
  expect_load_rejected(dir.path() + "/missing.tar", "layer0/layer.tar");
  // OCI: index.json names a manifest blob that is not there.
  std::string missing = "sha256:" + std::string(64, 'a');
  std::string oci = ustar({{"oci-layout", '0', "{\"imageLayoutVersion\":\"1.0.0\"}"},
                           {"index.json", '0',
                            json({{"schemaVersion", 2},
                                  {"manifests", {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"}, {"digest", missing}, {"size", 10}}}}})
                                .dump()}});
  expect_load_rejected(dir.write("missing-oci.tar", oci), missing);
}

TEST_F(Images, RejectsMalformedArchives) {
  expect_load_rejected(dir.write("bad-manifest.tar", ustar({{"manifest.json", '0', "{not json"}})), "manifest.json");
  expect_load_rejected(dir.write("not-image.tar", ustar({{"hello", '0', "x"}})), "not an image archive");
  expect_load_rejected(dir.write("garbage.tar", std::string(3000, 'g')), "image archive");
  expect_load_rejected(dir.write("outer-escape.tar", ustar({{"../manifest.json", '0', "[]"}})), "escapes");
}
