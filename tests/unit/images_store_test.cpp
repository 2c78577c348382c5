// The store: shared layers, reference counting by images and holders, and
// loads that verify digests and leave nothing behind when they fail.
#include <fcntl.h>
#include <sys/stat.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <functional>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/fs.h"
#include "images/digest.h"
#include "images/images.h"
#include "images/tar_writer.h"
#include "tests/support/run.h"

using berth::Error;
using berth::UniqueFd;
using berth::images::Store;
using berth::images::TarWriter;
using berth::test::TempDir;

namespace {

struct Layer {
  std::string path;
  std::string diff_id;
};

Layer make_layer(const TempDir& dir, const std::string& name, const std::function<void(TarWriter&)>& fill) {
  Layer l;
  l.path = dir.path() + "/" + name;
  {
    UniqueFd fd(::open(l.path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    TarWriter t(fd.get());
    fill(t);
    t.finish();
  }
  l.diff_id = berth::images::sha256_file(l.path);
  return l;
}

struct ImageSpec {
  std::vector<Layer> layers;
  std::vector<std::string> tags;
  std::string cmd = "sh";
  std::vector<std::string> diff_id_override = {};  // to forge a mismatch
};

// A docker-save style archive written by hand.
std::string make_docker_archive(const TempDir& dir, const std::string& name, const std::vector<ImageSpec>& images) {
  std::string path = dir.path() + "/" + name;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  TarWriter t(fd.get());
  nlohmann::json manifest = nlohmann::json::array();
  int n = 0;
  for (auto& img : images) {
    nlohmann::json diff_ids = nlohmann::json::array(), layer_names = nlohmann::json::array();
    for (size_t i = 0; i < img.layers.size(); ++i) {
      std::string lname = "layer" + std::to_string(n) + "-" + std::to_string(i) + ".tar";
      t.add_bytes(lname, berth::read_file(img.layers[i].path));
      layer_names.push_back(lname);
      diff_ids.push_back(i < img.diff_id_override.size() ? img.diff_id_override[i] : img.layers[i].diff_id);
    }
    nlohmann::json config = {{"architecture", "amd64"},
                             {"os", "linux"},
                             {"created", "2024-01-02T03:04:05Z"},
                             {"config", {{"Cmd", {img.cmd}}}},
                             {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
    std::string cname = "config" + std::to_string(n++) + ".json";
    t.add_bytes(cname, config.dump());
    manifest.push_back({{"Config", cname}, {"RepoTags", img.tags}, {"Layers", layer_names}});
  }
  t.add_bytes("manifest.json", manifest.dump());
  t.finish();
  return path;
}

berth::images::LoadResult load(Store& store, const std::string& archive) {
  UniqueFd fd(::open(archive.c_str(), O_RDONLY | O_CLOEXEC));
  return store.load(fd.get());
}

class ImagesStore : public ::testing::Test {
 protected:
  TempDir dir;
  std::string root = dir.path() + "/root";
  Layer base = make_layer(dir, "base.tar", [](TarWriter& t) {
    t.add_entry("etc/", '5', 0755);
    t.add_entry("etc/os-release", '0', 0644, "base\n");
  });
  Layer app = make_layer(dir, "app.tar", [](TarWriter& t) { t.add_entry("app", '0', 0755, "app\n"); });
  Layer web = make_layer(dir, "web.tar", [](TarWriter& t) { t.add_entry("web", '0', 0755, "web\n"); });

  void expect_empty_store() {
    EXPECT_TRUE(berth::list_directory(root + "/image/blobs/sha256").empty());
    EXPECT_TRUE(berth::list_directory(root + "/image/layers").empty());
    EXPECT_TRUE(berth::list_directory(root + "/image/tmp").empty());
  }
};

}  // namespace

TEST_F(ImagesStore, SharedLayersAreStoredOnceAndFreedWithTheLastImage) {
  Store store(root);
  auto result = load(store, make_docker_archive(dir, "two.tar", {{{base, app}, {"app:1"}}, {{base, web}, {"web:1"}, "web"}}));
  EXPECT_EQ(result.tagged, (std::vector<std::string>{"app:1", "web:1"}));
  EXPECT_EQ(berth::list_directory(root + "/image/layers").size(), 3u);
  auto dirs = store.layer_dirs("app:1");
  ASSERT_EQ(dirs.size(), 2u);
  EXPECT_TRUE(berth::path_exists(dirs[0] + "/app")) << "top-most layer first";
  EXPECT_TRUE(berth::path_exists(dirs[1] + "/etc/os-release"));

  auto removed = store.remove("app:1", false);
  EXPECT_EQ(removed.untagged, (std::vector<std::string>{"app:1"}));
  EXPECT_EQ(berth::list_directory(root + "/image/layers").size(), 2u) << "the shared base stays for web:1";
  EXPECT_TRUE(berth::path_exists(store.layer_dirs("web:1")[1] + "/etc/os-release"));
  store.remove("web:1", false);
  expect_empty_store();
  EXPECT_TRUE(store.list().empty());
}

TEST_F(ImagesStore, HolderKeepsImageAndLayersUntilReleased) {
  Store store(root);
  load(store, make_docker_archive(dir, "one.tar", {{{base, app}, {"app:1"}}}));
  std::string id = store.acquire("app:1", "container-1");
  EXPECT_THROW(store.remove("app:1", false), Error);
  EXPECT_THROW(store.remove(id, false), Error);
  auto forced = store.remove("app:1", true);
  EXPECT_EQ(forced.untagged, (std::vector<std::string>{"app:1"}));
  EXPECT_TRUE(forced.deleted.empty()) << "a held image is untagged, never freed";
  EXPECT_EQ(store.layer_dirs(id).size(), 2u);
  EXPECT_TRUE(berth::path_exists(store.layer_dirs(id)[0] + "/app"));
  EXPECT_TRUE(store.prune(true).deleted.empty());
  store.release("container-1");
  store.release("container-1");  // releasing twice is harmless
  auto pruned = store.prune(false);
  EXPECT_EQ(pruned.deleted.front(), id);
  expect_empty_store();
}

// A hold is an empty file: taking and dropping one never rewrites the
// index. Holds an older berth kept in index.json still count until released.
TEST_F(ImagesStore, HoldsAreFilesAndIndexHoldsStillCount) {
  Store store(root);
  load(store, make_docker_archive(dir, "one.tar", {{{base, app}, {"app:1"}}, {{base, web}, {"web:1"}}}));
  struct stat before {}, after {};
  ASSERT_EQ(::stat((root + "/image/index.json").c_str(), &before), 0);
  std::string id = store.acquire("app:1", "c1");
  ASSERT_EQ(::stat((root + "/image/index.json").c_str(), &after), 0);
  EXPECT_EQ(before.st_ino, after.st_ino) << "acquire rewrote index.json";
  EXPECT_EQ(berth::list_directory(root + "/image/holds"), (std::vector<std::string>{"c1." + id.substr(7)}));
  struct stat hold {};
  ASSERT_EQ(::stat((root + "/image/holds/c1." + id.substr(7)).c_str(), &hold), 0);
  EXPECT_EQ(hold.st_size, 0);
  EXPECT_EQ(store.summary("app:1").holders, (std::vector<std::string>{"c1"}));
  // Holding another image moves the hold.
  std::string web_id = store.acquire("web:1", "c1");
  EXPECT_TRUE(store.summary("app:1").holders.empty());
  EXPECT_EQ(store.summary("web:1").holders, (std::vector<std::string>{"c1"}));
  EXPECT_THROW(store.acquire("web:1", "../x"), Error);
  EXPECT_THROW(store.acquire("no-such:1", "c2"), Error);

  // A hold in index.json, as an older berth wrote it.
  auto j = nlohmann::json::parse(berth::read_file(root + "/image/index.json"));
  j["holders"] = {{"old", id}};
  berth::write_file_atomic(root + "/image/index.json", j.dump(), 0600);
  EXPECT_EQ(store.summary("app:1").holders, (std::vector<std::string>{"old"}));
  EXPECT_THROW(store.remove("app:1", false), Error);
  store.release("old");
  EXPECT_TRUE(nlohmann::json::parse(berth::read_file(root + "/image/index.json"))["holders"].empty());
  store.release("c1");
  EXPECT_TRUE(berth::list_directory(root + "/image/holds").empty());
  EXPECT_EQ(store.remove("app:1", false).deleted.front(), id);
  EXPECT_EQ(store.remove("web:1", false).deleted.front(), web_id);
  expect_empty_store();
}

TEST_F(ImagesStore, IdTaggedInSeveralRepositoriesNeedsForce) {
  Store store(root);
  load(store, make_docker_archive(dir, "one.tar", {{{base}, {"a:1"}}}));
  store.tag("a:1", "a:2");
  std::string id = store.resolve("a:1");
  EXPECT_EQ(store.resolve(id.substr(7, 6)), id) << "unique ID prefix";
  store.tag("a:1", "other/b:x");
  EXPECT_EQ(store.summary(id).repo_tags.size(), 3u);
  try {
    store.remove(id, false);
    ADD_FAILURE() << "removed an image referenced in several repositories";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("must be forced"), std::string::npos) << e.what();
  }
  // Removing one of several tags only untags.
  auto r = store.remove("a:2", false);
  EXPECT_EQ(r.untagged, (std::vector<std::string>{"a:2"}));
  EXPECT_TRUE(r.deleted.empty());
  r = store.remove(id, true);
  EXPECT_EQ(r.untagged.size(), 2u);
  EXPECT_EQ(r.deleted.front(), id);
  expect_empty_store();
}

TEST_F(ImagesStore, DiffIdMismatchLeavesStoreUnchanged) {
  Store store(root);
  std::string forged = berth::images::sha256_digest("something else");
  try {
    load(store, make_docker_archive(dir, "bad.tar", {{{base, app}, {"bad:1"}, "sh", {base.diff_id, forged}}}));
    ADD_FAILURE() << "a layer with the wrong DiffID was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(forged), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mismatch"), std::string::npos) << e.what();
  }
  expect_empty_store();
  EXPECT_TRUE(store.list().empty());
}

TEST_F(ImagesStore, LayerFromTarThenCreateImage) {
  Store store(root);
  UniqueFd fd(::open(app.path.c_str(), O_RDONLY | O_CLOEXEC));
  std::string diff_id = store.add_layer_from_tar(fd.get());
  EXPECT_EQ(diff_id, app.diff_id);
  // A pending layer survives garbage collection by an unrelated rmi.
  load(store, make_docker_archive(dir, "one.tar", {{{web}, {"web:1"}}}));
  store.remove("web:1", false);
  EXPECT_EQ(berth::list_directory(root + "/image/layers").size(), 1u);
  std::string id = store.create_image({{"architecture", "amd64"}, {"os", "linux"}, {"config", {{"Cmd", {"app"}}}}}, {diff_id},
                                      berth::images::parse_reference("committed:1"));
  EXPECT_THROW(store.resolve("committed"), Error) << "\"committed\" means committed:latest";
  EXPECT_EQ(store.resolve("committed:1"), id);
  auto config = nlohmann::json::parse(store.config_bytes(id));
  EXPECT_EQ(config["rootfs"]["diff_ids"][0], diff_id);
  EXPECT_EQ(berth::images::sha256_digest(store.config_bytes(id)), id);
  EXPECT_THROW(store.create_image({}, {berth::images::sha256_digest("nope")}), Error);
  store.remove("committed:1", false);
  expect_empty_store();
}

TEST_F(ImagesStore, SaveThenLoadKeepsIdsAndDiffIds) {
  Store store(root);
  load(store, make_docker_archive(dir, "two.tar", {{{base, app}, {"app:1"}}, {{base, web}, {"web:1"}, "web"}}));
  for (auto format : {berth::images::ArchiveFormat::Docker, berth::images::ArchiveFormat::Oci}) {
    std::string out = dir.path() + "/saved.tar";
    {
      UniqueFd fd(::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      store.save({"app:1", "web:1"}, format, fd.get());
    }
    TempDir other;
    Store copy(other.path());
    auto r = load(copy, out);
    EXPECT_EQ(r.tagged.size(), 2u);
    for (const char* name : {"app:1", "web:1"}) {
      EXPECT_EQ(copy.resolve(name), store.resolve(name));
      EXPECT_EQ(copy.summary(name).diff_ids, store.summary(name).diff_ids);
      EXPECT_EQ(copy.config_bytes(name), store.config_bytes(name));
    }
    EXPECT_EQ(berth::list_directory(other.path() + "/image/layers").size(), 3u);
  }
}
