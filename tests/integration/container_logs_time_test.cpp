// `berth logs --since/--until` through the binary: RFC 3339 times (as
// `logs -t` prints them), Unix times and durations before now, as docker.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/integration/container_fixture.h"

namespace berth::test {
namespace {

using LogsTimeTest = ContainerTest;

TEST_F(LogsTimeTest, SinceAndUntilSelectByTimestamp) {
  auto r = run({"--network", "none", "--name", "talker"}, {"sh", "-c", "echo one; sleep 1.2; echo two >&2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = berth({"logs", "-t", "talker"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // "TIME one\n" on stdout, "TIME two\n" on stderr.
  ASSERT_EQ(r.out.size() > 5 && r.out.substr(r.out.size() - 5) == " one\n", true) << r.out;
  std::string t1 = r.out.substr(0, r.out.find(' '));
  std::string t2 = r.err.substr(0, r.err.find(' '));
  ASSERT_FALSE(t2.empty()) << r.err;
  ASSERT_NE(t1, t2);

  auto logs = [&](std::vector<std::string> flags) {
    flags.insert(flags.begin(), "logs");
    flags.push_back("talker");
    auto res = berth(flags);
    EXPECT_EQ(res.exit_code, 0) << res.err;
    return res.out + "|" + res.err;
  };
  EXPECT_EQ(logs({}), "one\n|two\n");
  EXPECT_EQ(logs({"--since", t2}), "|two\n");
  EXPECT_EQ(logs({"--until", t1}), "one\n|");
  EXPECT_EQ(logs({"--since", t1, "--until", t1}), "one\n|");
  EXPECT_EQ(logs({"--since", "1h"}), "one\n|two\n");
  EXPECT_EQ(logs({"--since", "1h30m", "--until", "0s"}), "one\n|two\n");
  EXPECT_EQ(logs({"--until", "10m"}), "|");
  EXPECT_EQ(logs({"--since", "4102444800"}), "|");  // 2100-01-01 as a Unix time
  EXPECT_EQ(logs({"--since", "2000-01-01"}), "one\n|two\n");
  // --tail first, then the window (docker's order).
  EXPECT_EQ(logs({"--tail", "1", "--until", t1}), "|");

  r = berth({"logs", "--since", "yesterday", "talker"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("--since: invalid time \"yesterday\""), std::string::npos) << r.err;
}

}  // namespace
}  // namespace berth::test
