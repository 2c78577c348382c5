// Published-port specs, docker's -p syntax.
#include <gtest/gtest.h>

#include "base/error.h"
#include "net/ports.h"

using namespace berth::net;

TEST(NetPorts, ParsesDockerForms) {
  EXPECT_EQ(parse_port_spec("80"), (std::vector<PortMapping>{{"", 0, 0, 80, "tcp"}}));
  EXPECT_EQ(parse_port_spec("8080:80"), (std::vector<PortMapping>{{"", 8080, 8080, 80, "tcp"}}));
  EXPECT_EQ(parse_port_spec("127.0.0.1:8080:80/udp"),
            (std::vector<PortMapping>{{"127.0.0.1", 8080, 8080, 80, "udp"}}));
  EXPECT_EQ(parse_port_spec("127.0.0.1::80"), (std::vector<PortMapping>{{"127.0.0.1", 0, 0, 80, "tcp"}}));
  EXPECT_EQ(parse_port_spec("8000-8001:80-81"),
            (std::vector<PortMapping>{{"", 8000, 8000, 80, "tcp"}, {"", 8001, 8001, 81, "tcp"}}));
  EXPECT_EQ(parse_port_spec("8000-8010:80"), (std::vector<PortMapping>{{"", 8000, 8010, 80, "tcp"}}));
  EXPECT_EQ(parse_port_spec("80-81/udp"),
            (std::vector<PortMapping>{{"", 0, 0, 80, "udp"}, {"", 0, 0, 81, "udp"}}));
}

TEST(NetPorts, RejectsBadSpecs) {
  for (const char* bad : {"", "0", "70000", "80/sctp", "x:80", "1.2.3:80:80", "8080:", "8000-8002:80-81",
                          "90-80", "8080:80:", "abc"})
    EXPECT_THROW(parse_port_spec(bad), berth::Error) << bad;
}

TEST(NetPorts, FormatsLikeDocker) {
  EXPECT_EQ(format_port("", 8080, 80, "tcp"), "0.0.0.0:8080->80/tcp");
  EXPECT_EQ(format_port("127.0.0.1", 53, 53, "udp"), "127.0.0.1:53->53/udp");
}

TEST(NetPorts, ExposeSpecsBecomeExposedPortsKeys) {
  EXPECT_EQ(parse_expose_spec("80"), (std::vector<std::string>{"80/tcp"}));
  EXPECT_EQ(parse_expose_spec("53/udp"), (std::vector<std::string>{"53/udp"}));
  EXPECT_EQ(parse_expose_spec("7000-7002"), (std::vector<std::string>{"7000/tcp", "7001/tcp", "7002/tcp"}));
  for (const char* bad : {"", "80:80", "127.0.0.1::80", "70000", "80/sctp", "x"})
    EXPECT_THROW(parse_expose_spec(bad), berth::Error) << bad;
}
