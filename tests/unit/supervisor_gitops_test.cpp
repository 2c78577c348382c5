// serve --watch's pure parts: which projects a directory holds and what
// they are named, the hash that decides whether one changed, and the error
// text kept from a failed apply.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "base/fs.h"
#include "supervisor/gitops.h"
#include "tests/support/run.h"

namespace berth::supervisor {
namespace {

TEST(GitOpsDiscoverTest, FilesAndSubdirectoriesAreProjects) {
  test::TempDir tmp;
  std::string d = tmp.path();
  tmp.write("app.yaml", "services: {}\n");
  tmp.write("My.Site.yml", "services: {}\n");
  tmp.write("notes.txt", "not compose\n");
  tmp.write(".hidden.yaml", "services: {}\n");
  tmp.write("app.yaml~", "services: {}\n");
  tmp.write("web/compose.yaml", "services: {}\n");
  tmp.write("web/compose.override.yaml", "services: {}\n");
  tmp.write("legacy/docker-compose.yml", "services: {}\n");
  tmp.write("own/berth.yaml", "services: {}\n");
  tmp.write("empty/readme", "no compose file here\n");
  std::vector<std::string> problems;
  auto found = discover_projects(d, &problems);
  EXPECT_TRUE(problems.empty()) << problems[0];
  ASSERT_EQ(found.size(), 5u);
  EXPECT_EQ(found["app"], (WatchSource{"app", d + "/app.yaml", d, false}));
  // Named without the extension, normalized as compose normalizes project names.
  ASSERT_EQ(found.count("mysite"), 1u);
  EXPECT_EQ(found["mysite"].file, d + "/My.Site.yml");
  EXPECT_EQ(found["web"], (WatchSource{"web", d + "/web/compose.yaml", d + "/web", true}));
  EXPECT_EQ(found["legacy"].file, d + "/legacy/docker-compose.yml");
  EXPECT_EQ(found["own"].file, d + "/own/berth.yaml");
  EXPECT_FALSE(found.count("empty"));
  EXPECT_FALSE(found.count("notes"));
  EXPECT_FALSE(found.count("hidden"));
}

TEST(GitOpsDiscoverTest, ANameClaimedTwiceKeepsTheFirstAndSaysSo) {
  test::TempDir tmp;
  tmp.write("app.yaml", "services: {}\n");
  tmp.write("app.yml", "services: {}\n");
  tmp.write("app/compose.yaml", "services: {}\n");
  tmp.write("___.yaml", "services: {}\n");
  std::vector<std::string> problems;
  auto found = discover_projects(tmp.path(), &problems);
  ASSERT_EQ(found.size(), 1u);
  // Sorted: "app" (the directory) comes before "app.yaml".
  EXPECT_TRUE(found["app"].is_subdirectory);
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_NE(problems[0].find("___.yaml: cannot name a project"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("app.yaml: project \"app\" is already defined by " + tmp.path() + "/app"),
            std::string::npos)
      << problems[1];
}

TEST(GitOpsDiscoverTest, AMissingDirectoryThrows) {
  EXPECT_THROW(discover_projects("/nonexistent/berth-watch"), Error);
}

TEST(GitOpsHashTest, ChangesWithTheFileAndItsEnvOnly) {
  test::TempDir tmp;
  tmp.write("app.yaml", "services: {a: {image: busybox}}\n");
  tmp.write("other.yaml", "services: {b: {image: busybox}}\n");
  auto found = discover_projects(tmp.path());
  std::string h0 = source_hash(found["app"]);
  EXPECT_EQ(h0.rfind("sha256:", 0), 0u);
  EXPECT_EQ(h0.size(), 7u + 64u);
  EXPECT_EQ(source_hash(found["app"]), h0);
  tmp.write("other.yaml", "services: {b: {image: nginx}}\n");
  EXPECT_EQ(source_hash(found["app"]), h0) << "another project's file";
  tmp.write(".env", "TAG=1\n");
  std::string h1 = source_hash(found["app"]);
  EXPECT_NE(h1, h0) << ".env feeds interpolation";
  tmp.write("app.yaml", "services: {a: {image: busybox, environment: [X=1]}}\n");
  EXPECT_NE(source_hash(found["app"]), h1);

  tmp.write("web/compose.yaml", "services: {}\n");
  found = discover_projects(tmp.path());
  std::string w0 = source_hash(found["web"]);
  tmp.write("web/compose.override.yaml", "services: {}\n");
  EXPECT_NE(source_hash(found["web"]), w0) << "a subdirectory project reads its overrides";
}

TEST(GitOpsHashTest, Sha256MatchesTheStandardVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  // Across block boundaries, fed in pieces.
  std::string million(1'000'000, 'a');
  Sha256 h;
  for (std::size_t off = 0; off < million.size(); off += 333) h.update(std::string_view(million).substr(off, 333));
  auto md = h.finish();
  char hexed[65];
  for (int i = 0; i < 32; ++i) std::snprintf(hexed + 2 * i, 3, "%02x", md[i]);
  EXPECT_EQ(std::string(hexed), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(GitOpsErrorTextTest, KeepsErrorsDropsProgress) {
  std::string out =
      "Network app_default  Creating\n"
      "Network app_default  Created\n"
      "WARN service web: ignoring key x\n"
      "Container app-web-1  Created\n"
      "/w/app.yaml:3:5: services.web.image must be a string\n"
      "Error service db: no such image: nope\n";
  EXPECT_EQ(apply_error_text(out),
            "/w/app.yaml:3:5: services.web.image must be a string\nError service db: no such image: nope");
  EXPECT_EQ(apply_error_text("Container app-web-1  Started\n"), "");
}

}  // namespace
}  // namespace berth::supervisor
