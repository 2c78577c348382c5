// berth pull / push / login / logout against a real distribution registry
// (Debian's docker-registry) on 127.0.0.1, and against a tiny in-test server
// that serves a corrupted blob.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <map>
#include <random>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "tests/support/busybox.h"
#include "tests/support/http_server.h"
#include "tests/support/registry.h"
#include "tests/support/run.h"
#include "tests/support/ustar.h"
#include "tests/integration/registry_fixture.h"

namespace berth::test {
namespace {

std::string sha256_of_file(const std::string& path) {
  Result r = run({"/usr/bin/sha256sum", path});
  return "sha256:" + r.out.substr(0, 64);
}

class RegistryTest : public RegistryFixture {};

TEST_F(RegistryTest, PushThenPullIntoFreshRootKeepsImageId) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/busybox:1";
  std::string root1 = dir.path() + "/root1", root2 = dir.path() + "/root2";
  std::string id = import_busybox(root1, ref);
  ASSERT_FALSE(id.empty());

  Result push = run_berth({"--root", root1, "push", ref});
  ASSERT_EQ(push.exit_code, 0) << push.out << push.err;
  EXPECT_NE(push.out.find("The push refers to repository [" + registry.address() + "/berth/busybox]"), std::string::npos) << push.out;
  EXPECT_NE(push.out.find(": Pushed"), std::string::npos) << push.out;
  EXPECT_NE(push.out.find("1: digest: sha256:"), std::string::npos) << push.out;

  // Pushing again sends no layer.
  Result again = run_berth({"--root", root1, "push", ref});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.out.find("Layer already exists"), std::string::npos) << again.out;

  Result pull = run_berth({"--root", root2, "pull", ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  EXPECT_NE(pull.out.find(": Pull complete"), std::string::npos) << pull.out;
  EXPECT_NE(pull.out.find("Digest: sha256:"), std::string::npos) << pull.out;
  EXPECT_NE(pull.out.find("Status: Downloaded newer image for " + ref), std::string::npos) << pull.out;
  EXPECT_EQ(image_id(root2, ref), id);

  Result images = run_berth({"--root", root2, "images", "--no-trunc"});
  ASSERT_EQ(images.exit_code, 0) << images.err;
  EXPECT_NE(images.out.find(registry.address() + "/berth/busybox"), std::string::npos) << images.out;
  EXPECT_NE(images.out.find(id), std::string::npos) << images.out;

  // RepoDigests recorded, the same digest push reported.
  Result inspect = run_berth({"--root", root2, "image", "inspect", ref});
  auto j = nlohmann::json::parse(inspect.out)[0];
  ASSERT_EQ(j["RepoDigests"].size(), 1u) << inspect.out;
  std::string digest = push.out.substr(push.out.find("digest: ") + 8, 71);
  EXPECT_EQ(j["RepoDigests"][0].get<std::string>(), registry.address() + "/berth/busybox@" + digest);

  // A pulled image runs from its layers: the unpacked busybox is there.
  std::string lower = j["GraphDriver"]["Data"]["LowerDir"].get<std::string>();
  EXPECT_EQ(::access((lower + "/bin/busybox").c_str(), X_OK), 0) << lower;
}

TEST_F(RegistryTest, SecondPullTransfersNoBlob) {
  RegistryServer registry;
  std::string ref = registry.address() + "/berth/again:latest";
  std::string root1 = dir.path() + "/root1", root2 = dir.path() + "/root2";
  import_busybox(root1, ref);
  ASSERT_EQ(run_berth({"--root", root1, "push", ref}).exit_code, 0);
  Result first = run_berth({"--root", root2, "pull", ref});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  int after_first = registry.blob_gets();
  EXPECT_EQ(after_first, 2) << registry.log();  // config + one layer
  Result second = run_berth({"--root", root2, "pull", ref});
  ASSERT_EQ(second.exit_code, 0) << second.err;
  EXPECT_NE(second.out.find("Already exists"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("Status: Image is up to date for " + ref), std::string::npos) << second.out;
  EXPECT_EQ(registry.blob_gets(), after_first) << registry.log();
}

TEST_F(RegistryTest, PullOfMissingTagFailsAndStoresNothing) {
  RegistryServer registry;
  std::string root = dir.path() + "/root";
  Result r = run_berth({"--root", root, "pull", "-q", registry.address() + "/berth/nothing:nope"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("manifest for " + registry.address() + "/berth/nothing:nope not found"), std::string::npos) << r.err;
  Result images = run_berth({"--root", root, "images", "-q"});
  EXPECT_EQ(images.out, "");
}

// Serves fixed routes (path -> content type, body); everything else 404.

TEST_F(RegistryTest, CorruptedBlobIsRejectedAndNothingStored) {
  std::string tar = dir.path() + "/busybox.tar";
  make_busybox_tar(tar);
  std::string layer = slurp(tar);
  std::string layer_digest = sha256_of_file(tar);
  nlohmann::json config = {{"architecture", "amd64"},
                           {"os", "linux"},
                           {"config", nlohmann::json::object()},
                           {"rootfs", {{"type", "layers"}, {"diff_ids", {layer_digest}}}}};
  std::string config_bytes = config.dump();
  std::string config_path = dir.write("config.json", config_bytes);
  std::string config_digest = sha256_of_file(config_path);
  nlohmann::json manifest = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", config_digest}, {"size", config_bytes.size()}}},
      {"layers", {{{"mediaType", "application/vnd.oci.image.layer.v1.tar"}, {"digest", layer_digest}, {"size", layer.size()}}}}};
  std::string corrupted = layer;
  corrupted[corrupted.size() / 2] ^= 0x01;
  berth::test::HttpServer server(berth::test::static_routes({{"/v2/", {"application/json", "{}"}},
                        {"/v2/bad/image/manifests/1", {"application/vnd.oci.image.manifest.v1+json", manifest.dump()}},
                        {"/v2/bad/image/blobs/" + config_digest, {"application/octet-stream", config_bytes}},
                        {"/v2/bad/image/blobs/" + layer_digest, {"application/octet-stream", corrupted}}}));
  std::string root = dir.path() + "/root";
  Result r = run_berth({"--root", root, "pull", server.address() + "/bad/image:1"});
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("digest mismatch"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(layer_digest), std::string::npos) << r.err;
  Result images = run_berth({"--root", root, "images", "-q"});
  EXPECT_EQ(images.out, "");
  Result layers = run({"/usr/bin/find", root + "/image/layers", root + "/image/tmp", "-mindepth", "1"});
  EXPECT_EQ(layers.out, "") << layers.out;
}

TEST_F(RegistryTest, WrongBasicCredentialsFailClearly) {
  if (::access("/usr/bin/htpasswd", X_OK) != 0) GTEST_SKIP() << "htpasswd (apache2-utils) is not installed: cannot make a bcrypt htpasswd file";
  Result h = run({"/usr/bin/htpasswd", "-Bbn", "alice", "s3cret-pass"});
  ASSERT_EQ(h.exit_code, 0) << h.err;
  std::string htpasswd = dir.write("htpasswd", h.out);
  RegistryServer registry(htpasswd);
  std::string root = dir.path() + "/root";
  std::string ref = registry.address() + "/private/busybox:1";
  import_busybox(root, ref);

  // Anonymous: refused, and told to log in.
  Result anon = run_berth({"--root", root, "push", ref});
  EXPECT_NE(anon.exit_code, 0);
  EXPECT_NE(anon.err.find("requires authentication"), std::string::npos) << anon.err;
  EXPECT_NE(anon.err.find(registry.address()), std::string::npos) << anon.err;

  // Wrong password: a clear error, the password never shown, nothing saved.
  Result bad = run_berth({"--root", root, "login", "-u", "alice", "--password-stdin", registry.address()}, "wrong-pass\n");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("incorrect username or password"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("wrong-pass"), std::string::npos) << bad.err;
  EXPECT_NE(::access((root + "/config.json").c_str(), F_OK), 0);

  // Right password: saved docker-style, mode 0600; push and pull work.
  Result good = run_berth({"--root", root, "login", "-u", "alice", "--password-stdin", registry.address()}, "s3cret-pass\n");
  ASSERT_EQ(good.exit_code, 0) << good.err;
  EXPECT_NE(good.out.find("Login Succeeded"), std::string::npos);
  struct stat st {};
  ASSERT_EQ(::stat((root + "/config.json").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto config = nlohmann::json::parse(slurp(root + "/config.json"));
  EXPECT_EQ(config["auths"][registry.address()]["auth"], "YWxpY2U6czNjcmV0LXBhc3M=");  // base64("alice:s3cret-pass")
  Result push = run_berth({"--root", root, "push", ref});
  EXPECT_EQ(push.exit_code, 0) << push.err;
  EXPECT_EQ(push.err.find("s3cret-pass"), std::string::npos);

  // A stored wrong password: push names the user and the registry.
  config["auths"][registry.address()]["auth"] = "YWxpY2U6bm9wZQ==";  // alice:nope
  dir.write("root/config.json", config.dump());
  Result stale = run_berth({"--root", root, "pull", ref});
  EXPECT_NE(stale.exit_code, 0);
  EXPECT_NE(stale.err.find("refused the credentials of user \"alice\""), std::string::npos) << stale.err;

  Result out = run_berth({"--root", root, "logout", registry.address()});
  EXPECT_EQ(out.exit_code, 0) << out.err;
  EXPECT_EQ(nlohmann::json::parse(slurp(root + "/config.json"))["auths"].size(), 0u);
}

}  // namespace
}  // namespace berth::test

namespace berth::test {
namespace {

// A multi-platform index whose linux/amd64 entry has a gzip layer (digest of
// the .tar.gz, DiffID of the tar, as real registries serve them); the
// linux/arm64 entry's layer is absent, so picking it fails.
TEST_F(RegistryTest, PullsGzipLayerThroughIndexSelectingPlatform) {
  std::string tar = dir.path() + "/busybox.tar";
  make_busybox_tar(tar);
  std::string diff_id = sha256_of_file(tar);
  ASSERT_EQ(run({"/bin/gzip", "-k", "-f", tar}).exit_code, 0);
  std::string gz = slurp(tar + ".gz");
  std::string gz_digest = sha256_of_file(tar + ".gz");
  auto make = [&](const std::string& arch, const std::string& layer_digest, size_t layer_size, std::map<std::string, std::pair<std::string, std::string>>& routes) {
    nlohmann::json config = {{"architecture", arch}, {"os", "linux"}, {"config", nlohmann::json::object()},
                             {"rootfs", {{"type", "layers"}, {"diff_ids", {diff_id}}}}};
    std::string config_bytes = config.dump();
    std::string config_digest = sha256_of_file(dir.write("config-" + arch, config_bytes));
    nlohmann::json manifest = {
        {"schemaVersion", 2},
        {"mediaType", "application/vnd.docker.distribution.manifest.v2+json"},
        {"config", {{"mediaType", "application/vnd.docker.container.image.v1+json"}, {"digest", config_digest}, {"size", config_bytes.size()}}},
        {"layers", {{{"mediaType", "application/vnd.docker.image.rootfs.diff.tar.gzip"}, {"digest", layer_digest}, {"size", layer_size}}}}};
    std::string bytes = manifest.dump();
    std::string digest = sha256_of_file(dir.write("manifest-" + arch, bytes));
    routes["/v2/multi/image/manifests/" + digest] = {"application/vnd.docker.distribution.manifest.v2+json", bytes};
    routes["/v2/multi/image/blobs/" + config_digest] = {"application/octet-stream", config_bytes};
    return nlohmann::json{{"mediaType", "application/vnd.docker.distribution.manifest.v2+json"},
                          {"digest", digest},
                          {"size", bytes.size()},
                          {"platform", {{"os", "linux"}, {"architecture", arch}}}};
  };
  std::map<std::string, std::pair<std::string, std::string>> routes;
  std::string missing = "sha256:" + std::string(64, 'e');
  nlohmann::json index = {{"schemaVersion", 2},
                          {"mediaType", "application/vnd.docker.distribution.manifest.list.v2+json"},
                          {"manifests", {make("arm64", missing, 10, routes), make("amd64", gz_digest, gz.size(), routes)}}};
  routes["/v2/multi/image/manifests/2"] = {"application/vnd.docker.distribution.manifest.list.v2+json", index.dump()};
  routes["/v2/multi/image/blobs/" + gz_digest] = {"application/octet-stream", gz};
  berth::test::HttpServer server(berth::test::static_routes(routes));
  std::string ref = server.address() + "/multi/image:2";

  std::string arm_root = dir.path() + "/arm";
  Result arm = run_berth({"--root", arm_root, "pull", "--platform", "linux/arm64", ref});
  EXPECT_NE(arm.exit_code, 0);
  EXPECT_NE(arm.err.find(missing), std::string::npos) << arm.err;
  EXPECT_EQ(run_berth({"--root", arm_root, "images", "-q"}).out, "");

  Result none = run_berth({"--root", arm_root, "pull", "--platform", "linux/s390x", ref});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("no matching manifest for linux/s390x"), std::string::npos) << none.err;

  std::string root = dir.path() + "/root";
  Result pull = run_berth({"--root", root, "pull", ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  Result inspect = run_berth({"--root", root, "image", "inspect", ref});
  auto j = nlohmann::json::parse(inspect.out)[0];
  EXPECT_EQ(j["Architecture"], "amd64");
  EXPECT_EQ(j["RootFS"]["Layers"][0], diff_id);
  // The RepoDigest names the index, as docker records it.
  EXPECT_EQ(j["RepoDigests"][0].get<std::string>(), server.address() + "/multi/image@" + sha256_of_file(dir.write("index", index.dump())));
}


// An image served with fixed routes: each layer a blob (its bytes, media
// type) and its DiffID as the config lists it.
struct ServedLayer {
  std::string bytes;
  std::string media_type;
  std::string diff_id;
};
std::map<std::string, std::pair<std::string, std::string>> image_routes(const TempDir& dir, const std::string& repo,
                                                                      const std::vector<ServedLayer>& layers,
                                                                      std::string* config_digest_out = nullptr) {
  std::map<std::string, std::pair<std::string, std::string>> routes{{"/v2/", {"application/json", "{}"}}};
  nlohmann::json diff_ids = nlohmann::json::array(), descriptors = nlohmann::json::array();
  for (size_t i = 0; i < layers.size(); ++i) {
    std::string digest = sha256_of_file(dir.write(repo.substr(repo.rfind('/') + 1) + "-blob" + std::to_string(i), layers[i].bytes));
    routes["/v2/" + repo + "/blobs/" + digest] = {"application/octet-stream", layers[i].bytes};
    diff_ids.push_back(layers[i].diff_id);
    descriptors.push_back({{"mediaType", layers[i].media_type}, {"digest", digest}, {"size", layers[i].bytes.size()}});
  }
  nlohmann::json config = {{"architecture", "amd64"}, {"os", "linux"}, {"config", nlohmann::json::object()},
                           {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
  std::string config_bytes = config.dump();
  std::string config_digest = sha256_of_file(dir.write(repo.substr(repo.rfind('/') + 1) + "-config", config_bytes));
  routes["/v2/" + repo + "/blobs/" + config_digest] = {"application/octet-stream", config_bytes};
  nlohmann::json manifest = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", config_digest}, {"size", config_bytes.size()}}},
      {"layers", descriptors}};
  routes["/v2/" + repo + "/manifests/1"] = {"application/vnd.oci.image.manifest.v1+json", manifest.dump()};
  if (config_digest_out) *config_digest_out = config_digest;
  return routes;
}

// A tar (GNU tar, 512-byte records) of dir's entries `names`, and its DiffID.
std::pair<std::string, std::string> tar_of(const TempDir& dir, const std::string& src, const std::vector<std::string>& names,
                                           const std::string& out_name) {
  std::vector<std::string> argv{"/bin/tar", "--numeric-owner", "-b", "1", "-C", src, "-cf", dir.path() + "/" + out_name};
  argv.insert(argv.end(), names.begin(), names.end());
  Result r = run(argv);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return {slurp(dir.path() + "/" + out_name), sha256_of_file(dir.path() + "/" + out_name)};
}

// A layer blob is written to the store around the page cache in whole
// 256 KiB blocks, its last partial block through the page cache: a blob
// smaller than one block, one of exactly two blocks, and one of blocks and
// a tail are each kept byte for byte, with their media types, and unpacked.
TEST_F(RegistryTest, PullStoresBlobsOfEverySizeByteForByte) {
  std::string src = dir.path() + "/src";
  make_dirs(src);
  write_file_atomic(src + "/small", "a small layer\n");
  auto small = tar_of(dir, src, {"small"}, "small.tar");
  ASSERT_EQ(run({"/bin/gzip", "-n", "-k", "-f", dir.path() + "/small.tar"}).exit_code, 0);
  std::string small_gz = slurp(dir.path() + "/small.tar.gz");
  ASSERT_LT(small_gz.size(), 4096u);
  // header + 1021 blocks of data + the two end blocks: 2 x 256 KiB exactly.
  std::string exact_content;
  for (size_t i = 0; exact_content.size() < 1021 * 512; ++i) exact_content += std::to_string(i * 7919) + "\n";
  exact_content.resize(1021 * 512);
  write_file_atomic(src + "/exact", exact_content);
  auto exact = tar_of(dir, src, {"exact"}, "exact.tar");
  ASSERT_EQ(exact.first.size(), 512u << 10);
  std::string busybox = dir.path() + "/busybox.tar";
  make_busybox_tar(busybox);
  std::string busybox_diff_id = sha256_of_file(busybox);
  ASSERT_EQ(run({"/bin/gzip", "-n", "-k", "-f", busybox}).exit_code, 0);
  std::string busybox_gz = slurp(busybox + ".gz");
  ASSERT_GT(busybox_gz.size() % (256u << 10), 0u);
  ASSERT_GT(busybox_gz.size(), 256u << 10);

  const char* gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
  const char* plain = "application/vnd.oci.image.layer.v1.tar";
  std::vector<ServedLayer> layers{{small_gz, gzip, small.second}, {exact.first, plain, exact.second}, {busybox_gz, gzip, busybox_diff_id}};
  berth::test::HttpServer server(berth::test::static_routes(image_routes(dir, "sizes/image", layers)));
  std::string root = dir.path() + "/root";
  Result pull = run_berth({"--root", root, "pull", "-q", server.address() + "/sizes/image:1"});
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  for (auto& l : layers) {
    std::string blob_digest = sha256_of_file(dir.write("expected", l.bytes));
    std::string stored = root + "/image/blobs/sha256/" + blob_digest.substr(7);
    SCOPED_TRACE(l.diff_id + " blob " + blob_digest);
    ASSERT_EQ(::access(stored.c_str(), R_OK), 0);
    EXPECT_EQ(slurp(stored), l.bytes);
    auto meta = nlohmann::json::parse(slurp(root + "/image/layers/" + l.diff_id.substr(7) + "/meta.json"));
    EXPECT_EQ(meta["blob"]["digest"], blob_digest);
    EXPECT_EQ(meta["blob"]["size"], l.bytes.size());
    EXPECT_EQ(meta["blob"]["media_type"], l.media_type);
  }
  EXPECT_EQ(slurp(root + "/image/layers/" + small.second.substr(7) + "/diff/small"), "a small layer\n");
  EXPECT_EQ(slurp(root + "/image/layers/" + exact.second.substr(7) + "/diff/exact"), exact_content);
  EXPECT_EQ(::access((root + "/image/layers/" + busybox_diff_id.substr(7) + "/diff/bin/busybox").c_str(), X_OK), 0);
}

// A failed pull into root stored nothing: no image, no layer, no blob
// and no work dir (empty directories aside).
void expect_nothing_stored(const std::string& root) {
  EXPECT_EQ(run_berth({"--root", root, "images", "-q"}).out, "");
  Result left = run({"/usr/bin/find", root + "/image/layers", root + "/image/tmp", root + "/image/blobs", "-mindepth", "1", "-not", "-type", "d"});
  EXPECT_EQ(left.out, "") << left.out;
  Result dirs = run({"/usr/bin/find", root + "/image/layers", root + "/image/tmp", "-mindepth", "1"});
  EXPECT_EQ(dirs.out, "") << dirs.out;
}

// A layer whose content does not hash to the DiffID the config lists is
// refused and nothing is stored, whether it is the image's one layer (its
// tar hashed on a thread of its own) or one of several unpacked at once
// (each hashed by its unpack thread).
TEST_F(RegistryTest, WrongDiffIdIsRejectedAndNothingStored) {
  std::string src = dir.path() + "/src";
  make_dirs(src);
  write_file_atomic(src + "/one", "layer one\n");
  write_file_atomic(src + "/two", std::string(300000, 'x'));
  auto one = tar_of(dir, src, {"one"}, "one.tar");
  auto two = tar_of(dir, src, {"two"}, "two.tar");
  ASSERT_EQ(run({"/bin/gzip", "-n", "-k", "-f", dir.path() + "/two.tar"}).exit_code, 0);
  std::string two_gz = slurp(dir.path() + "/two.tar.gz");
  std::string wrong = "sha256:" + std::string(64, 'b');
  const char* gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
  const char* plain = "application/vnd.oci.image.layer.v1.tar";
  struct Case {
    std::string repo;
    std::vector<ServedLayer> layers;
  };
  std::vector<Case> cases{{"lone/image", {{two_gz, gzip, wrong}}},
                          {"several/image", {{one.first, plain, one.second}, {two_gz, gzip, wrong}}}};
  for (auto& c : cases) {
    SCOPED_TRACE(c.repo);
    berth::test::HttpServer server(berth::test::static_routes(image_routes(dir, c.repo, c.layers)));
    std::string root = dir.path() + "/root-" + c.repo.substr(0, c.repo.find('/'));
    Result r = run_berth({"--root", root, "pull", "-q", server.address() + "/" + c.repo + ":1"});
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_NE(r.err.find("DiffID mismatch"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(wrong), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(two.second), std::string::npos) << r.err;  // the digest the content has
    expect_nothing_stored(root);
  }
}

// A layer the unpack refuses (an entry escaping it with "..") fails the
// pull naming the entry, whether the refusal comes while the download is
// still held back by the unpack (the entry first, then far more than the
// download may run ahead) or after the download has ended (the entry
// last); nothing is stored either way.
TEST_F(RegistryTest, ALayerTheUnpackRefusesStopsItsDownloadAndNothingIsStored) {
  std::string big(8u << 20, 'b');
  struct Case {
    std::string repo;
    std::vector<TarEntry> entries;
  };
  std::vector<Case> cases{{"first/image", {{"../escaped", '0', "pwned"}, {"big", '0', big}}},
                          {"last/image", {{"big", '0', big}, {"../escaped", '0', "pwned"}}}};
  for (auto& c : cases) {
    SCOPED_TRACE(c.repo);
    std::string layer = ustar(c.entries);
    std::string diff_id = sha256_of_file(dir.write(c.repo.substr(0, c.repo.find('/')) + ".tar", layer));
    berth::test::HttpServer server(
        berth::test::static_routes(image_routes(dir, c.repo, {{layer, "application/vnd.oci.image.layer.v1.tar", diff_id}})));
    std::string root = dir.path() + "/root-" + c.repo.substr(0, c.repo.find('/'));
    Result r = run_berth({"--root", root, "pull", "-q", server.address() + "/" + c.repo + ":1"});
    EXPECT_NE(r.exit_code, 0) << r.out;
    EXPECT_NE(r.err.find("../escaped"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("escapes the layer"), std::string::npos) << r.err;
    expect_nothing_stored(root);
  }
}

// A store whose filesystem fills up during a pull (the layer's blob and
// tree do not fit) fails the pull naming the layer and the cause, and
// leaves nothing behind: no image, no layer, no blob, no work dir.
TEST_F(RegistryTest, AFilesystemThatFillsUpFailsThePullNamingTheLayerAndLeavesNothing) {
  if (::geteuid() != 0) GTEST_SKIP() << "mounting a small tmpfs needs root";
  std::string content(8u << 20, '\0');
  std::mt19937_64 rng(11);
  for (size_t i = 0; i < content.size(); i += 8) {
    uint64_t v = rng();
    std::memcpy(&content[i], &v, 8);
  }
  std::string layer = ustar({{"big", '0', content}});
  std::string diff_id = sha256_of_file(dir.write("full.tar", layer));
  berth::test::HttpServer server(
      berth::test::static_routes(image_routes(dir, "full/image", {{layer, "application/vnd.oci.image.layer.v1.tar", diff_id}})));
  std::string small = dir.path() + "/small";
  make_dirs(small);
  ASSERT_EQ(::mount("tmpfs", small.c_str(), "tmpfs", 0, "size=4m"), 0) << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{small};
  std::string root = small + "/root";
  Result r = run_berth({"--root", root, "pull", "-q", server.address() + "/full/image:1"});
  EXPECT_NE(r.exit_code, 0) << r.out;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(diff_id), std::string::npos) << r.err;
  expect_nothing_stored(root);
  Result left = run({"/usr/bin/find", root + "/image", "-mindepth", "1", "-not", "-type", "d", "-not", "-name", "*.json", "-not", "-name", "lock"});
  EXPECT_EQ(left.out, "") << left.out;
}

// Under a pids limit (a container's, a CI runner's) a pull uses the threads
// it can get: a layer that finds none for its blob writer and unpack waits
// for another layer's to end. With too few for even one layer (it needs 3
// tasks: itself, a blob writer and an unpack) it fails saying so and
// stores nothing: it neither crashes (a thread that could not start used
// to end the process) nor reports a misleading read error.
TEST_F(RegistryTest, APullUnderAPidsLimitUsesTheThreadsItCanGet) {
  if (!have_pids_cgroup()) GTEST_SKIP() << "needs root and the cgroup v1 pids controller";
  // Three layers of 100 small files each (enough to start the unpack's
  // file workers) and a big one (written around the page cache, by a
  // thread of its own when there is one).
  auto big = [](int l) {
    std::string data((2u << 20) + 3, '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 131 + static_cast<size_t>(l)) >> 3);
    return data;
  };
  std::vector<ServedLayer> layers;
  for (int l = 0; l < 3; ++l) {
    std::vector<TarEntry> entries{{"d" + std::to_string(l) + "/", '5'}};
    for (int f = 0; f < 100; ++f)
      entries.push_back({"d" + std::to_string(l) + "/f" + std::to_string(f), '0', std::string(static_cast<size_t>(100 + f), static_cast<char>('a' + l))});
    entries.push_back({"d" + std::to_string(l) + "/big", '0', big(l)});
    std::string tar = ustar(entries);
    layers.push_back({tar, "application/vnd.oci.image.layer.v1.tar", sha256_of_file(dir.write("pids" + std::to_string(l) + ".tar", tar))});
  }
  berth::test::HttpServer server(berth::test::static_routes(image_routes(dir, "pids/image", layers)));
  auto pull_with = [&](int max, const std::string& root) {
    return run_berth_with_pids_max(max, {"--root", root, "pull", "-q", server.address() + "/pids/image:1"});
  };
  for (int max : {1, 2}) {
    SCOPED_TRACE("pids.max " + std::to_string(max));
    std::string root = dir.path() + "/max" + std::to_string(max);
    Result refused = pull_with(max, root);
    EXPECT_EQ(refused.exit_code, 1) << refused.err;
    EXPECT_NE(refused.err.find("cannot start a thread"), std::string::npos) << refused.err;
    expect_nothing_stored(root);
  }
  for (int max : {3, 4, 64}) {
    SCOPED_TRACE("pids.max " + std::to_string(max));
    std::string roomy = dir.path() + "/max" + std::to_string(max);
    Result ok = pull_with(max, roomy);
    ASSERT_EQ(ok.exit_code, 0) << ok.err;
    for (size_t l = 0; l < 3; ++l) {
      std::string diff = roomy + "/image/layers/" + layers[l].diff_id.substr(7) + "/diff/d" + std::to_string(l);
      EXPECT_EQ(slurp(diff + "/f99"), std::string(199, static_cast<char>('a' + l)));
      EXPECT_TRUE(slurp(diff + "/big") == big(static_cast<int>(l))) << diff << "/big differs";
    }
  }
}

}  // namespace
}  // namespace berth::test
