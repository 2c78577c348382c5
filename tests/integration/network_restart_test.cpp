// Issue 5: restarting the process that made a network changes no address,
// rule or name. A compose app on a user network (made by the `up` CLI
// process, watched by the `berth serve` it started) is snapshotted: the
// network, every container's address, MAC and endpoint, the network's nft
// table and the bridge's address. Then the serve is SIGKILLed and another
// `up` starts a new one: the snapshot is the same, names resolve to the
// same addresses, the published port answers, and a new replica gets an
// address no one else has. Named network_* for ctest's host_network lock.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>

#include <random>
#include <set>

#include "tests/integration/container_fixture.h"
#include "tests/integration/host_net.h"

namespace berth::test {
namespace {

bool port_free(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) == 0;
  ::close(fd);
  return ok;
}

class NetworkRestart : public ContainerTest {
 protected:
  void SetUp() override {
    ContainerTest::SetUp();
    if (IsSkipped()) return;
    start_compose_project();
    std::random_device rd;
    octet_ = 100 + static_cast<int>(rd() % 100);
    port_ = 20000 + static_cast<int>(rd() % 20000);
    while (!port_free(port_)) port_ += 7;
  }
  void TearDown() override {
    if (root_.empty()) return;
    stop_compose_project();
    ContainerTest::TearDown();
  }

  pid_t daemon_pid() {
    std::string text;
    read_file_if_exists(run_root_ + "/berth.pid", text);
    pid_t pid = std::atoi(text.c_str());
    return pid > 0 && ::kill(pid, 0) == 0 ? pid : 0;
  }

  std::string container_id(const std::string& name) { return inspect(name).value("Id", ""); }

  // Everything a restart must leave as it was.
  std::string snapshot(const std::vector<std::string>& containers) {
    std::string out;
    auto n = nlohmann::json::parse(berth({"network", "inspect", "app_front"}).out, nullptr, false);
    if (!n.is_array() || n.empty()) return "no network";
    auto& net = n[0];
    std::string bridge = net["Options"]["com.docker.network.bridge.name"];
    out += "network " + net["Id"].get<std::string>() + " " + net["IPAM"]["Config"].dump() + " " + bridge + "\n";
    out += "endpoints " + net["Containers"].dump() + "\n";
    for (auto& c : containers) {
      auto j = inspect(c);
      out += c + " " + j["NetworkSettings"]["Networks"].dump() + " " + j["NetworkSettings"]["Ports"].dump() + "\n";
    }
    out += "table\n" + without_handles(berth::test::run({kNft, "list", "table", "ip", "berth-" + net["Id"].get<std::string>().substr(0, 12)}).out);
    out += "bridge " + berth::test::run({kIp, "-o", "-4", "addr", "show", "dev", bridge}).out;
    return out;
  }

  std::string lookup(const std::string& service, const std::string& name) {
    auto r = compose({"compose", "exec", "-T", service, "nslookup", name, "127.0.0.11"});
    return r.out + r.err;
  }
  bool http_ok() {
    auto r = berth::test::run({"/bin/busybox", "nc", "-w", "2", "127.0.0.1", std::to_string(port_)}, "GET / HTTP/1.0\r\n\r\n");
    return r.out.find("restart-me") != std::string::npos;
  }

  int octet_ = 0, port_ = 0;
};

TEST_F(NetworkRestart, RestartingTheSupervisorChangesNoAddressRuleOrName) {
  write_app("name: app\n"
            "services:\n"
            "  web:\n"
            "    image: busybox:latest\n"
            "    command: [\"sh\", \"-c\", \"echo restart-me > /index.html; exec httpd -f -p 80 -h /\"]\n"
            "    stop_signal: SIGKILL\n"
            "    restart: always\n"
            "    ports: [\"127.0.0.1:" + std::to_string(port_) + ":80\"]\n"
            "    networks: [front]\n"
            "  client:\n"
            "    image: busybox:latest\n"
            "    command: [\"sleep\", \"600\"]\n"
            "    stop_signal: SIGKILL\n"
            "    networks: [front]\n"
            "networks:\n"
            "  front:\n"
            "    ipam:\n"
            "      config: [{subnet: 10." + std::to_string(octet_) + ".77.0/24}]\n");
  auto up = compose({"up", "-d"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  pid_t first = daemon_pid();
  ASSERT_GT(first, 0) << "up with a restart policy starts a serve";
  const std::vector<std::string> containers{"app-web-1", "app-client-1"};
  std::string web_ip = inspect("app-web-1")["NetworkSettings"]["Networks"]["app_front"]["IPAddress"];
  ASSERT_TRUE(eventually([&] { return lookup("client", "web").find(web_ip) != std::string::npos; }))
      << lookup("client", "web");
  ASSERT_TRUE(eventually([&] { return http_ok(); }));
  std::string before = snapshot(containers);
  ASSERT_NE(before.find("dnat"), std::string::npos) << before;

  // The supervisor dies hard; the next command starts another one.
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] { return daemon_pid() == 0; }));
  auto again = compose({"up", "-d"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(again.err.find("Recreate"), std::string::npos) << again.err;
  pid_t second = daemon_pid();
  ASSERT_GT(second, 0);
  EXPECT_NE(second, first);
  EXPECT_EQ(compose({"network", "ls"}).exit_code, 0);
  EXPECT_EQ(compose({"compose", "ps"}).exit_code, 0);

  EXPECT_EQ(snapshot(containers), before);
  EXPECT_TRUE(eventually([&] { return lookup("client", "web").find(web_ip) != std::string::npos; }))
      << lookup("client", "web");
  EXPECT_NE(lookup("web", "client").find(inspect("app-client-1")["NetworkSettings"]["Networks"]["app_front"]["IPAddress"].get<std::string>()),
            std::string::npos);
  EXPECT_TRUE(http_ok());

  // New endpoints after the restart never reuse an address in use.
  auto scaled = compose({"up", "-d", "--scale", "client=3"});
  ASSERT_EQ(scaled.exit_code, 0) << scaled.err;
  std::set<std::string> addresses;
  for (auto& c : {"app-web-1", "app-client-1", "app-client-2", "app-client-3"}) {
    std::string ip = inspect(c)["NetworkSettings"]["Networks"]["app_front"]["IPAddress"];
    EXPECT_TRUE(addresses.insert(ip).second) << c << " got " << ip << " again";
  }
  EXPECT_EQ(addresses.size(), 4u);

}

}  // namespace
}  // namespace berth::test
