// IPAM: subnet choice, address allocation, persistence and locking.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>

#include "base/error.h"
#include "net/ipam.h"
#include "net/store.h"
#include "tests/support/run.h"

using namespace berth::net;

static Subnet S(const char* s) { return Subnet::parse(s); }
static Ipv4 A(const char* s) { return Ipv4::parse(s); }

TEST(NetAddress, ParsesAndFormats) {
  EXPECT_EQ(A("10.1.2.3").to_string(), "10.1.2.3");
  EXPECT_EQ(A("255.255.255.255").value, 0xffffffffu);
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", "a.b.c.d", "1..2.3"})
    EXPECT_FALSE(Ipv4::try_parse(bad)) << bad;
  EXPECT_EQ(S("10.0.0.0/8").to_string(), "10.0.0.0/8");
  for (const char* bad : {"10.0.0.0", "10.0.0.1/24", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/x", "300.0.0.0/8"})
    EXPECT_FALSE(Subnet::try_parse(bad)) << bad;
  EXPECT_THROW(Subnet::parse("10.0.0.0/33"), berth::Error);
}

TEST(NetAddress, SubnetArithmetic) {
  auto s = S("10.1.0.0/16");
  EXPECT_EQ(s.broadcast().to_string(), "10.1.255.255");
  EXPECT_EQ(s.first_host().to_string(), "10.1.0.1");
  EXPECT_EQ(s.last_host().to_string(), "10.1.255.254");
  EXPECT_TRUE(s.contains(A("10.1.200.3")));
  EXPECT_FALSE(s.contains(A("10.2.0.1")));
  EXPECT_TRUE(s.overlaps(S("10.0.0.0/8")));
  EXPECT_TRUE(S("10.0.0.0/8").overlaps(s));
  EXPECT_TRUE(s.overlaps(S("10.1.5.0/24")));
  EXPECT_FALSE(s.overlaps(S("10.2.0.0/16")));
  EXPECT_TRUE(S("0.0.0.0/0").overlaps(s));
}

TEST(NetIpam, DefaultPoolStartsWithDockersBridgeSubnet) {
  auto pool = default_subnet_pool();
  ASSERT_GE(pool.size(), 16u);
  EXPECT_EQ(pool[0].to_string(), "172.17.0.0/16");
  EXPECT_EQ(pool[1].to_string(), "172.18.0.0/16");
  EXPECT_EQ(pool[14].to_string(), "172.31.0.0/16");
  EXPECT_EQ(pool[15].to_string(), "192.168.0.0/20");
}

TEST(NetIpam, ChooseSubnetSkipsOverlaps) {
  auto pool = default_subnet_pool();
  EXPECT_EQ(choose_subnet(pool, {}).to_string(), "172.17.0.0/16");
  // A host route inside 172.17/16 and another berth network on 172.18/16.
  EXPECT_EQ(choose_subnet(pool, {S("172.17.3.0/24"), S("172.18.0.0/16")}).to_string(), "172.19.0.0/16");
  // A wide host route swallows the whole 172.16/12 range.
  EXPECT_EQ(choose_subnet(pool, {S("172.16.0.0/12")}).to_string(), "192.168.0.0/20");
  EXPECT_THROW(choose_subnet(pool, {S("172.16.0.0/12"), S("192.168.0.0/16")}), berth::Error);
}

TEST(NetIpam, GatewayRules) {
  EXPECT_EQ(choose_gateway(S("10.9.0.0/24"), {}).to_string(), "10.9.0.1");
  EXPECT_EQ(choose_gateway(S("10.9.0.0/24"), A("10.9.0.254")).to_string(), "10.9.0.254");
  EXPECT_THROW(choose_gateway(S("10.9.0.0/24"), A("10.9.1.1")), berth::Error);
  EXPECT_THROW(choose_gateway(S("10.9.0.0/24"), A("10.9.0.255")), berth::Error);
  EXPECT_THROW(choose_gateway(S("10.9.0.0/24"), A("10.9.0.0")), berth::Error);
  EXPECT_THROW(choose_gateway(S("10.9.0.0/31"), {}), berth::Error);
}

TEST(NetIpam, AllocatesSequentiallySkippingGatewayAndReuseLater) {
  AddressAllocator a(S("10.9.0.0/29"), A("10.9.0.1"), {});
  // /29: .1 gateway, .2-.6 hosts, .7 broadcast.
  std::vector<std::string> got;
  for (int i = 0; i < 5; ++i) got.push_back(a.allocate().to_string());
  EXPECT_EQ(got, (std::vector<std::string>{"10.9.0.2", "10.9.0.3", "10.9.0.4", "10.9.0.5", "10.9.0.6"}));
  EXPECT_THROW(a.allocate(), berth::Error);  // exhausted
  a.release(A("10.9.0.3"));
  EXPECT_EQ(a.allocate().to_string(), "10.9.0.3");
}

TEST(NetIpam, ReleasedAddressIsNotReusedImmediately) {
  AddressAllocator a(S("10.9.0.0/24"), A("10.9.0.1"), {});
  auto first = a.allocate();
  a.release(first);
  EXPECT_NE(a.allocate(), first);
}

TEST(NetIpam, ExplicitAddressIsCheckedAndHonoured) {
  AddressAllocator a(S("10.9.0.0/24"), A("10.9.0.1"), {A("10.9.0.2")});
  EXPECT_EQ(a.reserve(A("10.9.0.50")).to_string(), "10.9.0.50");
  EXPECT_THROW(a.reserve(A("10.9.0.50")), berth::Error);   // taken
  EXPECT_THROW(a.reserve(A("10.9.0.2")), berth::Error);    // taken before
  EXPECT_THROW(a.reserve(A("10.9.0.1")), berth::Error);    // gateway
  EXPECT_THROW(a.reserve(A("10.9.0.255")), berth::Error);  // broadcast
  EXPECT_THROW(a.reserve(A("10.9.1.5")), berth::Error);    // outside
  EXPECT_EQ(a.allocate().to_string(), "10.9.0.3");         // skips .2 taken
}

static NetworkRecord sample_network(const std::string& name, const char* subnet) {
  NetworkRecord r;
  r.id = random_hex_id();
  r.name = name;
  r.subnet = S(subnet);
  r.gateway = r.subnet.first_host();
  r.bridge = "br-" + r.short_id();
  r.labels = {{"a", "b"}};
  return r;
}

TEST(NetStore, RoundTripsAndFinds) {
  berth::test::TempDir tmp;
  NetworkStore store(tmp.path());
  auto r = sample_network("front", "10.9.0.0/24");
  EndpointRecord e;
  e.id = random_hex_id();
  e.name = "web";
  e.aliases = {"www"};
  e.address = A("10.9.0.2");
  e.ports = {{"127.0.0.1", 8080, 80, "tcp"}};
  r.endpoints[e.id] = e;
  r.last_allocated = e.address;
  store.save(r);
  auto back = store.get("front");
  EXPECT_EQ(to_json_text(back), to_json_text(r));
  EXPECT_EQ(store.get(r.id.substr(0, 5)).name, "front");
  EXPECT_FALSE(store.find("nope"));
  EXPECT_THROW(store.get("nope"), berth::Error);
  store.remove(r.id);
  EXPECT_TRUE(store.list().empty());
}

// Allocates one address the way the network manager does: lock, load,
// allocate, save. Used by the concurrency test from several processes.
static Ipv4 allocate_one(NetworkStore& store, const std::string& network) {
  auto lock = store.lock();
  auto r = store.get(network);
  std::set<Ipv4> taken;
  for (auto& [id, e] : r.endpoints) taken.insert(e.address);
  AddressAllocator alloc(r.subnet, r.gateway, taken, r.last_allocated);
  EndpointRecord e;
  e.id = random_hex_id();
  e.address = alloc.allocate();
  r.last_allocated = e.address;
  r.endpoints[e.id] = e;
  store.save(r);
  return e.address;
}

TEST(NetStore, ConcurrentProcessesNeverShareAnAddress) {
  berth::test::TempDir tmp;
  NetworkStore store(tmp.path());
  store.save(sample_network("busy", "10.9.0.0/24"));
  constexpr int kProcesses = 6, kEach = 10;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      try {
        NetworkStore child_store(tmp.path());
        for (int i = 0; i < kEach; ++i) allocate_one(child_store, "busy");
        ::_exit(0);
      } catch (...) {
        ::_exit(1);
      }
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  // A "restart": a fresh store object reads what the processes left.
  auto r = NetworkStore(tmp.path()).get("busy");
  std::set<Ipv4> distinct;
  for (auto& [id, e] : r.endpoints) distinct.insert(e.address);
  EXPECT_EQ(r.endpoints.size(), size_t{kProcesses * kEach});
  EXPECT_EQ(distinct.size(), size_t{kProcesses * kEach});
  // And allocation after the restart continues without duplicates.
  auto next = allocate_one(store, "busy");
  EXPECT_FALSE(distinct.count(next));
}
