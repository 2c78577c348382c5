// `berth up` / `down` / `compose ps|logs|exec|stop|start` / `ls` for real:
// a small app from an image `berth import`ed from the busybox fixture.
// Named network_* so that ctest gives it the host_network lock: `up`
// creates bridges, veths and nft tables, and the leak check compares
// host-wide link and nft state.
#include <gtest/gtest.h>

#include <chrono>
#include <set>

#include "tests/integration/container_fixture.h"

namespace berth::test {
namespace {

std::string command_out(const std::string& cmd) {
  auto r = run({"/bin/sh", "-c", cmd});
  return r.out;
}

// Links and nft tables, minus the noisy parts (link counters, ids).
std::set<std::string> host_links() {
  std::set<std::string> out;
  std::istringstream in(command_out("ip -o link show | awk '{print $2}'"));
  for (std::string l; std::getline(in, l);) out.insert(l);
  return out;
}

std::string nft_tables() { return command_out("nft list tables 2>/dev/null"); }

// Three services: db, web (after db) and worker; network_mode none unless
// `networked`, so most tests do not depend on bridges.
std::string app_yaml(const std::string& web_env, bool networked = false, const std::string& web_image = "busybox:latest") {
  std::string mode = networked ? "" : "    network_mode: none\n";
  return "name: app\n"
         "services:\n"
         "  db:\n"
         "    image: busybox:latest\n" +
         mode +
         "    command: [\"sh\", \"-c\", \"echo db ready; exec sleep 600\"]\n"
         "    stop_signal: SIGKILL\n"
         "    volumes: [\"data:/data\"]\n"
         "  web:\n"
         "    image: " + web_image + "\n" +
         mode +
         "    command: [\"sh\", \"-c\", \"echo web says $$GREETING; exec sleep 600\"]\n"
         "    stop_signal: SIGKILL\n"
         "    environment:\n"
         "      GREETING: " + web_env + "\n"
         "    labels:\n"
         "      tier: front\n"
         "    tmpfs: [\"/scratch\"]\n"
         "    depends_on: [db]\n"
         "  worker:\n"
         "    image: busybox:latest\n" +
         mode +
         "    command: [\"sleep\", \"600\"]\n"
         "    stop_signal: SIGKILL\n"
         "volumes:\n"
         "  data: {}\n";
}

class ComposeTest : public ContainerTest {
 protected:
  void SetUp() override {
    ContainerTest::SetUp();
    if (IsSkipped()) return;
    start_compose_project();
  }

  void TearDown() override {
    stop_compose_project();
    ContainerTest::TearDown();
  }

  // name -> id of the project's containers (all states).
  std::map<std::string, std::string> ids() {
    auto r = compose({"compose", "ps", "-a", "--format", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::map<std::string, std::string> out;
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_array())
      for (auto& c : j) out[c["Name"].get<std::string>()] = c["ID"].get<std::string>();
    return out;
  }
};

TEST_F(ComposeTest, UpStartsTheAppAndASecondUpDoesNothing) {
  write_app(app_yaml("hello"));
  auto up = compose({"up", "-d"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  EXPECT_NE(up.err.find("Volume app_data  Created"), std::string::npos) << up.err;
  for (const char* name : {"app-db-1", "app-web-1", "app-worker-1"}) {
    EXPECT_NE(up.err.find(std::string("Container ") + name + "  Created"), std::string::npos) << up.err;
    EXPECT_NE(up.err.find(std::string("Container ") + name + "  Started"), std::string::npos) << up.err;
  }
  // db starts before web, which depends on it.
  EXPECT_LT(up.err.find("Container app-db-1  Started"), up.err.find("Container app-web-1  Started")) << up.err;

  auto ps = compose({"compose", "ps", "--format", "json"});
  ASSERT_EQ(ps.exit_code, 0) << ps.err;
  auto j = nlohmann::json::parse(ps.out);
  ASSERT_EQ(j.size(), 3u) << ps.out;
  for (auto& c : j) {
    EXPECT_EQ(c["State"], "running") << c.dump();
    EXPECT_EQ(c["Labels"]["com.docker.compose.project"], "app");
    EXPECT_EQ(c["Labels"]["com.docker.compose.container-number"], "1");
    EXPECT_EQ(c["Labels"]["com.docker.compose.oneoff"], "False");
    EXPECT_FALSE(c["Labels"]["com.docker.compose.config-hash"].get<std::string>().empty());
  }
  auto web = inspect("app-web-1");
  EXPECT_EQ(web["Config"]["Labels"]["tier"], "front") << web.dump();
  EXPECT_EQ(web["Config"]["Labels"]["com.docker.compose.service"], "web");

  auto before = ids();
  auto start = std::chrono::steady_clock::now();
  auto again = compose({"up", "-d"});
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(lines_of(again.err, "Container "), "") << again.err;
  EXPECT_EQ(lines_of(again.err, "Network "), "") << again.err;
  EXPECT_EQ(lines_of(again.err, "Volume "), "") << again.err;
  EXPECT_EQ(ids(), before);
  EXPECT_LT(took, std::chrono::seconds(2));
  auto dry = compose({"up", "--dry-run"});
  EXPECT_EQ(dry.out, "");
}

TEST_F(ComposeTest, ChangingOneServiceRecreatesOnlyIt) {
  write_app(app_yaml("hello"));
  ASSERT_EQ(compose({"up", "-d"}).exit_code, 0);
  auto before = ids();
  write_app(app_yaml("changed"));
  auto up = compose({"up", "-d"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  auto after = ids();
  ASSERT_EQ(after.size(), 3u);
  EXPECT_NE(after["app-web-1"], before["app-web-1"]);
  EXPECT_EQ(after["app-db-1"], before["app-db-1"]);
  EXPECT_EQ(after["app-worker-1"], before["app-worker-1"]);
  EXPECT_EQ(lines_of(up.err, "app-db-1"), "") << up.err;
  EXPECT_NE(up.err.find("Container app-web-1  Started"), std::string::npos) << up.err;
  bool said = eventually([&] {
    return compose({"compose", "logs", "web"}).out.find("web-1  | web says changed") != std::string::npos;
  });
  EXPECT_TRUE(said) << compose({"compose", "logs"}).out;
}

TEST_F(ComposeTest, ScaleUpThenDownRemovesTheHighestNumbers) {
  write_app(app_yaml("hello"));
  ASSERT_EQ(compose({"up", "-d", "--scale", "web=3"}).exit_code, 0);
  auto three = ids();
  for (const char* n : {"app-web-1", "app-web-2", "app-web-3"}) EXPECT_TRUE(three.count(n)) << n;
  auto down = compose({"up", "-d", "--scale", "web=1"});
  ASSERT_EQ(down.exit_code, 0) << down.err;
  auto one = ids();
  EXPECT_EQ(one.size(), 3u);
  EXPECT_EQ(one["app-web-1"], three["app-web-1"]);
  EXPECT_FALSE(one.count("app-web-2"));
  EXPECT_FALSE(one.count("app-web-3"));
  EXPECT_NE(down.err.find("Container app-web-3  Removed"), std::string::npos) << down.err;
}

TEST_F(ComposeTest, AMissingImageFailsPerServiceAndChangesNothing) {
  write_app(app_yaml("hello"));
  ASSERT_EQ(compose({"up", "-d"}).exit_code, 0);
  auto before = ids();
  // pull_policy never: `up` would pull a missing image, and tests talk to loopback only.
  std::string yaml = app_yaml("hello", false, "nosuch:1");
  write_app(yaml.replace(yaml.find("image: nosuch:1\n"), 16, "image: nosuch:1\n    pull_policy: never\n"));
  auto up = compose({"up", "-d"});
  EXPECT_NE(up.exit_code, 0);
  EXPECT_NE(up.err.find("service web: Unable to find image 'nosuch:1' locally"), std::string::npos) << up.err;
  EXPECT_EQ(lines_of(up.err, "service db"), "") << up.err;
  EXPECT_EQ(ids(), before);
  auto ps = compose({"compose", "ps", "--format", "json"});
  EXPECT_EQ(nlohmann::json::parse(ps.out).size(), 3u) << ps.out;  // all still running
}

TEST_F(ComposeTest, PsLogsExecStopStartAndLs) {
  write_app(app_yaml("hi"));
  ASSERT_EQ(compose({"up", "-d"}).exit_code, 0);
  auto ps = compose({"compose", "ps"});
  ASSERT_EQ(ps.exit_code, 0) << ps.err;
  std::istringstream in(ps.out);
  std::string header;
  std::getline(in, header);
  EXPECT_EQ(header.substr(0, 4), "NAME");
  for (const char* col : {"IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"})
    EXPECT_NE(header.find(col), std::string::npos) << header;
  EXPECT_NE(lines_of(ps.out, "app-web-1").find("busybox:latest"), std::string::npos) << ps.out;
  EXPECT_NE(lines_of(ps.out, "app-web-1").find("Up "), std::string::npos) << ps.out;
  EXPECT_EQ(compose({"compose", "ps", "--services"}).out, "db\nweb\nworker\n");

  bool logged = eventually([&] {
    auto logs = compose({"compose", "logs"}).out;
    // Prefixes are padded to the longest name (worker-1).
    return logs.find("web-1     | web says hi\n") != std::string::npos &&
           logs.find("db-1      | db ready\n") != std::string::npos;
  });
  EXPECT_TRUE(logged) << compose({"compose", "logs"}).out;
  EXPECT_EQ(compose({"compose", "logs", "--no-log-prefix", "db"}).out, "db ready\n");

  auto ex = compose({"compose", "exec", "web", "sh", "-c", "echo $GREETING; ls -d /scratch; test ! -e /data"});
  EXPECT_EQ(ex.exit_code, 0) << ex.err;  // web has its tmpfs, and not db's volume
  EXPECT_EQ(ex.out, "hi\n/scratch\n") << ex.out;
  auto dbx = compose({"compose", "exec", "db", "sh", "-c", "echo kept > /data/f"});
  EXPECT_EQ(dbx.exit_code, 0) << dbx.err;

  auto ls = compose({"ls"});
  EXPECT_NE(ls.out.find("running(3)"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find(project_dir_ + "/compose.yaml"), std::string::npos) << ls.out;

  auto stop = compose({"compose", "stop", "web"});
  EXPECT_EQ(stop.exit_code, 0) << stop.err;
  EXPECT_NE(stop.err.find("Container app-web-1  Stopped"), std::string::npos) << stop.err;
  EXPECT_EQ(compose({"compose", "ps", "--status", "exited", "--services"}).out, "web\n");
  // up starts a stopped container again without recreating it.
  auto before = ids();
  auto up = compose({"up", "-d"});
  EXPECT_EQ(up.exit_code, 0) << up.err;
  EXPECT_EQ(ids(), before);
  EXPECT_NE(up.err.find("Container app-web-1  Started"), std::string::npos) << up.err;
  EXPECT_EQ(lines_of(up.err, "Created"), "") << up.err;
}

TEST_F(ComposeTest, NetworkedAppAndDownLeaveNothingBehind) {
  auto links_before = host_links();
  auto nft_before = nft_tables();
  write_app(app_yaml("net", true));
  auto up = compose({"up", "-d"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  EXPECT_NE(up.err.find("Network app_default  Created"), std::string::npos) << up.err;
  auto nets = compose({"network", "ls"});
  EXPECT_NE(nets.out.find("app_default"), std::string::npos) << nets.out;
  // web reaches db over the project network by its service name.
  auto ping = compose({"compose", "exec", "web", "sh", "-c", "ip -o -4 addr show eth0 && grep -c . /etc/hosts"});
  EXPECT_EQ(ping.exit_code, 0) << ping.err << ping.out;
  EXPECT_NE(ping.out.find("inet "), std::string::npos) << ping.out;
  auto names = ids();
  ASSERT_EQ(names.size(), 3u);

  auto down = compose({"down", "-v", "-t", "1"});
  ASSERT_EQ(down.exit_code, 0) << down.err;
  for (const char* line : {"Container app-web-1  Removed", "Network app_default  Removed", "Volume app_data  Removed"})
    EXPECT_NE(down.err.find(line), std::string::npos) << down.err;
  EXPECT_EQ(berth({"ps", "-aq"}).out, "");
  EXPECT_EQ(lines_of(compose({"network", "ls"}).out, "app_default"), "");
  EXPECT_FALSE(path_exists(root_ + "/volumes/app_data"));
  for (const auto& [name, id] : names) expect_no_trace_of(id);
  EXPECT_EQ(host_links(), links_before);
  EXPECT_EQ(nft_tables(), nft_before);
  auto again = compose({"down"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.err, "");
}

TEST_F(ComposeTest, AMissingExternalVolumeFailsAndIsNotCreated) {
  write_app("name: app\n"
            "services:\n"
            "  db:\n"
            "    image: busybox:latest\n"
            "    network_mode: none\n"
            "    command: [\"sleep\", \"600\"]\n"
            "    stop_signal: SIGKILL\n"
            "    volumes: [\"ext:/data\"]\n"
            "volumes:\n"
            "  ext:\n"
            "    external: true\n");
  auto up = compose({"up", "-d"});
  EXPECT_NE(up.exit_code, 0);
  EXPECT_NE(up.err.find("external volume \"ext\" not found"), std::string::npos) << up.err;
  EXPECT_TRUE(ids().empty());
  EXPECT_EQ(compose({"volume", "ls", "-q"}).out, "") << "compose never creates an external volume";
  ASSERT_EQ(compose({"volume", "create", "ext"}).exit_code, 0);
  auto again = compose({"up", "-d"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(ids().size(), 1u);
  EXPECT_EQ(compose({"down"}).exit_code, 0);
  EXPECT_EQ(compose({"volume", "ls", "-q"}).out, "ext\n") << "down keeps an external volume";
}

}  // namespace
}  // namespace berth::test
