// Bridge networks on the real kernel: bridges, veths into network
// namespaces, nftables NAT/ports/isolation and the embedded DNS, driven
// through net::NetworkManager. Each test uses its own --root, its own netns
// (ip netns add, deleted in TearDown), its own subnets (10.<random>.x.0/24)
// and talks only to loopback and the namespaces it made.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "net/net.h"
#include "tests/support/run.h"
#include "tests/unit/net_dns_wire.h"

using namespace berth::net;
using berth::test::run;

namespace {

// Test-side tools only: berth itself never runs ip or nft.
const std::string kIp = berth::path_exists("/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip";
const std::string kNft = berth::path_exists("/usr/sbin/nft") ? "/usr/sbin/nft" : "/sbin/nft";

berth::test::Result sh(const std::string& command) { return run({"/bin/sh", "-c", command}); }

// A network namespace made with `ip netns add` and always deleted.
class TestNetns {
 public:
  TestNetns() : name_("berth-test-" + random_hex_id(8)) {
    auto r = run({kIp, "netns", "add", name_});
    if (r.exit_code != 0) throw std::runtime_error("ip netns add: " + r.err);
  }
  ~TestNetns() { run({kIp, "netns", "del", name_}); }
  const std::string& name() const { return name_; }
  std::string path() const { return "/run/netns/" + name_; }
  berth::test::Result exec(const std::string& command) const {
    return run({kIp, "netns", "exec", name_, "/bin/sh", "-c", command});
  }

 private:
  std::string name_;
};

// A process running until the test ends (killed and reaped at scope exit).
class Background {
 public:
  explicit Background(std::vector<std::string> argv) {
    pid_ = ::fork();
    if (pid_ == 0) {
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Background() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }

 private:
  pid_t pid_ = -1;
};

uint16_t free_tcp_port() {
  berth::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_ANY);
  ::bind(fd.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  socklen_t len = sizeof sin;
  ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&sin), &len);
  return ntohs(sin.sin_port);
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

}  // namespace

class NetDatapath : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (bridges, netns, nftables)";
    // A /16 of 10/8 per test run: 10.100.0.0 .. 10.199.0.0.
    second_octet_ = 100 + std::stoi(random_hex_id(4), nullptr, 16) % 100;
  }

  void TearDown() override {
    processes_.clear();
    for (auto& n : manager_.list()) {
      for (auto& [id, e] : n.endpoints) try {
          manager_.disconnect(n.id, id);
        } catch (const std::exception& e) {
          ADD_FAILURE() << "teardown disconnect: " << e.what();
        }
      try {
        manager_.remove(n.id);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "teardown remove: " << e.what();
      }
    }
    namespaces_.clear();
    for (auto& link : host_links_) run({kIp, "link", "del", link});
  }

  std::string subnet(int third) const {
    return "10." + std::to_string(second_octet_) + "." + std::to_string(third) + ".0/24";
  }
  std::string address(int third, int fourth) const {
    return "10." + std::to_string(second_octet_) + "." + std::to_string(third) + "." + std::to_string(fourth);
  }

  NetworkRecord create(const std::string& name, int third, bool internal = false) {
    CreateNetworkOptions o;
    o.name = name;
    o.subnet = subnet(third);
    o.internal = internal;
    return manager_.create(o);
  }

  TestNetns& netns() { return *namespaces_.emplace_back(std::make_unique<TestNetns>()); }

  // busybox httpd serving `body` on port 80 inside `ns`; returns once it answers.
  void serve_http(TestNetns& ns, const std::string& body) {
    std::string dir = tmp_.path() + "/www-" + ns.name();
    berth::make_dirs(dir);
    berth::write_file_atomic(dir + "/index.html", body);
    processes_.push_back(std::make_unique<Background>(std::vector<std::string>{
        kIp, "netns", "exec", ns.name(), "/bin/busybox", "httpd", "-f", "-p", "80", "-h", dir}));
    for (int i = 0; i < 50; ++i) {
      if (ns.exec("/bin/busybox timeout 2 /bin/busybox wget -q -O - http://127.0.0.1/").out == body) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "httpd did not start in " << ns.name();
  }

  // A host link with a /32 address the test owns: "the host's own
  // address", without touching the machine's real interfaces. (A veth
  // pair, because not every kernel has the dummy driver.)
  std::string add_host_address(int third) {
    std::string link = "btd" + random_hex_id(6);
    std::string ip = address(third, 1);
    EXPECT_EQ(run({kIp, "link", "add", link, "type", "veth", "peer", "name", "btp" + link.substr(3)}).exit_code, 0);
    host_links_.push_back(link);
    run({kIp, "link", "set", "btp" + link.substr(3), "up"});
    EXPECT_EQ(run({kIp, "addr", "add", ip + "/32", "dev", link}).exit_code, 0);
    EXPECT_EQ(run({kIp, "link", "set", link, "up"}).exit_code, 0);
    return ip;
  }

  berth::test::TempDir tmp_;
  NetworkManager manager_{tmp_.path()};
  int second_octet_ = 0;
  std::vector<std::unique_ptr<TestNetns>> namespaces_;
  std::vector<std::unique_ptr<Background>> processes_;
  std::vector<std::string> host_links_;
};

TEST_F(NetDatapath, CreateMakesABridgeWithItsGatewayAndRemoveLeavesNothing) {
  auto net = create("front", 1);
  EXPECT_EQ(net.bridge, "br-" + net.id.substr(0, 12));
  EXPECT_EQ(net.gateway.to_string(), address(1, 1));
  auto addr = run({kIp, "-o", "-4", "addr", "show", "dev", net.bridge});
  EXPECT_TRUE(contains(addr.out, address(1, 1) + "/24")) << addr.out;
  EXPECT_TRUE(contains(run({kIp, "-o", "link", "show", net.bridge}).out, "state UP") ||
              contains(run({kIp, "-o", "link", "show", net.bridge}).out, ",UP"));
  EXPECT_EQ(read_sysctl("net.ipv4.conf." + net.bridge + ".route_localnet"), "1");
  EXPECT_EQ(read_sysctl("net.ipv4.ip_forward"), "1");
  auto table = run({kNft, "list", "table", "ip", "berth-" + net.id.substr(0, 12)});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_TRUE(contains(table.out, "masquerade"));
  EXPECT_TRUE(contains(run({kNft, "list", "set", "ip", "berth", "bridges"}).out, net.bridge));
  EXPECT_TRUE(contains(run({kNft, "list", "table", "ip", "berth"}).out, "berth network isolation"));

  manager_.remove("front");
  EXPECT_FALSE(contains(run({kIp, "-o", "link"}).out, net.bridge));
  auto ruleset = run({kNft, "list", "ruleset"}).out;
  EXPECT_FALSE(contains(ruleset, "berth-" + net.id.substr(0, 12)));
  EXPECT_FALSE(contains(ruleset, net.bridge));
  EXPECT_TRUE(manager_.list().empty());
  EXPECT_THROW(manager_.inspect("front"), berth::Error);
}

TEST_F(NetDatapath, DefaultPoolSkipsRoutedSubnets) {
  auto routes = RouteSocket::in_current_netns().ipv4_routes();
  CreateNetworkOptions o;
  o.name = "pooled-a";
  auto a = manager_.create(o);
  o.name = "pooled-b";
  auto b = manager_.create(o);
  for (auto& route : routes) {
    EXPECT_FALSE(a.subnet.overlaps(route)) << a.subnet.to_string() << " vs " << route.to_string();
    EXPECT_FALSE(b.subnet.overlaps(route)) << b.subnet.to_string() << " vs " << route.to_string();
  }
  EXPECT_FALSE(a.subnet.overlaps(b.subnet));
  EXPECT_NE(a.subnet.to_string(), "172.17.0.0/16");  // kept for the default bridge network
  EXPECT_NE(b.subnet.to_string(), "172.17.0.0/16");
  auto pool = default_subnet_pool();
  EXPECT_NE(std::find(pool.begin(), pool.end(), a.subnet), pool.end());
  EXPECT_EQ(a.gateway, a.subnet.first_host());
}

TEST_F(NetDatapath, SameNetworkTalksAndResolvesOtherNetworkCannot) {
  auto front = create("front", 1);
  auto back = create("back", 2);
  auto& web_ns = netns();
  auto& client_ns = netns();
  auto& stranger_ns = netns();
  auto web = manager_.connect("front", {web_ns.path(), "web", "webhost", {"www"}, std::nullopt, {}});
  auto client = manager_.connect("front", {client_ns.path(), "client", "", {}, std::nullopt, {}});
  auto stranger = manager_.connect("back", {stranger_ns.path(), "stranger", "", {}, std::nullopt, {}});
  EXPECT_EQ(web.ifname, "eth0");
  EXPECT_TRUE(front.subnet.contains(web.address));
  EXPECT_NE(web.address, client.address);
  EXPECT_TRUE(contains(web_ns.exec("ip -o -4 addr show dev eth0").out, web.address.to_string() + "/24"));
  EXPECT_TRUE(contains(web_ns.exec("ip route").out, "default via " + front.gateway.to_string()));
  EXPECT_TRUE(contains(web_ns.exec("ip -o link show lo").out, "UP"));
  EXPECT_TRUE(contains(run({kIp, "-o", "link", "show", web.host_veth}).out, "master " + front.bridge));

  serve_http(web_ns, "hello from web");

  testwire::FakeUpstream upstream;
  {
    testwire::ServerThread dns({"127.0.0.1:" + std::to_string(upstream.port())}, [&](DnsServer& s) {
      register_names(s.names(), manager_.list());
      s.attach_netns(berth::UniqueFd(open_netns(web_ns.path())).get(), {front.id});
      s.attach_netns(berth::UniqueFd(open_netns(client_ns.path())).get(), {front.id});
      s.attach_netns(berth::UniqueFd(open_netns(stranger_ns.path())).get(), {back.id});
    });
    // By container name, hostname and alias; and the reverse.
    for (const char* name : {"web", "webhost", "www"}) {
      auto r = client_ns.exec(std::string("/bin/busybox nslookup ") + name + " 127.0.0.11");
      EXPECT_EQ(r.exit_code, 0) << name << ": " << r.out << r.err;
      EXPECT_TRUE(contains(r.out, "Address: " + web.address.to_string())) << r.out;
    }
    auto ptr = client_ns.exec("/bin/busybox nslookup " + web.address.to_string() + " 127.0.0.11");
    EXPECT_TRUE(contains(ptr.out, "web")) << ptr.out;
    // Forwarded to the (fake) upstream.
    auto up = client_ns.exec("/bin/busybox nslookup upstream.test 127.0.0.11");
    EXPECT_TRUE(contains(up.out, "10.99.0.1")) << up.out << up.err;
    // Another network's container does not see the name.
    auto hidden = stranger_ns.exec("/bin/busybox nslookup web 127.0.0.11");
    EXPECT_NE(hidden.exit_code, 0) << hidden.out;
    EXPECT_FALSE(contains(hidden.out, web.address.to_string())) << hidden.out;
  }
  // TCP across the bridge, by address.
  auto fetched = client_ns.exec("/bin/busybox timeout 3 /bin/busybox wget -q -O - http://" + web.address.to_string() + "/");
  EXPECT_EQ(fetched.out, "hello from web") << fetched.err;
  // Isolation: the other network cannot reach it.
  auto blocked = stranger_ns.exec("/bin/busybox timeout 2 /bin/busybox wget -q -O - http://" + web.address.to_string() + "/");
  EXPECT_NE(blocked.exit_code, 0);
  EXPECT_NE(blocked.out, "hello from web");
  // The DNS DNAT table went away with the server.
  EXPECT_FALSE(contains(client_ns.exec("nft list ruleset").out, "berth-dns"));
}

TEST_F(NetDatapath, PublishedPortReachesTheContainerFromLoopbackAndHostAddress) {
  create("front", 1);
  std::string host_ip = add_host_address(250);
  auto& web_ns = netns();
  uint16_t loopback_port = free_tcp_port();
  uint16_t any_port = free_tcp_port();
  auto web = manager_.connect("front", {web_ns.path(), "web", "", {}, std::nullopt,
                                        {"127.0.0.1:" + std::to_string(loopback_port) + ":80",
                                         std::to_string(any_port) + ":80"}});
  ASSERT_EQ(web.ports.size(), 2u);
  EXPECT_EQ(web.ports[0].host_port, loopback_port);
  serve_http(web_ns, "published");
  auto via_loopback = sh("/bin/busybox timeout 3 /bin/busybox wget -q -O - http://127.0.0.1:" + std::to_string(loopback_port) + "/");
  EXPECT_EQ(via_loopback.out, "published") << via_loopback.err;
  auto via_host_ip = sh("/bin/busybox timeout 3 /bin/busybox wget -q -O - http://" + host_ip + ":" + std::to_string(any_port) + "/");
  EXPECT_EQ(via_host_ip.out, "published") << via_host_ip.err;
  // The loopback-only binding does not answer on the host address.
  auto wrong = sh("/bin/busybox timeout 2 /bin/busybox wget -q -O - http://" + host_ip + ":" + std::to_string(loopback_port) + "/");
  EXPECT_NE(wrong.out, "published");

  manager_.disconnect("front", "web");
  auto ruleset = run({kNft, "list", "ruleset"}).out;
  EXPECT_FALSE(contains(ruleset, "endpoint:" + web.id));
  EXPECT_FALSE(contains(ruleset, "dport " + std::to_string(loopback_port)));
  auto after = sh("/bin/busybox timeout 2 /bin/busybox wget -q -O - http://127.0.0.1:" + std::to_string(loopback_port) + "/");
  EXPECT_NE(after.out, "published");
}

TEST_F(NetDatapath, RandomHostPortIsChosenAndWorks) {
  create("front", 1);
  auto& web_ns = netns();
  auto web = manager_.connect("front", {web_ns.path(), "web", "", {}, std::nullopt, {"127.0.0.1::80"}});
  ASSERT_EQ(web.ports.size(), 1u);
  EXPECT_NE(web.ports[0].host_port, 0);
  serve_http(web_ns, "random");
  auto r = sh("/bin/busybox timeout 3 /bin/busybox wget -q -O - http://127.0.0.1:" + std::to_string(web.ports[0].host_port) + "/");
  EXPECT_EQ(r.out, "random") << r.err;
}

TEST_F(NetDatapath, OutboundTrafficIsMasqueradedAndInternalNetworksStayInside) {
  create("front", 1);
  create("sealed", 3, /*internal=*/true);
  // An "outside" host: a netns behind a veth whose only route is its own
  // /30, so a reply reaches a container only if its traffic was NATed.
  auto& outside = netns();
  std::string link = "bto" + random_hex_id(6);
  ASSERT_EQ(run({kIp, "link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", outside.name()}).exit_code, 0);
  host_links_.push_back(link);
  run({kIp, "addr", "add", address(251, 1) + "/30", "dev", link});
  run({kIp, "link", "set", link, "up"});
  outside.exec("ip addr add " + address(251, 2) + "/30 dev eth0 && ip link set eth0 up && ip link set lo up");
  serve_http(outside, "outside world");

  auto& inner = netns();
  auto& sealed = netns();
  manager_.connect("front", {inner.path(), "inner", "", {}, std::nullopt, {}});
  auto s = manager_.connect("sealed", {sealed.path(), "sealed", "", {}, std::nullopt, {}});
  auto out = inner.exec("/bin/busybox timeout 3 /bin/busybox wget -q -O - http://" + address(251, 2) + "/");
  EXPECT_EQ(out.out, "outside world") << out.err;
  EXPECT_FALSE(contains(sealed.exec("ip route").out, "default"));
  auto blocked = sealed.exec("ip route add default via " + address(3, 1) + " ; /bin/busybox timeout 2 /bin/busybox wget -q -O - http://" +
                             address(251, 2) + "/");
  EXPECT_NE(blocked.out, "outside world");
}

TEST_F(NetDatapath, BadInputIsRefusedAndChangesNothing) {
  auto front = create("front", 1);
  auto& ns = netns();
  auto links_before = run({kIp, "-o", "link"}).out;
  auto records_before = to_json_text(manager_.inspect("front"));

  auto expect_error = [](auto fn, const std::string& words) {
    try {
      fn();
      ADD_FAILURE() << "no error; wanted one mentioning \"" << words << "\"";
    } catch (const berth::Error& e) {
      EXPECT_TRUE(contains(e.what(), words)) << e.what();
    }
  };
  CreateNetworkOptions overlap;
  overlap.name = "overlap";
  overlap.subnet = address(1, 128) + "/25";
  expect_error([&] { manager_.create(overlap); }, "overlaps");
  CreateNetworkOptions bad_cidr;
  bad_cidr.name = "bad";
  bad_cidr.subnet = "10.1.2.300/24";
  expect_error([&] { manager_.create(bad_cidr); }, "invalid CIDR");
  CreateNetworkOptions same_name;
  same_name.name = "front";
  same_name.subnet = subnet(9);
  expect_error([&] { manager_.create(same_name); }, "already exists");
  expect_error([&] { manager_.connect("nosuch", {ns.path(), "x", "", {}, std::nullopt, {}}); }, "not found");
  expect_error([&] { manager_.remove("nosuch"); }, "not found");

  // A port a host process holds.
  berth::UniqueFd holder(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(holder.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  ::listen(holder.get(), 1);
  socklen_t len = sizeof sin;
  ::getsockname(holder.get(), reinterpret_cast<sockaddr*>(&sin), &len);
  std::string busy = "127.0.0.1:" + std::to_string(ntohs(sin.sin_port)) + ":80";
  expect_error([&] { manager_.connect("front", {ns.path(), "x", "", {}, std::nullopt, {busy}}); },
               "already allocated");
  expect_error([&] { manager_.connect("front", {ns.path(), "x", "", {}, address(2, 5), {}}); }, "not in subnet");
  expect_error([&] { manager_.connect("front", {ns.path(), "x", "", {}, std::nullopt, {"80/sctp"}}); }, "protocol");
  expect_error([&] { manager_.connect("front", {"/nonexistent/netns", "x", "", {}, std::nullopt, {}}); },
               "network namespace");

  EXPECT_EQ(manager_.list().size(), 1u);
  EXPECT_EQ(to_json_text(manager_.inspect("front")), records_before);
  EXPECT_EQ(run({kIp, "-o", "link"}).out, links_before);
  EXPECT_FALSE(contains(ns.exec("ip -o link").out, "eth0"));

  // A taken explicit address, once something holds it.
  auto first = manager_.connect("front", {ns.path(), "first", "", {}, address(1, 77), {}});
  EXPECT_EQ(first.address.to_string(), address(1, 77));
  auto& other = netns();
  expect_error([&] { manager_.connect("front", {other.path(), "second", "", {}, address(1, 77), {}}); },
               "already in use");
  expect_error([&] { manager_.remove("front"); }, "active endpoints");
  expect_error([&] { manager_.connect("front", {ns.path(), "again", "", {}, std::nullopt, {}}); },
               "already connected");
  expect_error([&] { manager_.connect("front", {other.path(), "first", "", {}, std::nullopt, {}}); },
               "already exists");
}

TEST_F(NetDatapath, RestartKeepsAddressesAndRulesAndRemovalLeavesNothing) {
  auto a = create("alpha", 1);
  auto b = create("beta", 2);
  auto& n1 = netns();
  auto& n2 = netns();
  auto& n3 = netns();
  auto e1 = manager_.connect("alpha", {n1.path(), "one", "", {}, std::nullopt, {"127.0.0.1::80"}});
  auto e2 = manager_.connect("alpha", {n2.path(), "two", "", {}, std::nullopt, {"127.0.0.1::81/udp"}});
  // One netns on two networks: eth0 and eth1.
  auto e3 = manager_.connect("beta", {n1.path(), "one", "", {}, std::nullopt, {}});
  auto e4 = manager_.connect("beta", {n3.path(), "three", "", {}, std::nullopt, {}});
  EXPECT_EQ(e3.ifname, "eth1");
  EXPECT_TRUE(contains(n1.exec("ip route").out, "default via " + a.gateway.to_string() + " dev eth0"));
  auto ruleset_before = run({kNft, "list", "ruleset"}).out;

  // "Restart": a new manager over the same root sees the same state and
  // hands out no address twice.
  NetworkManager restarted(tmp_.path());
  auto alpha = restarted.inspect("alpha");
  EXPECT_EQ(alpha.endpoints.at(e1.id).address, e1.address);
  auto& n4 = netns();
  auto e5 = restarted.connect("alpha", {n4.path(), "four", "", {}, std::nullopt, {}});
  for (auto* e : {&e1, &e2}) EXPECT_NE(e5.address, e->address);
  restarted.disconnect("alpha", "four");
  EXPECT_EQ(run({kNft, "list", "ruleset"}).out, ruleset_before);

  std::vector<std::string> veths = {e1.host_veth, e2.host_veth, e3.host_veth, e4.host_veth, e5.host_veth};
  manager_.disconnect("alpha", e1.id);
  // n1 keeps beta: its default route moves to beta's gateway, as docker does.
  EXPECT_TRUE(contains(n1.exec("ip route").out, "default via " + b.gateway.to_string() + " dev eth1"))
      << n1.exec("ip route").out;
  for (auto& [net, ep] : std::vector<std::pair<std::string, std::string>>{
           {"alpha", "two"}, {"beta", e3.id.substr(0, 12)}, {"beta", "three"}})
    manager_.disconnect(net, ep);
  EXPECT_TRUE(manager_.inspect("alpha").endpoints.empty());
  manager_.remove("alpha");
  manager_.remove(b.id);

  auto links = run({kIp, "-o", "link"}).out;
  auto ruleset = run({kNft, "list", "ruleset"}).out;
  for (auto& v : veths) EXPECT_FALSE(contains(links, v + "@")) << v;
  for (auto* n : {&a, &b}) {
    EXPECT_FALSE(contains(links, n->bridge)) << n->bridge;
    EXPECT_FALSE(contains(ruleset, "berth-" + n->id.substr(0, 12)));
    EXPECT_FALSE(contains(ruleset, n->bridge));
  }
  for (auto* e : {&e1, &e2, &e3, &e4, &e5}) EXPECT_FALSE(contains(ruleset, e->id));
  EXPECT_FALSE(contains(n1.exec("ip -o link").out, "eth0"));
  EXPECT_TRUE(manager_.list().empty());
  std::string dir = manager_.store().dir() + "/networks";
  EXPECT_TRUE(sh("ls -A " + dir).out.empty());
}

TEST_F(NetDatapath, ReconcileRepairsLostKernelStateAndReleasesDeadEndpoints) {
  auto front = create("front", 1);
  auto& alive = netns();
  auto dead = std::make_unique<TestNetns>();
  auto web = manager_.connect("front", {alive.path(), "web", "", {}, std::nullopt, {"127.0.0.1::80"}});
  auto gone = manager_.connect("front", {dead->path(), "gone", "", {}, std::nullopt, {"127.0.0.1::81"}});
  serve_http(alive, "survivor");
  std::string url = "http://127.0.0.1:" + std::to_string(web.ports[0].host_port) + "/";

  // Nothing to do when all is in place.
  auto quiet = manager_.reconcile();
  EXPECT_TRUE(quiet.repaired_networks.empty());
  EXPECT_TRUE(quiet.released_endpoints.empty());

  // A reboot-like loss: the bridge and the table vanish, one netns dies.
  dead.reset();
  ASSERT_EQ(run({kIp, "link", "del", front.bridge}).exit_code, 0);
  ASSERT_EQ(run({kNft, "delete", "table", "ip", "berth-" + front.id.substr(0, 12)}).exit_code, 0);
  EXPECT_NE(sh("/bin/busybox timeout 2 /bin/busybox wget -q -O - " + url).out, "survivor");

  auto report = manager_.reconcile();
  EXPECT_EQ(report.repaired_networks, std::vector<std::string>{"front"});
  EXPECT_EQ(report.released_endpoints, std::vector<std::string>{gone.id});
  EXPECT_TRUE(contains(run({kIp, "-o", "-4", "addr", "show", "dev", front.bridge}).out, address(1, 1) + "/24"));
  auto fetched = sh("/bin/busybox timeout 3 /bin/busybox wget -q -O - " + url);
  EXPECT_EQ(fetched.out, "survivor") << fetched.err;
  auto ruleset = run({kNft, "list", "ruleset"}).out;
  EXPECT_FALSE(contains(ruleset, "endpoint:" + gone.id));
  EXPECT_TRUE(contains(ruleset, "endpoint:" + web.id));
  EXPECT_EQ(manager_.inspect("front").endpoints.count(gone.id), 0u);
}

// A container's netns file gone while something still holds the netns (so
// its veth pair lives on, as it does for a moment after any netns dies,
// until the kernel's cleanup runs): reconcile releases the endpoint and
// deletes its veth itself rather than re-attaching it to the bridge.
TEST_F(NetDatapath, ReconcileReleasesAnEndpointWhoseNetnsFileIsGoneAndDeletesItsVeth) {
  create("back", 2);
  auto lingering = std::make_unique<TestNetns>();
  auto ep = manager_.connect("back", {lingering->path(), "lingering", "", {}, std::nullopt, {"127.0.0.1::82"}});
  berth::UniqueFd held(open_netns(lingering->path()));
  ASSERT_TRUE(held.get() >= 0);
  lingering.reset();  // the file goes; the netns (and the veth) stay while held
  ASSERT_TRUE(contains(run({kIp, "-o", "link"}).out, ep.host_veth + "@"));

  auto report = manager_.reconcile();
  EXPECT_EQ(report.released_endpoints, std::vector<std::string>{ep.id});
  EXPECT_FALSE(contains(run({kIp, "-o", "link"}).out, ep.host_veth + "@"));
  EXPECT_FALSE(contains(run({kNft, "list", "ruleset"}).out, "endpoint:" + ep.id));
  EXPECT_TRUE(manager_.inspect("back").endpoints.empty());
}

TEST_F(NetDatapath, DefaultNetworkIsBerth0On172_17AndMadeOnce) {
  auto host = RouteSocket::in_current_netns();
  if (host.link_exists(kDefaultBridgeName)) GTEST_SKIP() << "this host already has a berth0 bridge";
  bool docker_range_routed = false;
  for (auto& route : host.ipv4_routes())
    if (route.overlaps(Subnet::parse("172.17.0.0/16"))) docker_range_routed = true;
  auto first = manager_.ensure_default_network();
  auto again = manager_.ensure_default_network();
  EXPECT_EQ(first.id, again.id);
  EXPECT_EQ(first.name, "bridge");
  EXPECT_EQ(first.bridge, "berth0");
  if (!docker_range_routed) {
    EXPECT_EQ(first.subnet.to_string(), "172.17.0.0/16");
  }
  EXPECT_TRUE(host.link_exists("berth0"));
  EXPECT_EQ(manager_.list().size(), 1u);
}
