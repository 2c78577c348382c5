// `berth run/create --network ...`, `-p`, `network connect/disconnect` of
// containers and `rm -f` through the binary on the real kernel: busybox
// containers on 10.<random>.x.0/24 networks talk over TCP, are isolated
// from other networks, are reached through published ports from the host,
// reach a host address through masquerade, and leave nothing behind.
// Traffic goes only to loopback, berth-made networks and a netns this test
// makes.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <future>
#include <random>
#include <set>

#include "tests/integration/container_fixture.h"
#include "tests/integration/host_net.h"

using namespace berth::test;

namespace {

// A host command (the fixture's run() runs containers).
Result host_run(const std::vector<std::string>& argv) { return berth::test::run(argv); }

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The host's first global IPv4 address that is not on a berth bridge.
std::string host_address() {
  auto r = host_run({kIp, "-o", "-4", "addr", "show", "scope", "global"});
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    std::istringstream f(line);
    std::string idx, dev, inet, cidr;
    f >> idx >> dev >> inet >> cidr;
    if (dev.rfind("br-", 0) == 0 || dev.rfind("berth", 0) == 0 || dev.rfind("docker", 0) == 0) continue;
    if (dev.rfind("veth", 0) == 0 || dev.rfind("nctest", 0) == 0) continue;
    return cidr.substr(0, cidr.find('/'));
  }
  return "";
}

Result as_http(Result r) {
  auto body = r.out.find("\r\n\r\n");
  bool ok = r.exit_code == 0 && r.out.rfind("HTTP/1.", 0) == 0 && r.out.find(" 200 ") != std::string::npos &&
            body != std::string::npos;
  r.exit_code = ok ? 0 : 1;
  r.out = body == std::string::npos ? "" : r.out.substr(body + 4);
  return r;
}

// GET / from the host (busybox nc).
Result http_host(const std::string& host, const std::string& port) {
  return as_http(berth::test::run({"/bin/busybox", "nc", "-w", "2", host, port}, "GET / HTTP/1.0\r\n\r\n"));
}

bool port_free(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0;
  ::close(fd);
  return ok;
}

const std::vector<std::string> kHttpd = {
    "sh", "-c", "mkdir -p /www && echo hello-from-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"};

class NetworkContainer : public ContainerTest {
 protected:
  void SetUp() override {
    ContainerTest::SetUp();
    if (IsSkipped()) return;
    std::random_device rd;
    octet_ = 100 + static_cast<int>(rd() % 100);
    port_base_ = 20000 + static_cast<int>(rd() % 20000);
    while (!port_free(port_base_) || !port_free(port_base_ + 1)) port_base_ += 7;
  }
  void TearDown() override {
    if (root_.empty()) return;
    ContainerTest::TearDown();
    auto ls = berth({"network", "ls", "-q", "--no-trunc"});
    std::istringstream in(ls.out);
    for (std::string id; std::getline(in, id);)
      if (!id.empty()) berth({"network", "rm", id});
    if (!outside_.empty()) {
      auto pids = host_run({kIp, "netns", "pids", outside_});
      std::istringstream p(pids.out);
      for (std::string pid; std::getline(p, pid);)
        if (!pid.empty()) ::kill(std::stoi(pid), SIGKILL);
      host_run({kIp, "netns", "del", outside_});
      host_run({kIp, "link", "del", outside_link_});
    }
  }

  std::string subnet(int third) const { return "10." + std::to_string(octet_) + "." + std::to_string(third) + ".0/24"; }
  std::string address(int third, int fourth) const {
    return "10." + std::to_string(octet_) + "." + std::to_string(third) + "." + std::to_string(fourth);
  }
  void make_network(const std::string& name, int third) {
    auto r = berth({"network", "create", "--subnet", subnet(third), name});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  std::string ip_on(const std::string& container, const std::string& network) {
    auto j = inspect(container);
    auto& n = j["NetworkSettings"]["Networks"];
    if (!n.contains(network)) return "";
    return n[network]["IPAddress"].get<std::string>();
  }
  // GET / from inside a container with busybox nc (busybox-static's wget
  // crashes): out is the body, exit code 0 only for a 200 answer.
  Result http_in(const std::string& container, const std::string& host, const std::string& port = "80") {
    auto r = berth({"exec", container, "sh", "-c",
                    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 " + host + " " + port});
    return as_http(r);
  }
  // A file under <run_root>/netns: the containers' namespaces.
  std::vector<std::string> netns_files() const {
    std::vector<std::string> out;
    DIR* d = ::opendir((run_root_ + "/netns").c_str());
    if (!d) return out;
    while (auto* e = ::readdir(d))
      if (e->d_name[0] != '.') out.push_back(e->d_name);
    ::closedir(d);
    return out;
  }
  size_t endpoints(const std::string& network) {
    auto j = nlohmann::json::parse(berth({"network", "inspect", network}).out, nullptr, false);
    if (!j.is_array() || j.empty()) return 999;
    return j[0]["Containers"].size();
  }
  bool serving(const std::string& container, const std::string& host, const std::string& port = "80") {
    return eventually([&] { return http_in(container, host, port).exit_code == 0; }, 5000);
  }

  int octet_ = 0, port_base_ = 0;
  std::string outside_, outside_link_;
};

}  // namespace

TEST_F(NetworkContainer, ContainersOnANetworkTalkAndOtherNetworksCannotReachThem) {
  make_network("front", 1);
  make_network("back", 2);
  run_detached({"--network", "front", "--name", "web", "--hostname", "web"}, kHttpd);
  run_detached({"--network", "front", "--name", "client", "--network-alias", "cli"}, {"sleep", "100"});
  run_detached({"--network", "back", "--name", "outsider"}, {"sleep", "100"});

  std::string web = ip_on("web", "front");
  ASSERT_TRUE(contains(web, address(1, 0).substr(0, address(1, 0).size() - 1))) << web;
  EXPECT_EQ(ip_on("client", "front").rfind(address(1, 0).substr(0, address(1, 0).size() - 1), 0), 0u);
  ASSERT_TRUE(serving("client", web));
  auto got = http_in("client", web);
  EXPECT_EQ(got.exit_code, 0) << got.err;
  EXPECT_EQ(got.out, "hello-from-web\n");

  // Raw TCP both ways with nc: the data arrives as sent.
  // The listener takes connection after connection, so a try that raced
  // its start (or lost a slow machine's race) is simply tried again.
  run_detached({"--network", "front", "--name", "sink"},
               {"sh", "-c", "while :; do nc -l -p 9000 >> /tmp/got; done"});
  std::string sink = ip_on("sink", "front");
  EXPECT_TRUE(eventually([&] {
    berth({"exec", "client", "sh", "-c", "echo payload-42 | nc -w 1 " + sink + " 9000"});
    return berth({"exec", "sink", "cat", "/tmp/got"}).out.find("payload-42\n") != std::string::npos;
  }));

  // Another network: no route through berth's isolation.
  auto blocked = http_in("outsider", web);
  EXPECT_NE(blocked.exit_code, 0) << blocked.out;

  // The endpoint records what the DNS needs: name, hostname, aliases, netns.
  auto n = nlohmann::json::parse(berth({"network", "inspect", "front"}).out)[0];
  EXPECT_EQ(n["Containers"].size(), 3u);
  auto j = inspect("client");
  // Keyed by container id, as docker's; the endpoint id is inside.
  ASSERT_TRUE(n["Containers"].contains(j["Id"].get<std::string>())) << n["Containers"].dump();
  EXPECT_EQ(n["Containers"][j["Id"].get<std::string>()]["Name"], "client");
  EXPECT_EQ(n["Containers"][j["Id"].get<std::string>()]["EndpointID"],
            j["NetworkSettings"]["Networks"]["front"]["EndpointID"]);
  EXPECT_EQ(j["HostConfig"]["NetworkMode"], "front");
  EXPECT_EQ(j["NetworkSettings"]["Networks"]["front"]["Aliases"], nlohmann::json({"cli"}));
  EXPECT_EQ(j["NetworkSettings"]["Networks"]["front"]["DNSNames"], nlohmann::json({"client", "cli"}));
  EXPECT_EQ(inspect("web")["NetworkSettings"]["Networks"]["front"]["DNSNames"], nlohmann::json({"web", "web"}));

  // /etc/hosts names the container's hostname with its address.
  auto hosts = berth({"exec", "web", "cat", "/etc/hosts"});
  EXPECT_TRUE(contains(hosts.out, web)) << hosts.out;
  EXPECT_TRUE(contains(hosts.out, "web")) << hosts.out;
}

TEST_F(NetworkContainer, PublishedPortReachesTheContainerFromLoopbackAndTheHostAddress) {
  make_network("front", 1);
  std::string p1 = std::to_string(port_base_), p2 = std::to_string(port_base_ + 1);
  run_detached({"--network", "front", "--name", "web", "--hostname", "web", "-p", "127.0.0.1:" + p1 + ":80",
                "-p", p2 + ":80"},
               kHttpd);
  ASSERT_TRUE(eventually([&] { return http_host("127.0.0.1", p1).exit_code == 0; }));
  EXPECT_EQ(http_host("127.0.0.1", p1).out, "hello-from-web\n");

  std::string host = host_address();
  if (host.empty()) {
    ADD_FAILURE() << "the host has no global IPv4 address to test with";
  } else {
    auto r = http_host(host, p2);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "hello-from-web\n");
  }

  // port, ps and inspect show the bindings.
  auto port = berth({"port", "web"});
  EXPECT_EQ(port.out, "80/tcp -> 127.0.0.1:" + p1 + "\n80/tcp -> 0.0.0.0:" + p2 + "\n") << port.err;
  EXPECT_EQ(berth({"port", "web", "80"}).out, "127.0.0.1:" + p1 + "\n0.0.0.0:" + p2 + "\n");
  EXPECT_NE(berth({"port", "web", "81"}).exit_code, 0);
  auto ps = berth({"ps"});
  EXPECT_TRUE(contains(ps.out, "127.0.0.1:" + p1 + "->80/tcp, 0.0.0.0:" + p2 + "->80/tcp")) << ps.out;
  auto ports = inspect("web")["NetworkSettings"]["Ports"]["80/tcp"];
  ASSERT_EQ(ports.size(), 2u) << ports.dump();

  // -p CONTAINER_PORT: a random host port that works.
  run_detached({"--network", "front", "--name", "random", "--hostname", "random", "-p", "80"}, kHttpd);
  std::string where = trim(berth({"port", "random", "80/tcp"}).out);
  ASSERT_EQ(where.rfind("0.0.0.0:", 0), 0u) << where;
  EXPECT_TRUE(eventually([&] { return http_host("127.0.0.1", where.substr(8)).out == "hello-from-random\n"; }));

  // --expose: recorded in Config.ExposedPorts, bare in PORTS, and -P publishes it.
  run_detached({"--network", "front", "--name", "exposed", "--hostname", "exposed", "--expose", "80",
                "--expose", "7000-7001/udp"},
               kHttpd);
  auto exposed = inspect("exposed")["Config"]["ExposedPorts"];
  EXPECT_EQ(exposed, nlohmann::json::parse(R"({"80/tcp":{},"7000/udp":{},"7001/udp":{}})")) << exposed.dump();
  auto bare = berth({"ps", "--filter", "name=exposed", "--format", "{{.Ports}}"});
  EXPECT_TRUE(contains(bare.out, "80/tcp") && contains(bare.out, "7000/udp") && !contains(bare.out, "->"))
      << bare.out;
  run_detached({"--network", "front", "--name", "all", "--hostname", "all", "--expose", "80", "-P"}, kHttpd);
  std::string all = trim(berth({"port", "all", "80"}).out);
  ASSERT_EQ(all.rfind("0.0.0.0:", 0), 0u) << all;
  EXPECT_TRUE(eventually([&] { return http_host("127.0.0.1", all.substr(8)).out == "hello-from-all\n"; }));
}

TEST_F(NetworkContainer, OutboundTrafficIsMasqueraded) {
  // An "outside" host in a netns of ours, reachable from the host only,
  // with no route back to the container's subnet: only masquerade makes a
  // reply possible.
  std::random_device rd;
  outside_ = "berth-out-" + std::to_string(rd() % 100000);
  outside_link_ = "nctest" + std::to_string(rd() % 10000);
  ASSERT_EQ(host_run({kIp, "netns", "add", outside_}).exit_code, 0);
  ASSERT_EQ(host_run({kIp, "link", "add", outside_link_, "type", "veth", "peer", "name", "o0", "netns", outside_}).exit_code, 0);
  ASSERT_EQ(host_run({kIp, "addr", "add", address(250, 1) + "/30", "dev", outside_link_}).exit_code, 0);
  ASSERT_EQ(host_run({kIp, "link", "set", outside_link_, "up"}).exit_code, 0);
  ASSERT_EQ(host_run({kIp, "-n", outside_, "addr", "add", address(250, 2) + "/30", "dev", "o0"}).exit_code, 0);
  ASSERT_EQ(host_run({kIp, "-n", outside_, "link", "set", "o0", "up"}).exit_code, 0);
  TempDir www;
  www.write("index.html", "outside-page\n");
  ASSERT_EQ(host_run({kIp, "netns", "exec", outside_, "/bin/busybox", "httpd", "-p", "8080", "-h", www.path()}).exit_code, 0);

  make_network("front", 1);
  run_detached({"--network", "front", "--name", "client"}, {"sleep", "100"});
  ASSERT_TRUE(serving("client", address(250, 2), "8080"));
  EXPECT_EQ(http_in("client", address(250, 2), "8080").out, "outside-page\n");

  // An --internal network has no way out.
  auto r = berth({"network", "create", "--internal", "--subnet", subnet(3), "closed"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  run_detached({"--network", "closed", "--name", "shut"}, {"sleep", "100"});
  EXPECT_NE(http_in("shut", address(250, 2), "8080").exit_code, 0);
}

TEST_F(NetworkContainer, ConnectDisconnectAndRmLeaveNothing) {
  // Earlier networks of other tests may exist; compare this test's own.
  std::string links_before = host_links(), nft_before = nft_ruleset();
  make_network("front", 1);
  make_network("back", 2);
  std::string p1 = std::to_string(port_base_);
  run_detached({"--network", "front", "--name", "web", "-p", "127.0.0.1:" + p1 + ":80"}, kHttpd);
  auto created = berth({"create", "--rootfs", rootfs_, "--network", "front", "--name", "later", "sleep", "100"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_EQ(endpoints("front"), 2u);

  // Running: eth1 appears and works; disconnect takes it away.
  auto c = berth({"network", "connect", "--alias", "w2", "back", "web"});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  auto links = berth({"exec", "web", "ip", "-o", "addr"});
  EXPECT_TRUE(contains(links.out, "eth1")) << links.out;
  EXPECT_TRUE(contains(links.out, address(2, 0).substr(0, address(2, 0).size() - 1))) << links.out;
  EXPECT_EQ(ip_on("web", "back").rfind("10.", 0), 0u);
  run_detached({"--network", "back", "--name", "peer"}, {"sleep", "100"});
  EXPECT_TRUE(serving("peer", ip_on("web", "back")));
  ASSERT_EQ(berth({"network", "disconnect", "back", "web"}).exit_code, 0);
  EXPECT_FALSE(contains(berth({"exec", "web", "ip", "-o", "link"}).out, "eth1"));
  EXPECT_EQ(endpoints("back"), 1u);
  EXPECT_NE(berth({"network", "disconnect", "back", "web"}).exit_code, 0) << "not connected any more";

  // Stopped (created) container: connect, then start sees both.
  ASSERT_EQ(berth({"network", "connect", "back", "later"}).exit_code, 0);
  ASSERT_EQ(berth({"start", "later"}).exit_code, 0);
  auto later_links = berth({"exec", "later", "ip", "-o", "link"});
  EXPECT_TRUE(contains(later_links.out, "eth0") && contains(later_links.out, "eth1")) << later_links.out;

  // A network with containers cannot go.
  auto busy = berth({"network", "rm", "front"});
  EXPECT_NE(busy.exit_code, 0);
  EXPECT_TRUE(contains(busy.err, "active endpoints")) << busy.err;

  EXPECT_EQ(netns_files().size(), 3u);
  for (auto name : {"web", "later", "peer"}) ASSERT_EQ(berth({"rm", "-f", name}).exit_code, 0) << name;
  EXPECT_EQ(endpoints("front"), 0u);
  EXPECT_EQ(endpoints("back"), 0u);
  EXPECT_TRUE(netns_files().empty());
  EXPECT_TRUE(port_free(port_base_));
  ASSERT_EQ(berth({"network", "rm", "front", "back"}).exit_code, 0);
  EXPECT_EQ(host_links(), links_before);
  EXPECT_EQ(nft_ruleset(), nft_before);
}

TEST_F(NetworkContainer, TheDefaultBridgeNetworkIsMadeOnFirstUse) {
  std::string links_before = host_links();
  // No --network at all (the fixture's helpers add "none"): docker's default.
  auto r = run_berth({"--root", root_, "--run-root", run_root_, "run", "-d", "--rootfs", rootfs_, "--name", "plain",
                      "sleep", "100"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto n = nlohmann::json::parse(berth({"network", "inspect", "bridge"}).out, nullptr, false);
  ASSERT_TRUE(n.is_array() && n.size() == 1) << n.dump();
  EXPECT_EQ(n[0]["Driver"], "bridge");
  EXPECT_EQ(n[0]["Containers"].size(), 1u);
  auto j = inspect("plain");
  EXPECT_EQ(j["HostConfig"]["NetworkMode"], "bridge");
  std::string ip = j["NetworkSettings"]["IPAddress"];
  EXPECT_FALSE(ip.empty());
  EXPECT_EQ(j["NetworkSettings"]["Networks"]["bridge"]["IPAddress"], ip);
  EXPECT_TRUE(contains(berth({"exec", "plain", "ip", "-o", "addr"}).out, ip));
  // Aliases and --ip are for user networks only, as docker says.
  auto bad = berth({"run", "--rootfs", rootfs_, "--network", "bridge", "--network-alias", "x", "true"});
  EXPECT_EQ(bad.exit_code, 125);
  ASSERT_EQ(berth({"rm", "-f", "plain"}).exit_code, 0);
  ASSERT_EQ(berth({"network", "rm", "bridge"}).exit_code, 0);
  EXPECT_EQ(host_links(), links_before);
}

TEST_F(NetworkContainer, TwoRootsNeverShareADefaultSubnetOrBridge) {
  TempDir other;
  std::string root2 = other.path() + "/root", run2 = other.path() + "/run";
  auto start = [&](const std::string& root, const std::string& run_root, const std::string& name) {
    return std::async(std::launch::async, [=, this] {
      return run_berth({"--root", root, "--run-root", run_root, "run", "-d", "--rootfs", rootfs_, "--name", name,
                        "--network", "bridge", "sleep", "100"});
    });
  };
  auto a = start(root_, run_root_, "one");
  auto b = start(root2, run2, "two");
  auto ra = a.get(), rb = b.get();
  EXPECT_EQ(ra.exit_code, 0) << ra.err;
  EXPECT_EQ(rb.exit_code, 0) << rb.err;
  auto net_of = [](const std::string& root) {
    auto j = nlohmann::json::parse(run_berth({"--root", root, "network", "inspect", "bridge"}).out, nullptr, false);
    return j.is_array() && !j.empty() ? j[0] : nlohmann::json();
  };
  auto n1 = net_of(root_), n2 = net_of(root2);
  ASSERT_FALSE(n1.is_null());
  ASSERT_FALSE(n2.is_null());
  EXPECT_NE(n1["IPAM"]["Config"][0]["Subnet"], n2["IPAM"]["Config"][0]["Subnet"]);
  EXPECT_NE(n1["Options"]["com.docker.network.bridge.name"], n2["Options"]["com.docker.network.bridge.name"]);
  run_berth({"--root", root2, "--run-root", run2, "rm", "-f", "two"});
  auto rm2 = run_berth({"--root", root2, "--run-root", run2, "network", "rm", "bridge"});
  EXPECT_EQ(rm2.exit_code, 0) << rm2.err;
}

TEST_F(NetworkContainer, BadInputIsAClearErrorAndChangesNothing) {
  make_network("front", 1);
  std::string links_before = host_links(), nft_before = nft_ruleset();
  auto expect_refused = [&](std::vector<std::string> flags, const std::string& message) {
    auto r = run(flags, {"true"});
    EXPECT_EQ(r.exit_code, 125) << message;
    EXPECT_TRUE(contains(r.err, message)) << r.err;
    EXPECT_EQ(berth({"ps", "-aq"}).out, "") << message;
    EXPECT_EQ(endpoints("front"), 0u) << message;
    EXPECT_TRUE(netns_files().empty()) << message;
  };
  expect_refused({"--network", "nosuch"}, "network nosuch not found");
  expect_refused({"--network", "front", "--ip", address(9, 5)}, "not in the subnet");
  expect_refused({"--network", "front", "-p", "99999:80"}, "99999");
  expect_refused({"--network", "front", "-p", "127.0.0.1:80:80/sctp"}, "sctp");
  expect_refused({"--network", "front", "--add-host", "nocolon"}, "--add-host");
  expect_refused({"--network", "container:nosuch"}, "nosuch");
  expect_refused({"--network", "front", "--expose", "80:80"}, "--expose");
  expect_refused({"--network", "front", "--expose", "70000"}, "70000");
  // A port a host process holds.
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port_base_));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  ::listen(fd, 1);
  expect_refused({"--network", "front", "-p", "127.0.0.1:" + std::to_string(port_base_) + ":80"},
                 "port is already allocated");
  ::close(fd);
  // One berth container holds it: a second is refused.
  run_detached({"--network", "front", "--name", "first", "-p", std::to_string(port_base_) + ":80"}, {"sleep", "100"});
  auto second = run({"--network", "front", "-p", "127.0.0.1:" + std::to_string(port_base_) + ":80"}, {"true"});
  EXPECT_EQ(second.exit_code, 125);
  EXPECT_TRUE(contains(second.err, "already allocated")) << second.err;
  EXPECT_EQ(endpoints("front"), 1u);
  ASSERT_EQ(berth({"rm", "-f", "first"}).exit_code, 0);
  // Overlapping subnet, invalid CIDR: no network, no link.
  auto overlap = berth({"network", "create", "--subnet", "10." + std::to_string(octet_) + ".0.0/16", "wide"});
  EXPECT_NE(overlap.exit_code, 0);
  EXPECT_TRUE(contains(overlap.err, "overlaps")) << overlap.err;
  EXPECT_NE(berth({"network", "create", "--subnet", "10.1.2.0/33", "bad"}).exit_code, 0);
  EXPECT_EQ(host_links(), links_before);
  EXPECT_EQ(nft_ruleset(), nft_before);
}
