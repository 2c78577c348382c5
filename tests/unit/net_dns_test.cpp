// The embedded DNS: message handling (pure) and the libuv server over real
// sockets on loopback, with a fake upstream the test runs on 127.0.0.1.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include <atomic>
#include <functional>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "net/dns.h"
#include "tests/unit/net_dns_wire.h"

using namespace berth::net;
using namespace berth::net::testwire;

static Ipv4 A(const char* s) { return Ipv4::parse(s); }

TEST(NetDnsNames, LookupIsPerNetworkAndCaseInsensitive) {
  NameTable t;
  t.add("n1", "Web", A("10.1.0.2"));
  t.add("n1", "web", A("10.1.0.3"));
  t.add("n2", "db", A("10.2.0.2"));
  EXPECT_EQ(t.lookup("WEB.", {"n1"}), (std::vector<Ipv4>{A("10.1.0.2"), A("10.1.0.3")}));
  EXPECT_TRUE(t.lookup("web", {"n2"}).empty());
  EXPECT_EQ(t.lookup("db", {"n1", "n2"}).size(), 1u);
  EXPECT_EQ(t.reverse(A("10.1.0.3"), {"n1"}), "web");
  EXPECT_FALSE(t.reverse(A("10.1.0.3"), {"n2"}));
  t.remove_address("n1", A("10.1.0.2"));
  EXPECT_EQ(t.lookup("web", {"n1"}), (std::vector<Ipv4>{A("10.1.0.3")}));
  t.remove_network("n1");
  EXPECT_TRUE(t.lookup("web", {"n1"}).empty());
}

TEST(NetDnsMessages, AnswersARecordsRoundRobin) {
  NameTable t;
  t.add("n1", "web", A("10.1.0.2"));
  t.add("n1", "web", A("10.1.0.3"));
  auto q = build_query(0x1234, "web", kTypeA);
  auto first = handle_dns_query(q.data(), q.size(), t, {"n1"}, 0);
  auto second = handle_dns_query(q.data(), q.size(), t, {"n1"}, 1);
  ASSERT_TRUE(first.reply && second.reply);
  auto r1 = parse_reply(*first.reply), r2 = parse_reply(*second.reply);
  EXPECT_EQ(r1.id, 0x1234);
  EXPECT_EQ(r1.rcode, 0);
  EXPECT_EQ(r1.a, (std::vector<std::string>{"10.1.0.2", "10.1.0.3"}));
  EXPECT_EQ(r2.a, (std::vector<std::string>{"10.1.0.3", "10.1.0.2"}));
}

TEST(NetDnsMessages, LargeUdpAnswersAreTruncatedAndTcpCarriesAll) {
  NameTable t;
  for (uint32_t i = 0; i < 100; ++i) t.add("n1", "many", Ipv4{0x0a010000u + 2 + i});
  auto q = build_query(5, "many", kTypeA);
  auto udp = handle_dns_query(q.data(), q.size(), t, {"n1"}, 0, false);
  ASSERT_TRUE(udp.reply);
  EXPECT_LE(udp.reply->size(), 512u);
  EXPECT_TRUE((*udp.reply)[2] & 0x02) << "TC not set";
  auto r = parse_reply(*udp.reply);
  EXPECT_GT(r.a.size(), 10u);
  EXPECT_LT(r.a.size(), 100u);
  auto tcp = handle_dns_query(q.data(), q.size(), t, {"n1"}, 0, true);
  ASSERT_TRUE(tcp.reply);
  EXPECT_FALSE((*tcp.reply)[2] & 0x02);
  EXPECT_EQ(parse_reply(*tcp.reply).a.size(), 100u);
  // Two records fit easily: no TC.
  NameTable few;
  few.add("n1", "two", Ipv4{0x0a010002u});
  few.add("n1", "two", Ipv4{0x0a010003u});
  auto q2 = build_query(6, "two", kTypeA);
  auto small = handle_dns_query(q2.data(), q2.size(), few, {"n1"}, 0, false);
  EXPECT_FALSE((*small.reply)[2] & 0x02);
}

TEST(NetDnsMessages, KnownNameAnswersAaaaEmptyAndUnknownIsForwarded) {
  NameTable t;
  t.add("n1", "web", A("10.1.0.2"));
  auto aaaa = build_query(7, "web", kTypeAAAA);
  auto d = handle_dns_query(aaaa.data(), aaaa.size(), t, {"n1"}, 0);
  ASSERT_TRUE(d.reply);
  EXPECT_EQ(parse_reply(*d.reply).rcode, 0);
  EXPECT_TRUE(parse_reply(*d.reply).a.empty());
  auto other = build_query(8, "example.test", kTypeA);
  EXPECT_FALSE(handle_dns_query(other.data(), other.size(), t, {"n1"}, 0).reply);
  // A name on a network the asker is not on is not ours to answer.
  auto web = build_query(9, "web", kTypeA);
  EXPECT_FALSE(handle_dns_query(web.data(), web.size(), t, {"n2"}, 0).reply);
}

TEST(NetDnsMessages, AnswersPtrForContainerAddresses) {
  NameTable t;
  t.add("n1", "web", A("10.1.0.2"));
  auto q = build_query(3, "2.0.1.10.in-addr.arpa", kTypePTR);
  auto d = handle_dns_query(q.data(), q.size(), t, {"n1"}, 0);
  ASSERT_TRUE(d.reply);
  EXPECT_EQ(parse_reply(*d.reply).ptr, "web.");
  auto unknown = build_query(4, "9.0.1.10.in-addr.arpa", kTypePTR);
  EXPECT_FALSE(handle_dns_query(unknown.data(), unknown.size(), t, {"n1"}, 0).reply);
}

TEST(NetDnsMessages, MalformedQueriesGetFormerr) {
  NameTable t;
  std::vector<uint8_t> junk = {0xab, 0xcd, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xff};
  auto d = handle_dns_query(junk.data(), junk.size(), t, {"n1"}, 0);
  ASSERT_TRUE(d.reply);
  auto r = parse_reply(*d.reply);
  EXPECT_EQ(r.id, 0xabcd);
  EXPECT_EQ(r.rcode, 1);
  auto servfail = dns_servfail(junk.data(), junk.size());
  EXPECT_EQ(parse_reply(servfail).rcode, 2);
}

TEST(NetDnsMessages, ResolvConfUpstreams) {
  EXPECT_EQ(upstreams_from_resolv_conf("# c\nnameserver 10.0.0.1\nnameserver ::1\nsearch x\nnameserver 127.0.0.11\n"
                                       "nameserver 127.0.0.53\n"),
            (std::vector<std::string>{"10.0.0.1:53", "127.0.0.53:53"}));
}

TEST(NetDnsServer, AnswersOverUdpAndTcpAndForwardsTheRest) {
  FakeUpstream upstream;
  uint16_t udp_port = 0, tcp_port = 0;
  ServerThread st({"127.0.0.1:" + std::to_string(upstream.port())}, [&](DnsServer& s) {
    s.names().add("n1", "web", A("10.1.0.2"));
    int id = s.listen_here("127.0.0.1", 0, {"n1"});
    udp_port = s.udp_port_of(id);
    tcp_port = s.tcp_port_of(id);
  });
  auto local = parse_reply(udp_exchange(udp_port, build_query(11, "web", kTypeA)));
  EXPECT_EQ(local.id, 11);
  EXPECT_EQ(local.a, (std::vector<std::string>{"10.1.0.2"}));
  auto tcp = parse_reply(tcp_exchange(tcp_port, build_query(12, "web", kTypeA)));
  EXPECT_EQ(tcp.id, 12);
  EXPECT_EQ(tcp.a, (std::vector<std::string>{"10.1.0.2"}));
  auto forwarded = parse_reply(udp_exchange(udp_port, build_query(13, "upstream.test", kTypeA)));
  EXPECT_EQ(forwarded.id, 13);  // the original id is restored
  EXPECT_EQ(forwarded.a, (std::vector<std::string>{"10.99.0.1"}));
  auto missing = parse_reply(udp_exchange(udp_port, build_query(14, "nope.test", kTypeA)));
  EXPECT_EQ(missing.rcode, 3);  // the upstream's NXDOMAIN passes through
  auto forwarded_tcp = parse_reply(tcp_exchange(tcp_port, build_query(15, "upstream.test", kTypeA)));
  EXPECT_EQ(forwarded_tcp.a, (std::vector<std::string>{"10.99.0.1"}));
  EXPECT_GE(upstream.queries(), 3);
}

TEST(NetDnsServer, SilentUpstreamGivesServfail) {
  // A bound UDP socket that never answers.
  berth::UniqueFd silent(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(silent.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  socklen_t len = sizeof sin;
  ::getsockname(silent.get(), reinterpret_cast<sockaddr*>(&sin), &len);
  uint16_t port = 0;
  ServerThread st({"127.0.0.1:" + std::to_string(ntohs(sin.sin_port))},
                  [&](DnsServer& s) { port = s.udp_port_of(s.listen_here("127.0.0.1", 0, {"n1"})); });
  auto r = parse_reply(udp_exchange(port, build_query(21, "slow.test", kTypeA), 3000));
  EXPECT_EQ(r.id, 21);
  EXPECT_EQ(r.rcode, 2);
}

TEST(NetDnsServer, PerContainerUpstreamsReplaceTheServers) {
  FakeUpstream own;
  // The server-wide upstream is a port nobody answers on.
  berth::UniqueFd silent(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  auto sin = loopback(0);
  ASSERT_EQ(::bind(silent.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  socklen_t len = sizeof sin;
  ::getsockname(silent.get(), reinterpret_cast<sockaddr*>(&sin), &len);
  uint16_t with_dns = 0, without = 0;
  ServerThread st({"127.0.0.1:" + std::to_string(ntohs(sin.sin_port))}, [&](DnsServer& s) {
    with_dns = s.udp_port_of(s.listen_here("127.0.0.1", 0, {"n1"}, {"127.0.0.1:" + std::to_string(own.port())}));
    without = s.udp_port_of(s.listen_here("127.0.0.1", 0, {"n1"}));
  });
  EXPECT_EQ(parse_reply(udp_exchange(with_dns, build_query(31, "upstream.test", kTypeA))).a,
            (std::vector<std::string>{"10.99.0.1"}));
  EXPECT_EQ(parse_reply(udp_exchange(without, build_query(32, "upstream.test", kTypeA), 3000)).rcode, 2);
}

TEST(NetDnsServer, RejectsBadUpstreams) {
  uv_loop_t loop;
  uv_loop_init(&loop);
  EXPECT_THROW(DnsServer(&loop, DnsServerOptions{{"127.0.0.1:notaport"}, 500}), berth::Error);
  EXPECT_THROW(DnsServer(&loop, DnsServerOptions{{"example.test"}, 500}), berth::Error);
  uv_run(&loop, UV_RUN_NOWAIT);
  EXPECT_EQ(uv_loop_close(&loop), 0);
}

TEST(NetDnsServer, SilentFirstUpstreamFailsOverToTheNext) {
  FakeUpstream second;
  berth::UniqueFd silent(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  auto sin = loopback(0);
  ASSERT_EQ(::bind(silent.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  socklen_t len = sizeof sin;
  ::getsockname(silent.get(), reinterpret_cast<sockaddr*>(&sin), &len);
  uint16_t port = 0;
  ServerThread st({"127.0.0.1:" + std::to_string(ntohs(sin.sin_port)), "127.0.0.1:" + std::to_string(second.port())},
                  [&](DnsServer& s) { port = s.udp_port_of(s.listen_here("127.0.0.1", 0, {"n1"})); });
  auto r = parse_reply(udp_exchange(port, build_query(41, "upstream.test", kTypeA), 3000));
  EXPECT_EQ(r.id, 41);
  EXPECT_EQ(r.a, (std::vector<std::string>{"10.99.0.1"}));
}

TEST(NetDnsServer, AnswersFromUnaskedSourcesAreIgnored) {
  // The "upstream" never answers; a third party races it with a forged reply.
  berth::UniqueFd silent(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  auto sin = loopback(0);
  ASSERT_EQ(::bind(silent.get(), reinterpret_cast<sockaddr*>(&sin), sizeof sin), 0);
  socklen_t len = sizeof sin;
  ::getsockname(silent.get(), reinterpret_cast<sockaddr*>(&sin), &len);
  uint16_t port = 0;
  ServerThread st({"127.0.0.1:" + std::to_string(ntohs(sin.sin_port))},
                  [&](DnsServer& s) { port = s.udp_port_of(s.listen_here("127.0.0.1", 0, {"n1"})); });
  berth::UniqueFd client(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  auto to = loopback(port);
  auto q = build_query(51, "forged.test", kTypeA);
  ::sendto(client.get(), q.data(), q.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to);
  // Read the forwarded query at the silent upstream to learn the server's
  // forwarding socket and the id it used, then answer from another socket.
  std::vector<uint8_t> fwd(512);
  sockaddr_in server_side{};
  socklen_t slen = sizeof server_side;
  pollfd p{silent.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 2000), 1);
  ssize_t n = ::recvfrom(silent.get(), fwd.data(), fwd.size(), 0, reinterpret_cast<sockaddr*>(&server_side), &slen);
  ASSERT_GT(n, 12);
  fwd.resize(static_cast<size_t>(n));
  fwd[2] |= 0x80;
  fwd[3] = 0x80;
  berth::UniqueFd forger(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ::sendto(forger.get(), fwd.data(), fwd.size(), 0, reinterpret_cast<sockaddr*>(&server_side), slen);
  // The asker gets the timeout's SERVFAIL, not the forged NOERROR.
  pollfd c{client.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&c, 1, 3000), 1);
  std::vector<uint8_t> reply(512);
  reply.resize(static_cast<size_t>(std::max<ssize_t>(0, ::recv(client.get(), reply.data(), reply.size(), 0))));
  EXPECT_EQ(parse_reply(reply).rcode, 2);
}
