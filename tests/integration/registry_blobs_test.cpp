// The store keeps a layer's blob as it arrived: a pull stores the compressed
// blob (no uncompressed tar), a push sends it back as is (mounted, not
// uploaded, within one registry), save decompresses it for the Docker format
// and verifies the DiffID, and rmi removes it. Layers of older stores (meta
// without "blob", the tar named by its DiffID) keep working.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "base/fs.h"
#include "tests/integration/registry_fixture.h"
#include "tests/support/busybox.h"
#include "tests/support/registry.h"
#include "tests/support/run.h"

namespace berth::test {
namespace {

using nlohmann::json;

constexpr const char* kGzipLayer = "application/vnd.oci.image.layer.v1.tar+gzip";

std::string sha256_of(const std::string& path) {
  Result r = run({"/usr/bin/sha256sum", path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return "sha256:" + r.out.substr(0, 64);
}

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

class RegistryBlobs : public RegistryFixture {
 protected:
  void SetUp() override {
    RegistryFixture::SetUp();
    if (IsSkipped()) return;
    tar = dir.path() + "/busybox.tar";
    make_busybox_tar(tar);
    diff_id = sha256_of(tar);
    ASSERT_EQ(run({"/bin/gzip", "-k", "-n", "-f", tar}).exit_code, 0);
    gz = tar + ".gz";
    gz_digest = sha256_of(gz);
    gz_size = slurp(gz).size();
  }

  // An OCI archive (built with /bin/tar) of one image tagged ref whose one
  // layer is the gzip'd busybox tar, as registries serve layers; label
  // makes configs (image IDs) differ.
  std::string oci_archive(const std::string& ref, const std::string& label) {
    std::string ad = dir.path() + "/oci-" + label;
    make_dirs(ad + "/blobs/sha256");
    EXPECT_EQ(run({"/bin/cp", gz, ad + "/blobs/sha256/" + gz_digest.substr(7)}).exit_code, 0);
    json config = {{"architecture", "amd64"},
                   {"os", "linux"},
                   {"config", {{"Cmd", {"sh"}}, {"Labels", {{"which", label}}}}},
                   {"rootfs", {{"type", "layers"}, {"diff_ids", {diff_id}}}}};
    std::string config_bytes = config.dump();
    std::string config_digest = sha256_of(dir.write("config-" + label, config_bytes));
    write_file_atomic(ad + "/blobs/sha256/" + config_digest.substr(7), config_bytes);
    json manifest = {{"schemaVersion", 2},
                     {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                     {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", config_digest}, {"size", config_bytes.size()}}},
                     {"layers", {{{"mediaType", kGzipLayer}, {"digest", gz_digest}, {"size", gz_size}}}}};
    std::string manifest_bytes = manifest.dump();
    std::string manifest_digest = sha256_of(dir.write("manifest-" + label, manifest_bytes));
    write_file_atomic(ad + "/blobs/sha256/" + manifest_digest.substr(7), manifest_bytes);
    json index = {{"schemaVersion", 2},
                  {"manifests",
                   {{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                     {"digest", manifest_digest},
                     {"size", manifest_bytes.size()},
                     {"annotations", {{"io.containerd.image.name", ref}}}}}}};
    write_file_atomic(ad + "/index.json", index.dump());
    write_file_atomic(ad + "/oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
    std::string out = dir.path() + "/oci-" + label + ".tar";
    Result r = run({"/bin/tar", "-C", ad, "-cf", out, "."});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return out;
  }

  // Loads the gzip-layer image as ref into a scratch root and pushes it: the
  // registry then holds the layer as gzip, as real registries do.
  void publish(const std::string& ref, const std::string& label) {
    std::string root = dir.path() + "/publisher";
    Result l = run_berth({"--root", root, "load", "-i", oci_archive(ref, label)});
    ASSERT_EQ(l.exit_code, 0) << l.out << l.err;
    Result p = run_berth({"--root", root, "push", ref});
    ASSERT_EQ(p.exit_code, 0) << p.out << p.err;
  }

  json layer_meta(const std::string& root, const std::string& id) {
    return json::parse(read_file(root + "/image/layers/" + id.substr(7) + "/meta.json"));
  }

  void expect_store_empty(const std::string& root) {
    EXPECT_EQ(berth::list_directory(root + "/image/blobs/sha256"), std::vector<std::string>{});
    EXPECT_EQ(berth::list_directory(root + "/image/layers"), std::vector<std::string>{});
    EXPECT_EQ(berth::list_directory(root + "/image/tmp"), std::vector<std::string>{});
  }

  // The records of layers a pull named before their trees were on the disk.
  std::vector<std::string> unsynced_records(const std::string& root) {
    std::vector<std::string> out;
    if (!path_exists(root + "/image/unsynced")) return out;
    for (auto& n : berth::list_directory(root + "/image/unsynced")) out.push_back(root + "/image/unsynced/" + n);
    return out;
  }

  // Publishes the gzip image as ref and pulls it into root; returns the one
  // record of unsynced layers the pull left ("" when it left none).
  std::string pull_leaving_a_record(const std::string& ref, const std::string& root) {
    publish(ref, "one");
    Result pull = run_berth({"--root", root, "pull", "-q", ref});
    EXPECT_EQ(pull.exit_code, 0) << pull.err;
    auto records = unsynced_records(root);
    EXPECT_EQ(records.size(), 1u);
    return records.size() == 1 ? records[0] : "";
  }

  // Makes a record look two minutes old.
  static void make_old(const std::string& path) {
    timespec old[2] = {{::time(nullptr) - 120, 0}, {::time(nullptr) - 120, 0}};
    EXPECT_EQ(::utimensat(AT_FDCWD, path.c_str(), old, 0), 0) << path;
  }

  // Makes the one record look as if an earlier boot had written it: the
  // machine stopped before the layer's files were known to be on the disk.
  void from_an_earlier_boot(const std::string& root) {
    auto records = unsynced_records(root);
    ASSERT_EQ(records.size(), 1u);
    json record = json::parse(read_file(records[0]));
    record["boot_id"] = "00000000-0000-4000-8000-000000000000";
    write_file_atomic(records[0], record.dump());
  }

  std::string tar, gz, diff_id, gz_digest;
  size_t gz_size = 0;
};

std::string this_boot() { return trim(read_file("/proc/sys/kernel/random/boot_id")); }

TEST_F(RegistryBlobs, LoadKeepsTheGzipLayerAndPushSendsItAsIs) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/gz:1";
  std::string root = dir.path() + "/root";
  Result l = run_berth({"--root", root, "load", "-i", oci_archive(ref, "one")});
  ASSERT_EQ(l.exit_code, 0) << l.err;
  // Loaded as it came: the gzip blob, no tar named by the DiffID.
  EXPECT_TRUE(path_exists(root + "/image/blobs/sha256/" + gz_digest.substr(7)));
  EXPECT_FALSE(path_exists(root + "/image/blobs/sha256/" + diff_id.substr(7)));
  EXPECT_EQ(berth::list_directory(root + "/image/tmp"), std::vector<std::string>{});
  ASSERT_EQ(run_berth({"--root", root, "push", ref}).exit_code, 0);
  Result m = run({"/usr/bin/curl", "-sf", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
                  "http://" + registry.address() + "/v2/berth/gz/manifests/1"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  json manifest = json::parse(m.out);
  EXPECT_EQ(manifest["layers"][0]["digest"], gz_digest) << m.out;
  EXPECT_EQ(manifest["layers"][0]["mediaType"], kGzipLayer) << m.out;
  EXPECT_EQ(manifest["layers"][0]["size"], gz_size) << m.out;
}

TEST_F(RegistryBlobs, PullStoresTheCompressedBlobAndNoTar) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/gz:1";
  publish(ref, "one");
  std::string root = dir.path() + "/root";
  Result pull = run_berth({"--root", root, "pull", "-q", ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  std::string blob = root + "/image/blobs/sha256/" + gz_digest.substr(7);
  ASSERT_TRUE(path_exists(blob));
  EXPECT_EQ(sha256_of(blob), gz_digest);
  EXPECT_FALSE(path_exists(root + "/image/blobs/sha256/" + diff_id.substr(7))) << "an uncompressed tar was stored";
  // The config and the gzip blob, nothing else.
  EXPECT_EQ(berth::list_directory(root + "/image/blobs/sha256").size(), 2u);
  EXPECT_EQ(berth::list_directory(root + "/image/tmp"), std::vector<std::string>{});
  json meta = layer_meta(root, diff_id);
  EXPECT_EQ(meta["diff_id"], diff_id);
  EXPECT_EQ(meta["blob"]["digest"], gz_digest);
  EXPECT_EQ(meta["blob"]["media_type"], kGzipLayer);
  EXPECT_EQ(meta["blob"]["size"], gz_size);
  EXPECT_EQ(meta["tar_size"], slurp(tar).size());
  // The layer is unpacked and the image runs from it.
  Result inspect = run_berth({"--root", root, "image", "inspect", ref});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  json j = json::parse(inspect.out)[0];
  EXPECT_EQ(j["RootFS"]["Layers"][0], diff_id);
  EXPECT_EQ(::access((j["GraphDriver"]["Data"]["LowerDir"].get<std::string>() + "/bin/busybox").c_str(), X_OK), 0);
}

TEST_F(RegistryBlobs, PushOfAPulledImageToAnotherRepoUploadsNoLayer) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/gz:1";
  publish(ref, "one");
  std::string root = dir.path() + "/root";
  ASSERT_EQ(run_berth({"--root", root, "pull", "-q", ref}).exit_code, 0);
  std::string other = registry.address() + "/berth/elsewhere:1";
  ASSERT_EQ(run_berth({"--root", root, "tag", ref, other}).exit_code, 0);
  std::string before = registry.log();
  Result push = run_berth({"--root", root, "push", other});
  ASSERT_EQ(push.exit_code, 0) << push.out << push.err;
  EXPECT_NE(push.out.find("Mounted from berth/gz"), std::string::npos) << push.out;
  std::string log = registry.log().substr(before.size());
  // The layer was mounted from berth/gz by its gzip digest; the only blob
  // uploaded is the config (one PUT, no PATCH).
  EXPECT_EQ(count(log, "\"POST /v2/berth/elsewhere/blobs/uploads/?mount=sha256%3A" + gz_digest.substr(7) + "&from=berth/gz"), 1) << log;
  EXPECT_EQ(count(log, "\"PUT /v2/berth/elsewhere/blobs/uploads/"), 1) << log;
  EXPECT_EQ(count(log, "\"PATCH /v2/berth/elsewhere/blobs/uploads/"), 0) << log;
  Result m = run({"/usr/bin/curl", "-sf", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
                  "http://" + registry.address() + "/v2/berth/elsewhere/manifests/1"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  EXPECT_EQ(json::parse(m.out)["layers"][0]["digest"], gz_digest) << m.out;
  // And it pulls back into a fresh root as the same image.
  std::string fresh = dir.path() + "/fresh";
  ASSERT_EQ(run_berth({"--root", fresh, "pull", "-q", other}).exit_code, 0);
  EXPECT_EQ(image_id(fresh, other), image_id(root, ref));
}

TEST_F(RegistryBlobs, SaveAfterPullLoadsBackWithTheSameDiffIds) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/gz:1";
  publish(ref, "one");
  std::string root = dir.path() + "/root";
  ASSERT_EQ(run_berth({"--root", root, "pull", "-q", ref}).exit_code, 0);
  std::string id = image_id(root, ref);

  // Docker format: the layer decompressed, named by its DiffID.
  std::string docker = dir.path() + "/saved-docker.tar";
  Result s = run_berth({"--root", root, "save", "-o", docker, ref});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  std::string x = dir.path() + "/x-docker";
  make_dirs(x);
  ASSERT_EQ(run({"/bin/tar", "-C", x, "-xf", docker}).exit_code, 0);
  json manifest = json::parse(read_file(x + "/manifest.json"));
  ASSERT_EQ(manifest[0]["Layers"][0], "blobs/sha256/" + diff_id.substr(7));
  EXPECT_EQ(sha256_of(x + "/blobs/sha256/" + diff_id.substr(7)), diff_id);

  // OCI format: the gzip blob as stored, with its media type.
  std::string oci = dir.path() + "/saved-oci.tar";
  ASSERT_EQ(run_berth({"--root", root, "save", "--format", "oci", "-o", oci, ref}).exit_code, 0);
  std::string y = dir.path() + "/x-oci";
  make_dirs(y);
  ASSERT_EQ(run({"/bin/tar", "-C", y, "-xf", oci}).exit_code, 0);
  json index = json::parse(read_file(y + "/index.json"));
  json m = json::parse(read_file(y + "/blobs/sha256/" + index["manifests"][0]["digest"].get<std::string>().substr(7)));
  EXPECT_EQ(m["layers"][0]["digest"], gz_digest);
  EXPECT_EQ(m["layers"][0]["mediaType"], kGzipLayer);
  EXPECT_EQ(sha256_of(y + "/blobs/sha256/" + gz_digest.substr(7)), gz_digest);
  if (::access("/usr/bin/skopeo", X_OK) == 0) {
    Result i = run({"/usr/bin/skopeo", "inspect", "oci-archive:" + oci});
    ASSERT_EQ(i.exit_code, 0) << i.err;
    EXPECT_EQ(json::parse(i.out)["Layers"][0], gz_digest) << i.out;
    Result c = run({"/usr/bin/skopeo", "inspect", "--config", "oci-archive:" + oci});
    ASSERT_EQ(c.exit_code, 0) << c.err;
    EXPECT_EQ(json::parse(c.out)["rootfs"]["diff_ids"][0], diff_id) << c.out;
  }

  for (const std::string& archive : {docker, oci}) {
    SCOPED_TRACE(archive);
    TempDir fresh;
    Result l = run_berth({"--root", fresh.path(), "load", "-i", archive});
    ASSERT_EQ(l.exit_code, 0) << l.err;
    EXPECT_EQ(image_id(fresh.path(), ref), id);
    Result i = run_berth({"--root", fresh.path(), "image", "inspect", ref});
    ASSERT_EQ(i.exit_code, 0) << i.err;
    EXPECT_EQ(json::parse(i.out)[0]["RootFS"]["Layers"], json::array({diff_id}));
  }
}

TEST_F(RegistryBlobs, SaveOfADamagedBlobFailsNamingTheLayerAndLeavesNoFile) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/gz:1";
  publish(ref, "one");
  std::string root = dir.path() + "/root";
  ASSERT_EQ(run_berth({"--root", root, "pull", "-q", ref}).exit_code, 0);
  // A valid gzip stream of other content in place of the stored blob: it
  // decompresses fine, to the wrong DiffID.
  std::string other_dir = dir.path() + "/other";
  make_dirs(other_dir);
  write_file_atomic(other_dir + "/file", "not busybox\n");
  std::string other = dir.path() + "/other.tar";
  ASSERT_EQ(run({"/bin/tar", "-C", other_dir, "-cf", other, "."}).exit_code, 0);
  ASSERT_EQ(run({"/bin/sh", "-c", "gzip -nc '" + other + "' > '" + root + "/image/blobs/sha256/" + gz_digest.substr(7) + "'"}).exit_code, 0);
  std::string out = dir.path() + "/out.tar";
  Result s = run_berth({"--root", root, "save", "-o", out, ref});
  EXPECT_NE(s.exit_code, 0);
  EXPECT_NE(s.err.find("layer " + diff_id), std::string::npos) << s.err;
  EXPECT_FALSE(path_exists(out));
  for (auto& name : berth::list_directory(dir.path())) EXPECT_EQ(name.find("out.tar"), std::string::npos) << name;
}

TEST_F(RegistryBlobs, ImagesSharingALayerShareItsBlobAndRmiEmptiesTheStore) {
  RegistryServer registry;
  std::string one = registry.address() + "/berth/gz:1", two = registry.address() + "/berth/gz:2";
  publish(one, "one");
  publish(two, "two");
  std::string root = dir.path() + "/root";
  ASSERT_EQ(run_berth({"--root", root, "pull", "-q", one}).exit_code, 0);
  ASSERT_EQ(run_berth({"--root", root, "pull", "-q", two}).exit_code, 0);
  ASSERT_NE(image_id(root, one), image_id(root, two));
  // Two configs and one gzip blob.
  EXPECT_EQ(berth::list_directory(root + "/image/blobs/sha256").size(), 3u);
  EXPECT_EQ(berth::list_directory(root + "/image/layers").size(), 1u);
  Result rm1 = run_berth({"--root", root, "rmi", one});
  ASSERT_EQ(rm1.exit_code, 0) << rm1.err;
  EXPECT_TRUE(path_exists(root + "/image/blobs/sha256/" + gz_digest.substr(7)));
  // The remaining image still saves (its blob decompresses to its DiffID).
  Result s = run_berth({"--root", root, "save", "-o", dir.path() + "/two.tar", two});
  EXPECT_EQ(s.exit_code, 0) << s.err;
  Result rm2 = run_berth({"--root", root, "rmi", two});
  ASSERT_EQ(rm2.exit_code, 0) << rm2.err;
  expect_store_empty(root);
}

TEST_F(RegistryBlobs, RmiAfterPullLeavesAnEmptyStore) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/gz:1";
  publish(ref, "one");
  std::string root = dir.path() + "/root";
  ASSERT_EQ(run_berth({"--root", root, "pull", "-q", ref}).exit_code, 0);
  Result rm = run_berth({"--root", root, "rmi", ref});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  expect_store_empty(root);
}

// A layer as older berth stored it: meta.json without "blob", the
// uncompressed tar as the blob named by the DiffID.
TEST_F(RegistryBlobs, OldFormatLayerStillSavesPushesAndIsRemoved) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/old:1";
  std::string root = dir.path() + "/root";
  std::string id = import_busybox(root, ref);
  ASSERT_FALSE(id.empty());
  std::string meta_path = root + "/image/layers/" + diff_id.substr(7) + "/meta.json";
  json meta = json::parse(read_file(meta_path));
  meta.erase("blob");
  write_file_atomic(meta_path, meta.dump() + "\n");
  ASSERT_TRUE(path_exists(root + "/image/blobs/sha256/" + diff_id.substr(7)));

  std::string archive = dir.path() + "/old.tar";
  Result s = run_berth({"--root", root, "save", "-o", archive, ref});
  ASSERT_EQ(s.exit_code, 0) << s.err;
  TempDir loaded;
  ASSERT_EQ(run_berth({"--root", loaded.path(), "load", "-i", archive}).exit_code, 0);
  EXPECT_EQ(image_id(loaded.path(), ref), id);

  Result p = run_berth({"--root", root, "push", ref});
  ASSERT_EQ(p.exit_code, 0) << p.out << p.err;
  Result m = run({"/usr/bin/curl", "-sf", "-H", "Accept: application/vnd.oci.image.manifest.v1+json",
                  "http://" + registry.address() + "/v2/berth/old/manifests/1"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  json manifest = json::parse(m.out);
  EXPECT_EQ(manifest["layers"][0]["digest"], diff_id);
  EXPECT_EQ(manifest["layers"][0]["mediaType"], "application/vnd.oci.image.layer.v1.tar");
  std::string fresh = dir.path() + "/fresh";
  ASSERT_EQ(run_berth({"--root", fresh, "pull", "-q", ref}).exit_code, 0);
  EXPECT_EQ(image_id(fresh, ref), id);

  Result rm = run_berth({"--root", root, "rmi", ref});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  expect_store_empty(root);
}

// A pull makes each blob durable and leaves the unpacked files to the
// kernel's writeback, recording the layer as unsynced first. After a crash
// (the record of an earlier boot), the first command that may mount the
// layer unpacks it again from its blob, so torn files never reach a container.
TEST_F(RegistryBlobs, APulledLayerTornByACrashIsRebuiltFromItsBlobBeforeAnyContainerMountsIt) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/gz:1";
  std::string root = dir.path() + "/root", run_root = dir.path() + "/run";
  std::string path = pull_leaving_a_record(ref, root);
  ASSERT_FALSE(path.empty());
  json record = json::parse(read_file(path));
  EXPECT_EQ(record["boot_id"], this_boot());
  ASSERT_EQ(record["layers"].size(), 1u) << record.dump();
  EXPECT_EQ(record["layers"][0]["diff_id"], diff_id);
  EXPECT_EQ(record["layers"][0]["blob"], gz_digest);
  // Reading commands leave it alone, as does one of this boot while it is young.
  ASSERT_EQ(run_berth({"--root", root, "images"}).exit_code, 0);
  ASSERT_EQ(run_berth({"--root", root, "tag", ref, registry.address() + "/berth/gz:young"}).exit_code, 0);
  EXPECT_EQ(unsynced_records(root).size(), 1u);

  // The power went before the files reached the disk: busybox and the
  // layer's meta.json came back empty, a symlink is gone.
  from_an_earlier_boot(root);
  std::string layer = root + "/image/layers/" + diff_id.substr(7);
  std::string busybox = layer + "/diff/bin/busybox";
  struct stat before {};
  ASSERT_EQ(::stat(busybox.c_str(), &before), 0);
  ASSERT_EQ(::truncate(busybox.c_str(), 0), 0);
  ASSERT_EQ(::truncate((layer + "/meta.json").c_str(), 0), 0);
  std::string removed;
  for (auto& n : berth::list_directory(layer + "/diff/bin"))
    if (n != "busybox") {
      removed = n;
      break;
    }
  ASSERT_FALSE(removed.empty());
  ASSERT_EQ(::unlink((layer + "/diff/bin/" + removed).c_str()), 0);
  // A reading command mounts no layer: it leaves the record and the tree as they are.
  ASSERT_EQ(run_berth({"--root", root, "images"}).exit_code, 0);
  EXPECT_EQ(unsynced_records(root).size(), 1u);
  EXPECT_FALSE(path_exists(layer + "/diff/bin/" + removed));

  Result ran = run_berth({"--root", root, "--run-root", run_root, "run", "--rm", "--network", "none", ref, "/bin/busybox", "echo", "whole again"});
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "whole again\n");
  EXPECT_NE(ran.err.find("unpacking it again from blob " + gz_digest), std::string::npos) << ran.err;
  struct stat after {};
  ASSERT_EQ(::stat(busybox.c_str(), &after), 0);
  EXPECT_EQ(after.st_size, before.st_size);
  EXPECT_TRUE(path_exists(layer + "/diff/bin/" + removed)) << removed;
  EXPECT_EQ(layer_meta(root, diff_id)["blob"]["digest"], gz_digest);
  EXPECT_EQ(layer_meta(root, diff_id)["tar_size"], slurp(tar).size());
  EXPECT_EQ(unsynced_records(root), std::vector<std::string>{});
  EXPECT_EQ(berth::list_directory(root + "/image/tmp"), std::vector<std::string>{});
  // Once is enough: the next command has nothing to do.
  Result again = run_berth({"--root", root, "--run-root", run_root, "run", "--rm", "--network", "none", ref, "/bin/busybox", "true"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.err.find("again from blob"), std::string::npos) << again.err;
}

// Of this boot, a record goes with the next syncfs of the store's
// filesystem: the one an import (or load, or commit) does anyway; other
// commands never syncfs. load's own layers are flushed before they are
// named and leave no record.
TEST_F(RegistryBlobs, AnUnsyncedLayerOfThisBootIsSettledByTheNextImportAndLoadLeavesNone) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/gz:1";
  std::string root = dir.path() + "/root";
  std::string record = pull_leaving_a_record(ref, root);
  ASSERT_FALSE(record.empty());
  EXPECT_EQ(unsynced_records(dir.path() + "/publisher"), std::vector<std::string>{}) << "load recorded unsynced layers";
  make_old(record);
  Result tag = run_berth({"--root", root, "tag", ref, registry.address() + "/berth/gz:other"});
  EXPECT_EQ(tag.exit_code, 0) << tag.err;
  EXPECT_EQ(unsynced_records(root).size(), 1u) << "a tag flushed the filesystem";
  make_dirs(dir.path() + "/other/etc");
  write_file_atomic(dir.path() + "/other/etc/other", "another layer\n");
  ASSERT_EQ(run({"/bin/tar", "-C", dir.path() + "/other", "-cf", dir.path() + "/other.tar", "."}).exit_code, 0);
  Result import = run_berth({"--root", root, "import", dir.path() + "/other.tar", "local/other:1"});
  EXPECT_EQ(import.exit_code, 0) << import.err;
  EXPECT_EQ(unsynced_records(root), std::vector<std::string>{});
  EXPECT_EQ(import.err.find("again from blob"), std::string::npos) << import.err;
  EXPECT_EQ(::access((root + "/image/layers/" + diff_id.substr(7) + "/diff/bin/busybox").c_str(), X_OK), 0);
}

// serve settles records old enough for the kernel to have written the
// files back, off its loop, and all of them when it stops (often, the
// machine is shutting down).
TEST_F(RegistryBlobs, ServeSettlesUnsyncedLayersNowAndThenAndAllWhenItStops) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/gz:1";
  std::string root = dir.path() + "/root", run_root = dir.path() + "/run";
  std::string record = pull_leaving_a_record(ref, root);
  ASSERT_FALSE(record.empty());
  std::string young = root + "/image/unsynced/young.json";
  write_file_atomic(young, read_file(record));
  make_old(record);
  std::string log = dir.path() + "/serve.log";
  pid_t serve = ::fork();
  ASSERT_GE(serve, 0);
  if (serve == 0) {
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execl(berth_binary().c_str(), "berth", "--root", root.c_str(), "--run-root", run_root.c_str(), "serve", "--resync-interval", "200",
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  bool settled = false;
  for (int i = 0; i < 200 && !settled; ++i) {
    settled = !path_exists(record);
    if (!settled) ::usleep(50000);
  }
  std::string serve_log;
  EXPECT_TRUE(settled) << (read_file_if_exists(log, serve_log), serve_log);
  EXPECT_TRUE(path_exists(young)) << "a young record was settled before serve stopped";
  ::kill(serve, SIGTERM);
  int status = 0;
  ASSERT_EQ(::waitpid(serve, &status, 0), serve);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  EXPECT_EQ(unsynced_records(root), std::vector<std::string>{}) << (read_file_if_exists(log, serve_log), serve_log);
}

// After a crash, a layer with nothing to rebuild it from goes, rather than
// be mounted torn; pulling its image again brings it back.
TEST_F(RegistryBlobs, ATornLayerWhoseBlobIsGoneIsRemovedAndAPullBringsItBack) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/gz:1";
  std::string root = dir.path() + "/root", run_root = dir.path() + "/run";
  ASSERT_FALSE(pull_leaving_a_record(ref, root).empty());
  from_an_earlier_boot(root);
  ASSERT_EQ(::unlink((root + "/image/blobs/sha256/" + gz_digest.substr(7)).c_str()), 0);
  Result tag = run_berth({"--root", root, "tag", ref, registry.address() + "/berth/gz:other"});
  EXPECT_EQ(tag.exit_code, 0) << tag.err;
  EXPECT_NE(tag.err.find("its blob " + gz_digest + " is gone"), std::string::npos) << tag.err;
  EXPECT_FALSE(path_exists(root + "/image/layers/" + diff_id.substr(7)));
  EXPECT_EQ(unsynced_records(root), std::vector<std::string>{});
  Result pull = run_berth({"--root", root, "pull", "-q", ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  Result ran = run_berth({"--root", root, "--run-root", run_root, "run", "--rm", "--network", "none", ref, "/bin/busybox", "echo", "back"});
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "back\n");
}

// After a crash, a blob that no longer matches its digest cannot rebuild
// the layer: the layer goes, as when the blob is gone.
TEST_F(RegistryBlobs, ATornLayerWhoseBlobIsDamagedIsRemovedNotMounted) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/gz:1";
  std::string root = dir.path() + "/root";
  ASSERT_FALSE(pull_leaving_a_record(ref, root).empty());
  from_an_earlier_boot(root);
  std::string blob = root + "/image/blobs/sha256/" + gz_digest.substr(7);
  std::string bytes = read_file(blob);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x5a);
  write_file_atomic(blob, bytes);
  Result tag = run_berth({"--root", root, "tag", ref, registry.address() + "/berth/gz:other"});
  EXPECT_EQ(tag.exit_code, 0) << tag.err;
  EXPECT_NE(tag.err.find("cannot rebuild layer " + diff_id), std::string::npos) << tag.err;
  EXPECT_FALSE(path_exists(root + "/image/layers/" + diff_id.substr(7)));
  EXPECT_EQ(unsynced_records(root), std::vector<std::string>{});
  EXPECT_EQ(berth::list_directory(root + "/image/tmp"), std::vector<std::string>{});
}

// A file in image/unsynced that is not a record berth wrote is named in a
// warning and left as it is; the command goes on.
TEST_F(RegistryBlobs, AMalformedUnsyncedRecordIsNamedAndLeftAlone) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/gz:1";
  std::string root = dir.path() + "/root";
  ASSERT_FALSE(pull_leaving_a_record(ref, root).empty());
  std::string bad = root + "/image/unsynced/bad.json";
  write_file_atomic(bad, "{\"boot_id\": 7");
  Result tag = run_berth({"--root", root, "tag", ref, registry.address() + "/berth/gz:other"});
  EXPECT_EQ(tag.exit_code, 0) << tag.err;
  EXPECT_NE(tag.err.find(bad + ": not a record of unsynced layers"), std::string::npos) << tag.err;
  EXPECT_EQ(read_file(bad), "{\"boot_id\": 7");
  EXPECT_EQ(unsynced_records(root).size(), 2u);
  EXPECT_EQ(::access((root + "/image/layers/" + diff_id.substr(7) + "/diff/bin/busybox").c_str(), X_OK), 0);
}

}  // namespace
}  // namespace berth::test
