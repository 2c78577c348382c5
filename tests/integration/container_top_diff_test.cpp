// `berth top` and `berth diff` through the binary, against docker's output.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/integration/container_fixture.h"

namespace berth::test {
namespace {

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::vector<std::string> words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

using TopDiffTest = ContainerTest;

TEST_F(TopDiffTest, DiffShowsAddedChangedAndDeletedPaths) {
  auto r = run({"--network", "none", "--name", "changer"},
               {"sh", "-c", "rm /etc/group && echo x > /etc/passwd && mkdir -p /new/sub && touch /new/sub/f && rm -r /home"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = berth({"diff", "changer"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "C /etc\n"
            "D /etc/group\n"
            "C /etc/passwd\n"
            "D /home\n"
            "A /new\n"
            "A /new/sub\n"
            "A /new/sub/f\n");
}

TEST_F(TopDiffTest, DiffOfAnUntouchedContainerIsEmpty) {
  // The runtime's mount points (/etc/hosts, ...) are not the container's changes.
  auto r = run({"--network", "none", "--name", "idle"}, {"true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = berth({"diff", "idle"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  // A created container has no changes either; a missing one is an error.
  r = berth({"create", "--rootfs", rootfs_, "--network", "none", "--name", "fresh", "true"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(berth({"diff", "fresh"}).out, "");
  r = berth({"diff", "nosuch"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("No such container: nosuch"), std::string::npos) << r.err;
}

TEST_F(TopDiffTest, TopListsOnlyTheContainersProcesses) {
  std::string id = run_detached({"--network", "none"}, {"sh", "-c", "sleep 300 & sleep 301 & wait"});
  ASSERT_FALSE(id.empty());
  int init_pid = inspect(id)["State"]["Pid"].get<int>();
  std::vector<std::string> rows;
  ASSERT_TRUE(eventually([&] {
    rows = lines_of(berth({"top", id}).out);
    return rows.size() == 4;
  })) << berth({"top", id}).out;
  EXPECT_EQ(words(rows[0]), (std::vector<std::string>{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}));
  // docker's tabwriter: columns at least 20 wide.
  EXPECT_EQ(rows[0].rfind("UID                 PID", 0), 0u) << rows[0];
  std::string all;
  for (size_t i = 1; i < rows.size(); ++i) {
    auto w = words(rows[i]);
    ASSERT_GE(w.size(), 8u) << rows[i];
    EXPECT_EQ(w[0], "root");
    all += rows[i] + "\n";
  }
  EXPECT_NE(all.find(" " + std::to_string(init_pid) + " "), std::string::npos) << all;
  EXPECT_NE(all.find("sleep 300"), std::string::npos) << all;
  EXPECT_NE(all.find("sleep 301"), std::string::npos) << all;

  // ps options pass through.
  auto r = berth({"top", id, "-o", "pid,comm"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_EQ(words(lines[0]), (std::vector<std::string>{"PID", "COMMAND"}));
  EXPECT_EQ(words(lines[1]), (std::vector<std::string>{std::to_string(init_pid), "sh"}));

  // Options without a PID column cannot be filtered.
  r = berth({"top", id, "-o", "comm"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Couldn't find PID field in ps output"), std::string::npos) << r.err;

  ASSERT_EQ(berth({"kill", id}).exit_code, 0);
  berth({"wait", id});
  r = berth({"top", id});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Container " + id + " is not running"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace berth::test
