// The registry client's pure parts (WWW-Authenticate, platforms, insecure
// registries, base64, config.json) and the Bearer token flow against a tiny
// in-test HTTP server on 127.0.0.1.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <mutex>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "images/registry.h"
#include "tests/support/http_server.h"
#include "tests/support/run.h"

namespace berth::images {
namespace {

TEST(ImagesRegistry, ParsesBearerChallenge) {
  auto c = parse_www_authenticate(
      R"(Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",error="invalid_token")");
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].scheme, "bearer");
  EXPECT_EQ(c[0].params["realm"], "https://auth.example/token");
  EXPECT_EQ(c[0].params["service"], "registry.example");
  EXPECT_EQ(c[0].params["scope"], "repository:a/b:pull,push");
  EXPECT_EQ(c[0].params["error"], "invalid_token");
}

TEST(ImagesRegistry, ParsesBasicAndSeveralChallenges) {
  auto c = parse_www_authenticate(R"(Basic realm="berth test", Bearer realm=https://t/x,service=s)");
  ASSERT_EQ(c.size(), 2u);
  EXPECT_EQ(c[0].scheme, "basic");
  EXPECT_EQ(c[0].params["realm"], "berth test");
  EXPECT_EQ(c[1].scheme, "bearer");
  EXPECT_EQ(c[1].params["realm"], "https://t/x");
  EXPECT_EQ(c[1].params["service"], "s");
}

TEST(ImagesRegistry, ParsesPlatforms) {
  Platform p = parse_platform("linux/arm64/v8");
  EXPECT_EQ(p.os, "linux");
  EXPECT_EQ(p.architecture, "arm64");
  EXPECT_EQ(p.variant, "v8");
  EXPECT_EQ(parse_platform("linux/x86_64").architecture, "amd64");
  EXPECT_THROW(parse_platform("linux"), Error);
  EXPECT_THROW(parse_platform("linux//"), Error);
}

TEST(ImagesRegistry, InsecureRegistries) {
  EXPECT_TRUE(is_insecure_registry("127.0.0.1:5000", {}));
  EXPECT_TRUE(is_insecure_registry("127.3.4.5:80", {}));
  EXPECT_TRUE(is_insecure_registry("localhost:5000", {}));
  EXPECT_TRUE(is_insecure_registry("[::1]:5000", {}));
  EXPECT_FALSE(is_insecure_registry("docker.io", {}));
  EXPECT_FALSE(is_insecure_registry("10.0.0.1:5000", {}));
  EXPECT_TRUE(is_insecure_registry("10.0.0.1:5000", {"10.0.0.1:5000"}));
  EXPECT_TRUE(is_insecure_registry("reg.lan:5000", {"reg.lan"}));
  EXPECT_EQ(split_registry_list(" a:1, b ,,c:3 "), (std::vector<std::string>{"a:1", "b", "c:3"}));
}

TEST(ImagesRegistry, Base64RoundTrips) {
  EXPECT_EQ(base64_encode("alice:s3cret"), "YWxpY2U6czNjcmV0");
  for (std::string s : {"", "a", "ab", "abc", "abcd", "user:p@ss:with:colons"}) EXPECT_EQ(base64_decode(base64_encode(s)), s);
  EXPECT_THROW(base64_decode("abc"), Error);
}

TEST(ImagesRegistry, AuthFileIsDockerCompatibleAndPrivate) {
  test::TempDir dir;
  AuthFile file(dir.path() + "/cfg/config.json");
  EXPECT_TRUE(file.get("reg:5000").empty());
  file.set("reg:5000", {"bob", "pw:1"});
  file.set("docker.io", {"hub", "x"});
  struct stat st {};
  ASSERT_EQ(::stat(file.path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto j = nlohmann::json::parse(read_file(file.path()));
  EXPECT_EQ(j["auths"]["reg:5000"]["auth"], base64_encode("bob:pw:1"));
  EXPECT_TRUE(j["auths"].contains("https://index.docker.io/v1/"));
  EXPECT_EQ(file.get("reg:5000").password, "pw:1");
  EXPECT_EQ(file.get("docker.io").username, "hub");
  EXPECT_TRUE(file.erase("reg:5000"));
  EXPECT_FALSE(file.erase("reg:5000"));
  EXPECT_TRUE(file.get("reg:5000").empty());
}

TEST(ImagesRegistry, LoadsRegistryConfig) {
  test::TempDir dir;
  RegistryOptions o;
  load_registry_config(dir.path() + "/absent.json", o);  // a missing file changes nothing
  EXPECT_TRUE(o.search.empty());
  EXPECT_EQ(o.config_path, "");
  std::string path = dir.write("registries.json", R"({
    "registries": {"search": ["reg.lan:5000", "docker.io"], "block": ["*.bad.example", "evil:1"], "insecure": ["10.0.0.0/8"]},
    "mirrors": {"docker.io": ["https://mirror.lan:5000/", "mirror2.lan", "http://plain-mirror.lan:5000"]},
    "certs.d": ["/opt/certs.d"]})");
  load_registry_config(path, o);
  EXPECT_EQ(o.search, (std::vector<std::string>{"reg.lan:5000", "docker.io"}));
  EXPECT_EQ(o.blocked, (std::vector<std::string>{"*.bad.example", "evil:1"}));
  EXPECT_EQ(o.insecure.at(0), "10.0.0.0/8");
  EXPECT_EQ(o.mirrors["docker.io"], (std::vector<std::string>{"mirror.lan:5000", "mirror2.lan", "plain-mirror.lan:5000"}));
  EXPECT_TRUE(is_insecure_registry("plain-mirror.lan:5000", o.insecure));  // given as http://
  EXPECT_FALSE(is_insecure_registry("mirror.lan:5000", o.insecure));
  EXPECT_EQ(o.certs_dirs, (std::vector<std::string>{"/opt/certs.d"}));
  EXPECT_EQ(o.config_path, path);
  EXPECT_TRUE(is_insecure_registry("10.1.2.3:5000", o.insecure));

  for (auto [text, want] : std::vector<std::pair<std::string, std::string>>{
           {R"({"registry": {}})", "unknown key \"registry\""},
           {R"({"registries": {"search": "a"}})", "\"registries.search\" must be a list"},
           {R"({"registries": {"block": [1]}})", "list of non-empty strings"},
           {R"({"registries": {"allow": []}})", "unknown key \"registries.allow\""},
           {R"({"mirrors": ["x"]})", "\"mirrors\" must be an object"},
           {"{not json", "malformed JSON"}}) {
    std::string bad = dir.write("bad.json", text);
    RegistryOptions b;
    try {
      load_registry_config(bad, b);
      ADD_FAILURE() << "accepted " << text;
    } catch (const Error& e) {
      std::string what = e.what();
      EXPECT_NE(what.find(bad), std::string::npos) << what;
      EXPECT_NE(what.find(want), std::string::npos) << what;
    }
  }
}

TEST(ImagesRegistry, BlockedRegistries) {
  RegistryOptions o;
  o.blocked = {"evil:1", "plain.example", "*.bad.example"};
  o.config_path = "/etc/berth/registries.json";
  EXPECT_NO_THROW(check_not_blocked("evil:2", o));
  EXPECT_NO_THROW(check_not_blocked("bad.example", o));  // "*.x" is the subdomains only
  EXPECT_NO_THROW(check_not_blocked("notbad.example", o));
  EXPECT_NO_THROW(check_not_blocked("docker.io", o));
  for (std::string r : {"evil:1", "plain.example", "plain.example:5000", "a.bad.example", "x.y.bad.example:443"}) {
    try {
      check_not_blocked(r, o);
      ADD_FAILURE() << r << " not blocked";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("registry " + r + " is blocked by registries.block in /etc/berth/registries.json"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST(ImagesRegistry, SearchReferences) {
  RegistryOptions o;
  EXPECT_EQ(search_references("app:1", o).at(0).full(), "docker.io/library/app:1");
  o.search = {"reg.lan:5000", "docker.io"};
  auto refs = search_references("team/app:1", o);
  ASSERT_EQ(refs.size(), 2u);
  EXPECT_EQ(refs[0].full(), "reg.lan:5000/team/app:1");
  EXPECT_EQ(refs[1].full(), "docker.io/team/app:1");
  // A name that names its registry is looked up there only.
  for (std::string qualified : {"other:5000/app:1", "localhost/app", "docker.io/library/app"})
    EXPECT_EQ(search_references(qualified, o).size(), 1u) << qualified;
}

using berth::test::respond;

TEST(ImagesRegistry, BearerTokenFlowSendsCredentialsToRealmAndTokenToRegistry) {
  std::mutex m;
  std::vector<std::string> seen;
  int port = 0;
  berth::test::HttpServer server([&](const std::string& method, const std::string& path, const std::string& auth) {
    {
      std::lock_guard<std::mutex> g(m);
      seen.push_back(method + " " + path + " [" + auth + "]");
    }
    if (path.rfind("/token?", 0) == 0) {
      if (auth != "Basic " + base64_encode("carol:pw")) return respond(401, "", "{}");
      return respond(200, "Content-Type: application/json\r\n", R"({"token":"tok-123"})");
    }
    if (path == "/v2/") {
      if (auth == "Bearer tok-123") return respond(200, "", "{}");
      return respond(401,
                      "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:" + std::to_string(port) + "/token\",service=\"tiny\"\r\n",
                      R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})");
    }
    return respond(404, "", "{}");
  });
  port = server.port();
  std::string registry = "127.0.0.1:" + std::to_string(port);
  RegistryOptions options;
  EXPECT_NO_THROW(check_login(registry, {"carol", "pw"}, options));
  {
    std::lock_guard<std::mutex> g(m);
    ASSERT_EQ(seen.size(), 3u);
    EXPECT_EQ(seen[0], "GET /v2/ []");
    EXPECT_EQ(seen[1].rfind("GET /token?service=tiny", 0), 0u) << seen[1];
    EXPECT_NE(seen[1].find("account=carol"), std::string::npos) << seen[1];
    EXPECT_EQ(seen[2], "GET /v2/ [Bearer tok-123]");
  }
  try {
    check_login(registry, {"carol", "wrong"}, options);
    FAIL() << "wrong password accepted";
  } catch (const Error& e) {
    std::string what = e.what();
    EXPECT_NE(what.find("carol"), std::string::npos) << what;
    EXPECT_NE(what.find("refused"), std::string::npos) << what;
    EXPECT_EQ(what.find("wrong"), std::string::npos) << what;  // never the password
  }
}

}  // namespace
}  // namespace berth::images

namespace berth::images {
namespace {

// A challenge naming several scopes (as for a cross-repository mount) asks
// the token server for each, as repeated scope parameters.
TEST(ImagesRegistry, BearerChallengeWithSeveralScopesRequestsEach) {
  std::mutex m;
  std::string token_path;
  int port = 0;
  berth::test::HttpServer server([&](const std::string&, const std::string& path, const std::string& auth) {
    if (path.rfind("/token?", 0) == 0) {
      std::lock_guard<std::mutex> g(m);
      token_path = path;
      return berth::test::respond(200, "", R"({"access_token":"t2"})");
    }
    if (auth == "Bearer t2") return berth::test::respond(200, "", "{}");
    return berth::test::respond(401,
                                "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:" + std::to_string(port) +
                                    "/token\",service=\"s\",scope=\"repository:x/a:pull,push repository:x/b:pull\"\r\n",
                                "{}");
  });
  port = server.port();
  EXPECT_NO_THROW(check_login("127.0.0.1:" + std::to_string(port), {"u", "p"}, RegistryOptions{}));
  std::lock_guard<std::mutex> g(m);
  EXPECT_NE(token_path.find("scope=repository%3Ax%2Fa%3Apull%2Cpush&scope=repository%3Ax%2Fb%3Apull&"), std::string::npos) << token_path;
}

}  // namespace
}  // namespace berth::images
