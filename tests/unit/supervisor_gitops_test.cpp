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
  EXPECT_EQ(h0.rfind("content:", 0), 0u);
  EXPECT_EQ(h0.size(), 8u + 16u);
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
