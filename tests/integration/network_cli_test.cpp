// `berth network ...` end to end through the binary, on the real kernel:
// each test has its own --root, its own 10.<random>.x.0/24 subnets, and
// checks what the kernel holds afterwards (ip -o link, nft list ruleset).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <random>

#include "base/fs.h"
#include "tests/support/run.h"

using berth::test::run;
using berth::test::run_berth;

namespace {

const std::string kIp = berth::path_exists("/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip";
const std::string kNft = berth::path_exists("/usr/sbin/nft") ? "/usr/sbin/nft" : "/sbin/nft";

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

class NetworkCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (bridges, nftables)";
    std::random_device rd;
    second_octet_ = 100 + static_cast<int>(rd() % 100);
    netns_ = "berth-test-" + std::to_string(rd());
  }
  void TearDown() override {
    // Whatever a failed test left: endpoints, then networks, then the netns.
    auto ls = berth_cmd({"network", "ls", "-q", "--no-trunc"});
    for (size_t pos = 0; pos < ls.out.size();) {
      size_t nl = ls.out.find('\n', pos);
      std::string id = ls.out.substr(pos, nl - pos);
      pos = nl == std::string::npos ? ls.out.size() : nl + 1;
      if (id.empty()) continue;
      auto inspect = nlohmann::json::parse(berth_cmd({"network", "inspect", id}).out, nullptr, false);
      if (!inspect.is_discarded() && inspect.is_array() && !inspect.empty())
        for (auto& [endpoint, info] : inspect[0]["Containers"].items()) berth_cmd({"network", "disconnect", id, endpoint});
      berth_cmd({"network", "rm", id});
    }
    if (made_netns_) run({kIp, "netns", "del", netns_});
  }

  berth::test::Result berth_cmd(std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), {"--root", root_.path()});
    return run_berth(args, input);
  }
  std::string subnet(int third) const {
    return "10." + std::to_string(second_octet_) + "." + std::to_string(third) + ".0/24";
  }
  std::string address(int third, int fourth) const {
    return "10." + std::to_string(second_octet_) + "." + std::to_string(third) + "." + std::to_string(fourth);
  }
  std::string make_netns() {
    EXPECT_EQ(run({kIp, "netns", "add", netns_}).exit_code, 0);
    made_netns_ = true;
    return "/run/netns/" + netns_;
  }

  berth::test::TempDir root_;
  int second_octet_ = 0;
  std::string netns_;
  bool made_netns_ = false;
};

}  // namespace

TEST_F(NetworkCli, CreateListInspectRemove) {
  auto created = berth_cmd({"network", "create", "--subnet", subnet(1), "--gateway", address(1, 254), "--label",
                            "tier=web", "front"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = created.out.substr(0, created.out.find('\n'));
  ASSERT_EQ(id.size(), 64u) << created.out;
  std::string bridge = "br-" + id.substr(0, 12);

  auto ls = berth_cmd({"network", "ls"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err;
  EXPECT_TRUE(ls.out.starts_with("NETWORK ID     NAME      DRIVER    SCOPE\n")) << ls.out;
  EXPECT_TRUE(contains(ls.out, id.substr(0, 12) + "   front     bridge    local\n")) << ls.out;
  EXPECT_EQ(berth_cmd({"network", "ls", "-q", "--filter", "label=tier=web"}).out, id.substr(0, 12) + "\n");
  EXPECT_EQ(berth_cmd({"network", "ls", "-q", "--filter", "name=nomatch"}).out, "");

  auto inspect = berth_cmd({"network", "inspect", "front"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  auto j = nlohmann::json::parse(inspect.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["Id"], id);
  EXPECT_EQ(j[0]["Name"], "front");
  EXPECT_EQ(j[0]["Driver"], "bridge");
  EXPECT_EQ(j[0]["Scope"], "local");
  EXPECT_EQ(j[0]["IPAM"]["Config"][0]["Subnet"], subnet(1));
  EXPECT_EQ(j[0]["IPAM"]["Config"][0]["Gateway"], address(1, 254));
  EXPECT_EQ(j[0]["Labels"]["tier"], "web");
  EXPECT_EQ(j[0]["Options"]["com.docker.network.bridge.name"], bridge);
  EXPECT_TRUE(contains(run({kIp, "-o", "-4", "addr", "show", "dev", bridge}).out, address(1, 254) + "/24"));

  auto rm = berth_cmd({"network", "rm", "front"});
  EXPECT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_EQ(rm.out, "front\n");
  EXPECT_FALSE(contains(run({kIp, "-o", "link"}).out, bridge));
  EXPECT_FALSE(contains(run({kNft, "list", "ruleset"}).out, "berth-" + id.substr(0, 12)));
  EXPECT_EQ(berth_cmd({"network", "ls", "-q"}).out, "");
}

TEST_F(NetworkCli, BadInputGivesAClearErrorAndChangesNothing) {
  ASSERT_EQ(berth_cmd({"network", "create", "--subnet", subnet(1), "front"}).exit_code, 0);
  auto links_before = run({kIp, "-o", "link"}).out;
  auto ls_before = berth_cmd({"network", "ls", "--no-trunc"}).out;
  struct Case {
    std::vector<std::string> args;
    std::string words;
  };
  std::vector<Case> cases = {
      {{"network", "create", "--subnet", address(1, 0) + "/25", "overlap"}, "overlaps"},
      {{"network", "create", "--subnet", "10.1.2.300/24", "bad"}, "invalid CIDR"},
      {{"network", "create", "--subnet", "10.1.2.0", "bad"}, "invalid CIDR"},
      {{"network", "create", "--subnet", subnet(2), "--gateway", address(3, 1), "bad"}, "not in subnet"},
      {{"network", "create", "-d", "overlay", "bad"}, "not supported"},
      {{"network", "create", "--subnet", subnet(2), "front"}, "already exists"},
      {{"network", "create", "bad name!"}, "invalid network name"},
      {{"network", "rm", "nosuch"}, "No such network: nosuch"},
      {{"network", "inspect", "nosuch"}, "No such network: nosuch"},
      {{"network", "connect", "nosuch", "/proc/self/ns/net"}, "network nosuch not found"},
      {{"network", "disconnect", "front", "nosuch"}, "not connected"},
  };
  for (auto& c : cases) {
    auto r = berth_cmd(c.args);
    EXPECT_NE(r.exit_code, 0) << c.args.back();
    EXPECT_TRUE(contains(r.err, c.words)) << c.args.back() << ": " << r.err;
  }
  EXPECT_EQ(run({kIp, "-o", "link"}).out, links_before);
  EXPECT_EQ(berth_cmd({"network", "ls", "--no-trunc"}).out, ls_before);
}

TEST_F(NetworkCli, PruneRemovesOnlyUnusedMatchingNetworks) {
  ASSERT_EQ(berth_cmd({"network", "create", "--subnet", subnet(1), "--label", "tmp=1", "scratch"}).exit_code, 0);
  ASSERT_EQ(berth_cmd({"network", "create", "--subnet", subnet(2), "keep"}).exit_code, 0);
  auto pruned = berth_cmd({"network", "prune", "-f", "--filter", "label=tmp=1"});
  EXPECT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_EQ(pruned.out, "Deleted Networks:\nscratch\n");
  // Without -f, "no" keeps everything.
  EXPECT_EQ(berth_cmd({"network", "prune"}, "n\n").exit_code, 0);
  EXPECT_TRUE(contains(berth_cmd({"network", "ls"}).out, "keep"));
  EXPECT_EQ(berth_cmd({"network", "prune"}, "y\n").exit_code, 0);
  EXPECT_EQ(berth_cmd({"network", "ls", "-q"}).out, "");
}

TEST_F(NetworkCli, ConnectDisconnectANetnsAndPortConflicts) {
  std::string ns = make_netns();
  auto created = berth_cmd({"network", "create", "--subnet", subnet(1), "front"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  std::string id = created.out.substr(0, 64);

  // A host process holds a port: publishing it fails and changes nothing.
  berth::UniqueFd holder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  ::listen(holder.get(), 1);
  socklen_t len = sizeof sin;
  ::getsockname(holder.get(), reinterpret_cast<sockaddr*>(&sin), &len);
  std::string busy_port = std::to_string(ntohs(sin.sin_port));
  auto busy = berth_cmd({"network", "connect", "-p", "127.0.0.1:" + busy_port + ":80", "front", ns});
  EXPECT_NE(busy.exit_code, 0);
  EXPECT_TRUE(contains(busy.err, "port is already allocated")) << busy.err;
  EXPECT_TRUE(nlohmann::json::parse(berth_cmd({"network", "inspect", "front"}).out)[0]["Containers"].empty());
  EXPECT_FALSE(contains(run({kIp, "netns", "exec", netns_, kIp, "-o", "link"}).out, "eth0"));

  auto connected = berth_cmd({"network", "connect", "--ip", address(1, 42), "--name", "web", "front", ns});
  ASSERT_EQ(connected.exit_code, 0) << connected.err;
  auto j = nlohmann::json::parse(berth_cmd({"network", "inspect", "front"}).out);
  ASSERT_EQ(j[0]["Containers"].size(), 1u);
  auto endpoint = j[0]["Containers"].begin().value();
  EXPECT_EQ(endpoint["Name"], "web");
  EXPECT_EQ(endpoint["IPv4Address"], address(1, 42) + "/24");
  EXPECT_TRUE(contains(run({kIp, "netns", "exec", netns_, kIp, "-o", "-4", "addr"}).out, address(1, 42) + "/24"));

  auto refused = berth_cmd({"network", "rm", "front"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_TRUE(contains(refused.err, "active endpoints")) << refused.err;

  EXPECT_EQ(berth_cmd({"network", "disconnect", "front", "web"}).exit_code, 0);
  EXPECT_FALSE(contains(run({kIp, "netns", "exec", netns_, kIp, "-o", "link"}).out, "eth0"));
  EXPECT_EQ(berth_cmd({"network", "rm", "front"}).exit_code, 0);
  EXPECT_FALSE(contains(run({kIp, "-o", "link"}).out, "br-" + id.substr(0, 12)));
  EXPECT_FALSE(contains(run({kNft, "list", "ruleset"}).out, "berth-" + id.substr(0, 12)));
}
