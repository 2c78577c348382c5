// berth against registries as they are deployed: Debian's docker-registry
// behind Debian's nginx (TLS from a test CA, Basic auth), insecure, blocked
// and mirrored registries (registries.json), chunked upload and
// cross-repository mount on push, and a blob download resumed (Range) after
// the connection dropped. Every server listens on 127.0.0.1 only; names like
// registry.berth.test are pinned to it with BERTH_RESOLVE.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tests/support/busybox.h"
#include "tests/support/http_server.h"
#include "tests/support/registry.h"
#include "tests/support/run.h"
#include "tests/integration/registry_fixture.h"

namespace berth::test {
namespace {

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

class RegistryDeployTest : public RegistryFixture {
 protected:
  // registries.json in root.
  void registries(const std::string& root, const nlohmann::json& j) { dir.write(root.substr(dir.path().size() + 1) + "/registries.json", j.dump()); }
};

TEST_F(RegistryDeployTest, TlsRegistryBehindNginxWithBasicAuthTrustedThroughCertsD) {
  if (!have_nginx()) GTEST_SKIP() << "nginx or openssl is not installed (scripts/deps test)";
  if (::geteuid() != 0) GTEST_SKIP() << "running the pulled image needs root";
  RegistryServer backend;
  TlsProxy proxy(backend.address(), "registry.berth.test", "alice", "tls-s3cret");
  std::vector<std::string> env{proxy.resolve_env()};
  std::string root1 = dir.path() + "/root1", root2 = dir.path() + "/root2";
  std::string ref = proxy.address() + "/team/busybox:1";
  std::string id = import_busybox(root1, ref);

  // Not trusted yet: a TLS error that says where the CA goes.
  Result untrusted = run_berth({"--root", root1, "login", "-u", "alice", "--password-stdin", proxy.address()}, "tls-s3cret\n", env);
  EXPECT_NE(untrusted.exit_code, 0);
  EXPECT_NE(untrusted.err.find("TLS error talking to registry " + proxy.address()), std::string::npos) << untrusted.err;
  EXPECT_NE(untrusted.err.find(root1 + "/certs.d/" + proxy.address() + "/ca.crt"), std::string::npos) << untrusted.err;

  // The test CA in <root>/certs.d/<host:port>/ca.crt, as docker's certs.d.
  for (auto& root : {root1, root2}) dir.write(root.substr(dir.path().size() + 1) + "/certs.d/" + proxy.address() + "/ca.crt", slurp(proxy.ca_file()));

  Result anon = run_berth({"--root", root1, "push", ref}, "", env);
  EXPECT_NE(anon.exit_code, 0);
  EXPECT_NE(anon.err.find("requires authentication"), std::string::npos) << anon.err;

  Result bad = run_berth({"--root", root1, "login", "-u", "alice", "--password-stdin", proxy.address()}, "wrong\n", env);
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("incorrect username or password"), std::string::npos) << bad.err;
  EXPECT_EQ(bad.err.find("wrong"), std::string::npos) << bad.err;

  for (auto& root : {root1, root2}) {
    Result good = run_berth({"--root", root, "login", "-u", "alice", "--password-stdin", proxy.address()}, "tls-s3cret\n", env);
    ASSERT_EQ(good.exit_code, 0) << good.err;
  }
  Result push = run_berth({"--root", root1, "push", ref}, "", env);
  ASSERT_EQ(push.exit_code, 0) << push.out << push.err;
  EXPECT_NE(push.out.find(": Pushed"), std::string::npos) << push.out;

  Result pull = run_berth({"--root", root2, "pull", ref}, "", env);
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  EXPECT_EQ(image_id(root2, ref), id);
  // Everything went through nginx over TLS with the credentials.
  EXPECT_GE(count(proxy.access_log(), "GET /v2/team/busybox/blobs/sha256:"), 2) << proxy.access_log();

  // Listed as insecure instead of trusted: plain http first, which nginx's
  // TLS port refuses with a 400, then TLS without verification.
  std::string root3 = dir.path() + "/root3";
  Result insecure = run_berth({"--root", root3, "login", "--insecure-registry", proxy.address(), "-u", "alice", "--password-stdin",
                               proxy.address()},
                              "tls-s3cret\n", env);
  EXPECT_EQ(insecure.exit_code, 0) << insecure.err;
  Result insecure_pull = run_berth({"--root", root3, "pull", "--insecure-registry", proxy.address(), ref}, "", env);
  ASSERT_EQ(insecure_pull.exit_code, 0) << insecure_pull.out << insecure_pull.err;
  EXPECT_EQ(image_id(root3, ref), id);

  // The pulled image runs.
  Result ran = run_berth({"--root", root2, "--run-root", dir.path() + "/run2", "run", "--rm", "--network", "none", ref,
                          "/bin/busybox", "echo", "pulled over tls"});
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out, "pulled over tls\n");
}

TEST_F(RegistryDeployTest, InsecureRegistryWorksOnlyWhenListed) {
  RegistryServer registry;
  std::string port = registry.address().substr(registry.address().find(':') + 1);
  std::string name = "plain.berth.test:" + port;
  std::vector<std::string> env{"BERTH_RESOLVE=" + name + ":127.0.0.1"};
  std::string root1 = dir.path() + "/root1", root2 = dir.path() + "/root2";
  std::string ref = name + "/berth/plain:1";
  std::string id = import_busybox(root1, ref);

  // Not listed: https, which a plain registry does not speak.
  Result refused = run_berth({"--root", root1, "push", ref}, "", env);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_NE(refused.err.find("TLS error talking to registry " + name), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("list the registry as insecure"), std::string::npos) << refused.err;
  EXPECT_EQ(count(registry.log(), "\"PUT /v2/"), 0) << registry.log();

  // Listed on the command line: plain http.
  Result push = run_berth({"--root", root1, "push", "--insecure-registry", name, ref}, "", env);
  ASSERT_EQ(push.exit_code, 0) << push.out << push.err;

  // Listed in registries.json (registries.insecure).
  Result unlisted = run_berth({"--root", root2, "pull", ref}, "", env);
  EXPECT_NE(unlisted.exit_code, 0);
  registries(root2, {{"registries", {{"insecure", {name}}}}});
  Result pull = run_berth({"--root", root2, "pull", ref}, "", env);
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  EXPECT_EQ(image_id(root2, ref), id);
}

TEST_F(RegistryDeployTest, BlockedRegistryIsRefusedWithoutContactingIt) {
  RegistryServer registry;
  std::string root = dir.path() + "/root";
  std::string ref = registry.address() + "/berth/blocked:1";
  import_busybox(root, ref);
  ASSERT_EQ(run_berth({"--root", root, "push", ref}).exit_code, 0);
  std::string before = registry.log();

  registries(root, {{"registries", {{"block", {"127.0.0.1"}}}}});
  for (auto& args : std::vector<std::vector<std::string>>{{"pull", ref}, {"push", ref}, {"login", "-u", "a", "-p", "b", registry.address()}}) {
    std::vector<std::string> full{"--root", root};
    full.insert(full.end(), args.begin(), args.end());
    Result r = run_berth(full);
    EXPECT_NE(r.exit_code, 0) << args[0];
    EXPECT_NE(r.err.find("registry " + registry.address() + " is blocked by registries.block in " + root + "/registries.json"),
              std::string::npos)
        << args[0] << ": " << r.err;
  }
  EXPECT_EQ(registry.log(), before);  // not one request
}

TEST_F(RegistryDeployTest, MirrorIsUsedWhenUpAndSkippedWhenDown) {
  RegistryServer origin, mirror;
  std::string root0 = dir.path() + "/root0";
  std::string ref = origin.address() + "/berth/mirrored:1";
  std::string id = import_busybox(root0, ref);
  ASSERT_EQ(run_berth({"--root", root0, "push", ref}).exit_code, 0);
  // The mirror holds the same repository (as a pull-through cache would).
  ASSERT_EQ(run_berth({"--root", root0, "tag", ref, mirror.address() + "/berth/mirrored:1"}).exit_code, 0);
  ASSERT_EQ(run_berth({"--root", root0, "push", mirror.address() + "/berth/mirrored:1"}).exit_code, 0);
  int origin_blobs = origin.blob_gets(), mirror_blobs = mirror.blob_gets();

  std::string up = dir.path() + "/up";
  registries(up, {{"mirrors", {{origin.address(), {mirror.address()}}}}});
  Result pull = run_berth({"--root", up, "pull", ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  EXPECT_EQ(image_id(up, ref), id);
  EXPECT_EQ(mirror.blob_gets(), mirror_blobs + 2) << mirror.log();
  EXPECT_EQ(origin.blob_gets(), origin_blobs) << origin.log();

  // A mirror that is down is skipped at once: the origin serves.
  std::string down = dir.path() + "/down";
  registries(down, {{"mirrors", {{origin.address(), {"127.0.0.1:" + std::to_string(free_port())}}}}});
  auto start = std::chrono::steady_clock::now();
  Result fallback = run_berth({"--root", down, "pull", ref});
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(fallback.exit_code, 0) << fallback.out << fallback.err;
  EXPECT_EQ(image_id(down, ref), id);
  EXPECT_EQ(origin.blob_gets(), origin_blobs + 2) << origin.log();
  EXPECT_LT(std::chrono::duration_cast<std::chrono::seconds>(took).count(), 5);
}

TEST_F(RegistryDeployTest, ChunkedUploadThenCrossRepositoryMount) {
  RegistryServer registry;
  std::string root1 = dir.path() + "/root1", root2 = dir.path() + "/root2";
  std::string ref = registry.address() + "/berth/chunked:1";
  std::string id = import_busybox(root1, ref);
  Result push = run_berth({"--root", root1, "push", ref}, "", {"BERTH_UPLOAD_CHUNK_SIZE=65536"});
  ASSERT_EQ(push.exit_code, 0) << push.out << push.err;
  // The ~1 MB busybox layer went up in 64 KiB PATCHes.
  EXPECT_GE(count(registry.log(), "\"PATCH /v2/berth/chunked/blobs/uploads/"), 4) << registry.log();
  Result pull = run_berth({"--root", root2, "pull", ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  EXPECT_EQ(image_id(root2, ref), id);

  // Another repository of the same registry: the layer is mounted, not sent.
  std::string other = registry.address() + "/berth/other:1";
  ASSERT_EQ(run_berth({"--root", root1, "tag", ref, other}).exit_code, 0);
  int patches = count(registry.log(), "\"PATCH /v2/");
  Result mount = run_berth({"--root", root1, "push", other});
  ASSERT_EQ(mount.exit_code, 0) << mount.out << mount.err;
  EXPECT_NE(mount.out.find(": Mounted from berth/chunked"), std::string::npos) << mount.out;
  EXPECT_EQ(count(registry.log(), "\"POST /v2/berth/other/blobs/uploads/?mount=sha256%3A"), 1) << registry.log();
  EXPECT_EQ(count(registry.log(), "\"PATCH /v2/"), patches) << registry.log();
  Result pull_other = run_berth({"--root", dir.path() + "/root3", "pull", other});
  ASSERT_EQ(pull_other.exit_code, 0) << pull_other.out << pull_other.err;
  EXPECT_EQ(image_id(dir.path() + "/root3", other), id);
}

TEST_F(RegistryDeployTest, SearchListsTheCatalogsMatchingRepositories) {
  RegistryServer registry;
  std::string root = dir.path() + "/root";
  for (auto& repo : {"team/web", "team/worker", "other/db"}) {
    import_busybox(root, registry.address() + "/" + repo + ":1");
    ASSERT_EQ(run_berth({"--root", root, "push", registry.address() + "/" + repo + ":1"}).exit_code, 0);
  }
  Result r = run_berth({"--root", root, "search", registry.address() + "/team"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::istringstream lines(r.out);
  std::vector<std::string> names;
  for (std::string line; std::getline(lines, line);) names.push_back(line.substr(0, line.find(' ')));
  EXPECT_EQ(names, (std::vector<std::string>{"NAME", registry.address() + "/team/web", registry.address() + "/team/worker"})) << r.out;
  Result limited = run_berth({"--root", root, "search", "--limit", "1", registry.address() + "/o"});
  ASSERT_EQ(limited.exit_code, 0) << limited.err;
  EXPECT_EQ(count(limited.out, "\n"), 2) << limited.out;  // header + 1
  Result none = run_berth({"--root", root, "search", registry.address() + "/nothing-like-this"});
  ASSERT_EQ(none.exit_code, 0) << none.err;
  EXPECT_EQ(count(none.out, "\n"), 1) << none.out;
}

// A catalog served in pages (Link: <...>; rel="next"), as large registries do.
TEST_F(RegistryDeployTest, SearchFollowsCatalogPages) {
  std::vector<std::string> seen;
  std::mutex m;
  HttpServer server([&](const std::string&, const std::string& path, const std::string&) {
    {
      std::lock_guard<std::mutex> g(m);
      seen.push_back(path);
    }
    if (path == "/v2/_catalog?n=1000")
      return respond(200, "Content-Type: application/json\r\nLink: </v2/_catalog?last=b%2Fapp&n=1000>; rel=\"next\"\r\n",
                     R"({"repositories":["a/app","a/db","b/app"]})");
    if (path == "/v2/_catalog?last=b%2Fapp&n=1000") return respond(200, "Content-Type: application/json\r\n", R"({"repositories":["c/app"]})");
    return respond(404, "", "{}");
  });
  Result r = run_berth({"--root", dir.path() + "/root", "search", server.address() + "/app"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(count(r.out, server.address() + "/"), 3) << r.out;
  EXPECT_NE(r.out.find(server.address() + "/c/app"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("a/db"), std::string::npos) << r.out;

  HttpServer no_catalog([](const std::string&, const std::string&, const std::string&) { return respond(404, "", "404 page not found\n"); });
  Result none = run_berth({"--root", dir.path() + "/root", "search", no_catalog.address() + "/app"});
  EXPECT_NE(none.exit_code, 0);
  EXPECT_NE(none.err.find("does not offer the catalog API"), std::string::npos) << none.err;
}

// On a terminal (script(1) gives berth a pty), pull shows docker's live view:
// layer lines rewritten in place, with progress bars.
TEST_F(RegistryDeployTest, PullOnATerminalShowsProgressBars) {
  if (::access("/usr/bin/script", X_OK) != 0) GTEST_SKIP() << "script (bsdutils) is not installed";
  RegistryServer registry;
  std::string root1 = dir.path() + "/root1", root2 = dir.path() + "/root2";
  std::string ref = registry.address() + "/berth/tty:1";
  import_busybox(root1, ref);
  ASSERT_EQ(run_berth({"--root", root1, "push", ref}).exit_code, 0);
  Result r = run({"/usr/bin/script", "-qefc", berth_binary() + " --root " + root2 + " pull " + ref, "/dev/null"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find(": Downloading ["), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("MB/"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\x1b[1A\r\x1b[2K"), std::string::npos) << r.out;  // a line rewritten in place
  EXPECT_NE(r.out.find(": Pull complete"), std::string::npos) << r.out;
  // push shows its bars too (the busybox layer is over 512 kB), to a
  // registry that has nothing yet.
  RegistryServer empty;
  std::string ref2 = empty.address() + "/berth/tty:1";
  ASSERT_EQ(run_berth({"--root", root2, "tag", ref, ref2}).exit_code, 0);
  Result push = run({"/usr/bin/script", "-qefc", berth_binary() + " --root " + root2 + " push " + ref2, "/dev/null"});
  ASSERT_EQ(push.exit_code, 0) << push.out << push.err;
  EXPECT_NE(push.out.find(": Pushing ["), std::string::npos) << push.out;
  EXPECT_NE(push.out.find(": Pushed"), std::string::npos) << push.out;
  // Not a terminal: plain lines, no escapes.
  Result plain = run_berth({"--root", dir.path() + "/root3", "pull", ref});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  EXPECT_EQ(plain.out.find("\x1b["), std::string::npos) << plain.out;
  EXPECT_EQ(plain.out.find("Downloading"), std::string::npos) << plain.out;
}

// nginx with ssl_verify_client on: berth sends the client certificate it
// finds in certs.d/<host:port>/ (client.cert + client.key, docker's names)
// and is refused, clearly, without one.
TEST_F(RegistryDeployTest, ClientCertificateFromCertsDIsSentToTheRegistry) {
  if (!have_nginx()) GTEST_SKIP() << "nginx or openssl is not installed (scripts/deps test)";
  RegistryServer backend;
  TlsProxy proxy(backend.address(), "registry.berth.test", "carol", "cert-s3cret", true);
  std::vector<std::string> env{proxy.resolve_env()};
  std::string root1 = dir.path() + "/root1", root2 = dir.path() + "/root2";
  std::string ref = proxy.address() + "/team/busybox:cert";
  std::string id = import_busybox(root1, ref);
  for (auto& root : {root1, root2}) dir.write(root.substr(dir.path().size() + 1) + "/certs.d/" + proxy.address() + "/ca.crt", slurp(proxy.ca_file()));

  Result without = run_berth({"--root", root1, "login", "-u", "carol", "--password-stdin", proxy.address()}, "cert-s3cret\n", env);
  EXPECT_NE(without.exit_code, 0);
  EXPECT_NE(without.err.find("registry " + proxy.address() + " requires a TLS client certificate"), std::string::npos) << without.err;
  EXPECT_NE(without.err.find(root1 + "/certs.d/" + proxy.address()), std::string::npos) << without.err;

  for (auto& root : {root1, root2}) {
    std::string certs = root.substr(dir.path().size() + 1) + "/certs.d/" + proxy.address();
    dir.write(certs + "/client.cert", slurp(proxy.client_cert_file()));
    dir.write(certs + "/client.key", slurp(proxy.client_key_file()));
    Result login = run_berth({"--root", root, "login", "-u", "carol", "--password-stdin", proxy.address()}, "cert-s3cret\n", env);
    ASSERT_EQ(login.exit_code, 0) << login.err;
  }
  Result push = run_berth({"--root", root1, "push", ref}, "", env);
  ASSERT_EQ(push.exit_code, 0) << push.out << push.err;
  Result pull = run_berth({"--root", root2, "pull", ref}, "", env);
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  EXPECT_EQ(image_id(root2, ref), id);
  EXPECT_GE(count(proxy.access_log(), "GET /v2/team/busybox/blobs/sha256:"), 1) << proxy.access_log();
}

// A server that drops the layer download halfway once, then answers the
// Range request with the rest (or, when honour_range is false, ignores it
// and sends the whole blob again, as some servers do).
void resumes(RegistryDeployTest& t, TempDir& dir, bool honour_range) {
  std::string tar = dir.path() + "/busybox.tar";
  make_busybox_tar(tar);
  std::string layer = slurp(tar);
  std::string layer_digest = "sha256:" + run({"/usr/bin/sha256sum", tar}).out.substr(0, 64);
  nlohmann::json config = {{"architecture", "amd64"}, {"os", "linux"}, {"config", nlohmann::json::object()},
                           {"rootfs", {{"type", "layers"}, {"diff_ids", {layer_digest}}}}};
  std::string config_bytes = config.dump();
  std::string config_digest = "sha256:" + run({"/usr/bin/sha256sum", dir.write("config.json", config_bytes)}).out.substr(0, 64);
  nlohmann::json manifest = {
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
      {"config", {{"mediaType", "application/vnd.oci.image.config.v1+json"}, {"digest", config_digest}, {"size", config_bytes.size()}}},
      {"layers", {{{"mediaType", "application/vnd.oci.image.layer.v1.tar"}, {"digest", layer_digest}, {"size", layer.size()}}}}};
  std::mutex m;
  std::vector<std::string> ranges;  // Range header of each layer GET
  auto routes = static_routes({{"/v2/", {"application/json", "{}"}},
                               {"/v2/flaky/image/manifests/1", {"application/vnd.oci.image.manifest.v1+json", manifest.dump()}},
                               {"/v2/flaky/image/blobs/" + config_digest, {"application/octet-stream", config_bytes}}});
  HttpServer server([&](const std::string& method, const std::string& path, const std::string& auth) -> std::string {
    if (path != "/v2/flaky/image/blobs/" + layer_digest) return routes(method, path, auth);
    std::string range = HttpServer::request_header("Range");
    size_t n;
    {
      std::lock_guard<std::mutex> g(m);
      ranges.push_back(range);
      n = ranges.size();
    }
    std::string full = respond(200, "Content-Type: application/octet-stream\r\n", layer);
    if (n == 1) return full.substr(0, full.size() - layer.size() / 2);  // Content-Length says all, half comes
    if (!honour_range || range.rfind("bytes=", 0) != 0) return full;
    size_t from = std::stoul(range.substr(6));
    return "HTTP/1.1 206 Partial Content\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes " + std::to_string(from) +
           "-" + std::to_string(layer.size() - 1) + "/" + std::to_string(layer.size()) + "\r\nContent-Length: " +
           std::to_string(layer.size() - from) + "\r\nConnection: close\r\n\r\n" + layer.substr(from);
  });
  std::string root = dir.path() + "/root";
  std::string ref = server.address() + "/flaky/image:1";
  Result pull = run_berth({"--root", root, "pull", ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.out << pull.err;
  std::lock_guard<std::mutex> g(m);
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0], "");
  EXPECT_EQ(ranges[1], "bytes=" + std::to_string(layer.size() - layer.size() / 2) + "-");
  Result inspect = run_berth({"--root", root, "image", "inspect", ref});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_EQ(nlohmann::json::parse(inspect.out)[0]["RootFS"]["Layers"][0], layer_digest);
  EXPECT_EQ(nlohmann::json::parse(inspect.out)[0]["Id"], config_digest);
}

TEST_F(RegistryDeployTest, DroppedBlobDownloadResumesWithRange) { resumes(*this, dir, true); }

TEST_F(RegistryDeployTest, DroppedBlobDownloadRestartsWhenRangeIsIgnored) { resumes(*this, dir, false); }

}  // namespace
}  // namespace berth::test
