// `run -d --rm` on a berth network with a published port: when the
// container exits, its monitor removes it and has berth undo the rest at
// once — endpoint and address (IPAM), the port's nft rules, the veth — with
// no other berth command run in between (which would sweep stale ones).
#include <dirent.h>

#include <random>
#include <set>

#include "tests/integration/container_fixture.h"
#include "tests/integration/host_net.h"

using namespace berth::test;

namespace {

class NetworkAutoRemove : public ContainerTest {
 protected:
  void TearDown() override {
    if (root_.empty()) return;
    ContainerTest::TearDown();
    berth({"network", "rm", "rmnet"});
  }
  // Endpoints recorded in the network store (read from disk: no berth
  // command runs, so nothing sweeps stale ones meanwhile).
  size_t stored_endpoints() const {
    size_t n = 0;
    std::string dir = root_ + "/network/networks";
    DIR* d = ::opendir(dir.c_str());
    if (!d) return 0;
    while (auto* e = ::readdir(d)) {
      std::string f = e->d_name;
      if (f.size() < 6 || f.substr(f.size() - 5) != ".json") continue;
      std::string text;
      if (!berth::read_file_if_exists(dir + "/" + f, text)) continue;
      auto j = nlohmann::json::parse(text, nullptr, false);
      if (j.is_object() && j.contains("Endpoints")) n += j["Endpoints"].size();
    }
    ::closedir(d);
    return n;
  }
  // The host veth names of the stored endpoints.
  std::vector<std::string> stored_veths() const {
    std::vector<std::string> out;
    std::string dir = root_ + "/network/networks";
    DIR* d = ::opendir(dir.c_str());
    if (!d) return out;
    while (auto* e = ::readdir(d)) {
      std::string f = e->d_name, text;
      if (f.size() < 6 || f.substr(f.size() - 5) != ".json") continue;
      if (!berth::read_file_if_exists(dir + "/" + f, text)) continue;
      auto j = nlohmann::json::parse(text, nullptr, false);
      if (!j.is_object() || !j.contains("Endpoints")) continue;
      for (auto& [id, ep] : j["Endpoints"].items()) out.push_back(ep.value("HostVeth", ""));
    }
    ::closedir(d);
    return out;
  }
  bool netns_dir_empty() const {
    DIR* d = ::opendir((run_root_ + "/netns").c_str());
    if (!d) return true;
    bool empty = true;
    while (auto* e = ::readdir(d)) empty &= e->d_name[0] == '.';
    ::closedir(d);
    return empty;
  }
};

}  // namespace

TEST_F(NetworkAutoRemove, DetachedRmContainerLeavesNoEndpointRuleOrVethWhenItExits) {
  // Other tests may change the host's links and rules meanwhile: only what
  // names this container's port and veth is looked at.
  std::random_device rd;
  std::string subnet = "10." + std::to_string(100 + rd() % 100) + "." + std::to_string(rd() % 250) + ".0/24";
  std::string port = std::to_string(20000 + static_cast<int>(rd() % 20000));
  auto made = berth({"network", "create", "--subnet", subnet, "rmnet"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_EQ(stored_endpoints(), 0u);
  ASSERT_EQ(nft_ruleset().find(port), std::string::npos) << "port " << port << " already in a rule";

  std::string id = run_detached({"--rm", "--network", "rmnet", "-p", "127.0.0.1:" + port + ":80"}, {"sleep", "1"});
  ASSERT_FALSE(id.empty());
  // While it runs: its endpoint, its port's rules and its veth exist.
  EXPECT_EQ(stored_endpoints(), 1u);
  auto veths = stored_veths();
  ASSERT_EQ(veths.size(), 1u);
  std::string veth = veths[0];
  EXPECT_NE(nft_ruleset().find(port), std::string::npos);
  EXPECT_NE(host_links().find(veth + "\n"), std::string::npos) << host_links();

  // It exits on its own; nothing is run here but reads of the host's state.
  EXPECT_TRUE(eventually([&] { return !berth::path_exists(root_ + "/containers/" + id); }, 10000));
  EXPECT_TRUE(eventually([&] { return stored_endpoints() == 0; }, 5000)) << "endpoint (and its address) left";
  EXPECT_TRUE(eventually([&] { return nft_ruleset().find(port) == std::string::npos; }, 5000)) << nft_ruleset();
  EXPECT_TRUE(eventually([&] { return host_links().find(veth + "\n") == std::string::npos; }, 5000)) << veth;
  EXPECT_TRUE(netns_dir_empty());
  expect_no_trace_of(id);
}
