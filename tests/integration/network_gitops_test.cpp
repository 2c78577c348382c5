// `berth serve --watch DIR` for real: compose files dropped into DIR come
// up, changes recreate only what changed, a broken file leaves the running
// app alone and says why (log, `berth ls`, `berth events`), fixing it
// applies again, and deleting it takes the project down without leaving
// containers, networks or nft tables. Named network_* for the host_network
// lock: the apps get bridges and nft tables.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <filesystem>
#include <map>

#include "tests/integration/serve_fixture.h"

namespace berth::test {
namespace {

std::string app_yaml(const std::string& greeting) {
  return "services:\n"
         "  web:\n"
         "    image: busybox:latest\n"
         "    command: [\"sleep\", \"600\"]\n"
         "    stop_signal: SIGKILL\n"
         "    environment:\n"
         "      GREETING: " + greeting + "\n"
         "  worker:\n"
         "    image: busybox:latest\n"
         "    command: [\"sleep\", \"600\"]\n"
         "    stop_signal: SIGKILL\n";
}

std::string shell_out(const std::string& cmd) { return test::run({"/bin/sh", "-c", cmd}).out; }

class GitOpsTest : public ServeFixture {
 protected:
  void SetUp() override {
    ServeFixture::SetUp();
    if (IsSkipped()) return;
    start_compose_project();
    watch_ = tmp_.path() + "/watch";
    make_dirs(watch_);
    empty_ = tmp_.path() + "/empty";
    make_dirs(empty_);
  }

  void TearDown() override {
    if (!root_.empty()) {
      stop_serve(SIGKILL);
      for (const char* p : {"app", "site"})
        run_berth(with_roots({"down", "-p", p, "-t", "0"}), "", {}, empty_);
    }
    ServeFixture::TearDown();
  }

  // name -> {ID, State} of every container, from `berth ps -a`.
  std::map<std::string, std::pair<std::string, std::string>> containers() {
    std::map<std::string, std::pair<std::string, std::string>> out;
    auto r = berth({"ps", "-a", "--no-trunc", "--format", "json"});
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_object()) out[j["Names"].get<std::string>()] = {j["ID"].get<std::string>(), j["State"].get<std::string>()};
    }
    return out;
  }
  bool running(const std::map<std::string, std::pair<std::string, std::string>>& cs, const std::string& name) {
    auto it = cs.find(name);
    return it != cs.end() && it->second.second == "running";
  }

  // `berth ls -a --format json`, by project name.
  std::map<std::string, nlohmann::json> projects() {
    std::map<std::string, nlohmann::json> out;
    auto r = berth({"ls", "-a", "--format", "json"});
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_array())
      for (auto& p : j) out[p["Name"].get<std::string>()] = p;
    return out;
  }

  std::vector<nlohmann::json> reconcile_events(const std::string& action) {
    std::vector<nlohmann::json> out;
    for (auto& e : events({"type=reconcile"}))
      if (e["Action"] == action) out.push_back(e);
    return out;
  }

  // The API's view of one watched project (GET /projects: "Watch").
  nlohmann::json watch_status(const std::string& name) {
    std::string api = http_unix(socket_, "/projects");
    auto body = nlohmann::json::parse(api.substr(std::min(api.size(), api.find("\r\n\r\n") + 4)), nullptr, false);
    if (body.is_array())
      for (auto& p : body)
        if (p.value("Name", "") == name && p.contains("Watch")) return p["Watch"];
    return nlohmann::json::object();
  }

  std::string watch_, empty_;
};

std::string single_service_yaml(const std::string& image) {
  return "services:\n  web:\n    image: " + image +
         "\n    network_mode: none\n    command: [\"sleep\", \"600\"]\n    stop_signal: SIGKILL\n";
}

TEST_F(GitOpsTest, AppliesUpdatesRejectsABrokenFileAndRemoves) {
  start_serve({"--watch", watch_});
  // Written as `git pull` writes: a temporary file renamed into place.
  write_file_atomic(watch_ + "/app.yaml", app_yaml("hello"));
  ASSERT_TRUE(eventually([&] {
    auto cs = containers();
    return running(cs, "app-web-1") && running(cs, "app-worker-1");
  }, 60000)) << serve_log();
  ASSERT_TRUE(eventually([&] { return !reconcile_events("apply").empty(); }, 10000)) << serve_log();
  auto applied = reconcile_events("apply");
  EXPECT_EQ(applied[0]["Actor"]["ID"], "app");
  EXPECT_EQ(applied[0]["Actor"]["Attributes"]["file"], watch_ + "/app.yaml");
  auto ls = projects();
  ASSERT_TRUE(ls.count("app")) << berth({"ls", "-a", "--format", "json"}).out;
  EXPECT_EQ(ls["app"]["Status"], "running(2)");
  EXPECT_EQ(ls["app"]["ConfigFiles"], watch_ + "/app.yaml");
  EXPECT_FALSE(ls["app"].contains("LastError")) << ls["app"];
  // The API says more: the file, the hash and time of the last apply.
  std::string api = http_unix(socket_, "/projects");
  auto body = nlohmann::json::parse(api.substr(api.find("\r\n\r\n") + 4), nullptr, false);
  ASSERT_TRUE(body.is_array()) << api;
  ASSERT_EQ(body.size(), 1u) << api;
  auto watch = body[0]["Watch"];
  EXPECT_EQ(watch["File"], watch_ + "/app.yaml");
  EXPECT_EQ(watch["State"], "applied");
  EXPECT_EQ(watch["ConfigHash"], applied[0]["Actor"]["Attributes"]["hash"]);
  EXPECT_EQ(watch["ConfigHash"].get<std::string>().rfind("content:", 0), 0u);
  EXPECT_FALSE(watch["AppliedAt"].get<std::string>().empty());
  EXPECT_EQ(watch["LastError"], "");
  auto table = berth({"ls"});
  EXPECT_NE(table.out.find("NAME"), std::string::npos) << table.out;
  EXPECT_NE(lines_of(table.out, "app ").find("running(2)"), std::string::npos) << table.out;
  auto before = containers();

  // One service's environment changes: only it is recreated.
  write_file_atomic(watch_ + "/app.yaml", app_yaml("bonjour"));
  ASSERT_TRUE(eventually([&] {
    auto cs = containers();
    return running(cs, "app-web-1") && cs["app-web-1"].first != before["app-web-1"].first;
  }, 60000)) << serve_log();
  auto after = containers();
  EXPECT_EQ(after["app-worker-1"], before["app-worker-1"]);
  auto env = berth({"exec", "app-web-1", "sh", "-c", "echo $GREETING"});
  EXPECT_EQ(trim(env.out), "bonjour") << env.err;

  // A file that does not validate: reported, and the app keeps running.
  std::ofstream(watch_ + "/app.yaml") << "services:\n  web:\n    image: busybox:latest\n    restart: sometimes\n";
  ASSERT_TRUE(eventually([&] { return projects()["app"].contains("LastError"); }, 30000)) << serve_log();
  std::string err = projects()["app"]["LastError"];
  EXPECT_NE(err.find(watch_ + "/app.yaml:4:"), std::string::npos) << err;
  EXPECT_NE(err.find("sometimes"), std::string::npos) << err;
  EXPECT_NE(serve_log().find("gitops: apply app: " + watch_ + "/app.yaml:4:"), std::string::npos) << serve_log();
  auto errors = reconcile_events("error");
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_NE(errors[0]["Actor"]["Attributes"]["error"].get<std::string>().find("app.yaml:4:"), std::string::npos);
  EXPECT_EQ(containers(), after);
  EXPECT_NE(lines_of(berth({"ls"}).out, "app ").find("apply failed"), std::string::npos);

  // Fixed (back to what runs): applies again, changing nothing.
  write_file_atomic(watch_ + "/app.yaml", app_yaml("bonjour"));
  ASSERT_TRUE(eventually([&] { return reconcile_events("apply").size() == 3; }, 30000)) << serve_log();
  EXPECT_FALSE(projects()["app"].contains("LastError"));
  EXPECT_EQ(containers(), after);

  // Deleted: the project goes down, leaving nothing on the host.
  auto net = nlohmann::json::parse(berth({"network", "inspect", "app_default"}).out, nullptr, false);
  ASSERT_TRUE(net.is_array() && !net.empty()) << berth({"network", "ls"}).out;
  std::string short_id = net[0]["Id"].get<std::string>().substr(0, 12);
  EXPECT_NE(shell_out("nft list tables").find("berth-" + short_id), std::string::npos);
  ASSERT_EQ(::unlink((watch_ + "/app.yaml").c_str()), 0);
  ASSERT_TRUE(eventually([&] { return containers().empty(); }, 30000)) << serve_log();
  EXPECT_TRUE(eventually([&] { return !reconcile_events("remove").empty(); }, 10000)) << serve_log();
  EXPECT_EQ(lines_of(berth({"network", "ls"}).out, "app_default"), "");
  EXPECT_EQ(shell_out("nft list tables").find("berth-" + short_id), std::string::npos);
  EXPECT_EQ(shell_out("ip -o link show").find("br-" + short_id), std::string::npos);
  for (auto& [name, c] : after) expect_no_trace_of(c.first);
  EXPECT_FALSE(projects().count("app"));
}

// A subdirectory with a compose file is a project named after it; one
// deleted while no serve ran is taken down when serve comes back (its
// containers say which file they came from).
TEST_F(GitOpsTest, SubdirectoryProjectDeletedWhileServeWasDownGoesDown) {
  std::string site = watch_ + "/Site";
  make_dirs(site);
  write_file_atomic(site + "/compose.yaml",
                    "services:\n  page:\n    image: busybox:latest\n    network_mode: none\n"
                    "    command: [\"sleep\", \"600\"]\n    stop_signal: SIGKILL\n");
  // Broken from the start: listed (even without -a) with its error, nothing runs.
  std::ofstream(watch_ + "/bad.yml") << "services:\n  x: [\n";
  start_serve({"--watch", watch_});
  ASSERT_TRUE(eventually([&] { return running(containers(), "site-page-1"); }, 60000)) << serve_log();
  EXPECT_EQ(projects()["site"]["ConfigFiles"], site + "/compose.yaml");
  ASSERT_TRUE(eventually([&] { return projects()["bad"].contains("LastError"); }, 30000)) << serve_log();
  EXPECT_NE(projects()["bad"]["LastError"].get<std::string>().find(watch_ + "/bad.yml:"), std::string::npos)
      << projects()["bad"];
  EXPECT_EQ(projects()["bad"]["Status"], "failed");
  EXPECT_NE(lines_of(berth({"ls"}).out, "bad ").find("apply failed"), std::string::npos) << berth({"ls"}).out;
  ASSERT_EQ(::unlink((watch_ + "/bad.yml").c_str()), 0);
  EXPECT_TRUE(eventually([&] { return !projects().count("bad"); }, 30000)) << serve_log();
  stop_serve(SIGTERM);
  ASSERT_GT(std::filesystem::remove_all(site), 0u);
  EXPECT_TRUE(running(containers(), "site-page-1")) << "nothing watches while serve is down";
  start_serve({"--watch", watch_});
  EXPECT_TRUE(eventually([&] { return containers().empty(); }, 30000)) << serve_log();
}

// A failed apply is tried again with backoff, not only when the file
// changes: the image appears later (loaded, pulled, tagged by hand) and
// the project comes up without anyone touching its file. Failing the same
// way again is logged, not emitted as one more error event.
TEST_F(GitOpsTest, AFailedApplyIsRetriedUntilItsImageShowsUp) {
  start_serve({"--watch", watch_, "--watch-retry", "200"});
  // pull_policy never: `up` would pull the missing image, and tests talk to loopback only.
  write_file_atomic(watch_ + "/app.yaml", single_service_yaml("later:1") + "    pull_policy: never\n");
  ASSERT_TRUE(eventually([&] { return watch_status("app").value("Failures", 0) >= 3; }, 30000)) << serve_log();
  auto status = watch_status("app");
  EXPECT_EQ(status["State"], "failed") << status;
  EXPECT_NE(status["LastError"].get<std::string>().find("later:1"), std::string::npos) << status;
  EXPECT_EQ(status["Cause"].get<std::string>().rfind("retry ", 0), 0u) << status;
  EXPECT_NE(serve_log().find("gitops: apply app failed again"), std::string::npos) << serve_log();
  EXPECT_TRUE(containers().empty());

  auto tag = berth({"tag", "busybox:latest", "later:1"});
  ASSERT_EQ(tag.exit_code, 0) << tag.err;
  ASSERT_TRUE(eventually([&] { return running(containers(), "app-web-1"); }, 30000)) << serve_log();
  ASSERT_TRUE(eventually([&] { return !reconcile_events("apply").empty(); }, 10000)) << serve_log();
  auto applied = reconcile_events("apply");
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0]["Actor"]["Attributes"]["cause"].get<std::string>().rfind("retry ", 0), 0u) << applied[0];
  auto errors = reconcile_events("error");
  ASSERT_EQ(errors.size(), 1u) << "the same failure again is not news";
  EXPECT_EQ(errors[0]["Actor"]["Attributes"]["cause"], "file found");
  status = watch_status("app");
  EXPECT_EQ(status["State"], "applied") << status;
  EXPECT_EQ(status["Failures"], 0) << status;
  EXPECT_EQ(status["LastError"], "") << status;
}

// The resync enforces what is watched, as a controller: a project taken
// down by hand comes back, and a `reconcile` event says why.
TEST_F(GitOpsTest, AProjectTakenDownByHandComesBackAtTheNextResync) {
  start_serve({"--watch", watch_, "--watch-resync", "300"});
  write_file_atomic(watch_ + "/app.yaml", single_service_yaml("busybox:latest"));
  ASSERT_TRUE(eventually([&] { return running(containers(), "app-web-1"); }, 60000)) << serve_log();
  std::string first = containers()["app-web-1"].first;
  // Left alone while nothing drifts: resyncs apply nothing more.
  ASSERT_TRUE(eventually([&] { return reconcile_events("apply").size() == 1; }, 10000)) << serve_log();
  ::usleep(1000 * 1000);
  EXPECT_TRUE(reconcile_events("resync").empty()) << serve_log();

  auto down = run_berth(with_roots({"down", "-p", "app", "-t", "0"}), "", {}, empty_);
  ASSERT_EQ(down.exit_code, 0) << down.err;
  ASSERT_TRUE(eventually([&] {
    auto cs = containers();
    return running(cs, "app-web-1") && cs["app-web-1"].first != first;
  }, 30000)) << serve_log();
  ASSERT_TRUE(eventually([&] { return reconcile_events("apply").size() == 2; }, 10000)) << serve_log();
  auto resyncs = reconcile_events("resync");
  ASSERT_EQ(resyncs.size(), 1u) << serve_log();
  EXPECT_EQ(resyncs[0]["Actor"]["ID"], "app");
  std::string cause = resyncs[0]["Actor"]["Attributes"]["cause"];
  EXPECT_NE(cause.find("no containers"), std::string::npos) << cause;
  auto applied = reconcile_events("apply");
  EXPECT_EQ(applied[1]["Actor"]["Attributes"]["cause"], "resync: " + cause) << applied[1];
  EXPECT_EQ(watch_status("app")["Cause"], "resync: " + cause);
}

// One container removed by hand (`berth rm -f`) is drift too: the next
// resync applies the project again, which recreates exactly that one.
TEST_F(GitOpsTest, AContainerRemovedByHandComesBackAndTheOthersAreLeftAlone) {
  start_serve({"--watch", watch_, "--watch-resync", "300"});
  write_file_atomic(watch_ + "/app.yaml", app_yaml("hi"));
  ASSERT_TRUE(eventually([&] {
    auto cs = containers();
    return running(cs, "app-web-1") && running(cs, "app-worker-1");
  }, 60000)) << serve_log();
  ASSERT_TRUE(eventually([&] { return reconcile_events("apply").size() == 1; }, 10000)) << serve_log();
  // Past the settle time (2 s) and a few resyncs: the expected set is taken, nothing drifts.
  ::usleep(3000 * 1000);
  EXPECT_TRUE(reconcile_events("resync").empty()) << serve_log();
  auto before = containers();

  auto rm = run_berth(with_roots({"rm", "-f", "app-worker-1"}), "", {}, empty_);
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  ASSERT_TRUE(eventually([&] {
    auto cs = containers();
    return running(cs, "app-worker-1") && cs["app-worker-1"].first != before["app-worker-1"].first;
  }, 30000)) << serve_log();
  ASSERT_TRUE(eventually([&] { return reconcile_events("apply").size() == 2; }, 10000)) << serve_log();
  auto resyncs = reconcile_events("resync");
  ASSERT_EQ(resyncs.size(), 1u) << serve_log();
  std::string cause = resyncs[0]["Actor"]["Attributes"]["cause"];
  EXPECT_EQ(cause, "container app-worker-1 removed outside --watch");
  EXPECT_EQ(containers()["app-web-1"].first, before["app-web-1"].first) << "the untouched service is not recreated";
  // Settled again: no further resync applies.
  ::usleep(3000 * 1000);
  EXPECT_EQ(reconcile_events("resync").size(), 1u) << serve_log();
  EXPECT_EQ(reconcile_events("apply").size(), 2u) << serve_log();
}

}  // namespace
}  // namespace berth::test
