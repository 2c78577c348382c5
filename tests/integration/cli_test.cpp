// The CLI skeleton: global flags, help, version, info and error exit codes.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/run.h"

using berth::test::run_berth;

TEST(Cli, NoCommandIsAUsageError) {
  auto r = run_berth({});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("berth --help"), std::string::npos) << r.err;
}

TEST(Cli, UnknownCommandIsAUsageError) {
  auto r = run_berth({"frobnicate"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("frobnicate"), std::string::npos) << r.err;
}

TEST(Cli, HelpListsCommandsAndGlobalFlags) {
  auto r = run_berth({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* word : {"--root", "--run-root", "--log-level", "version", "info", "config"})
    EXPECT_NE(r.out.find(word), std::string::npos) << word << " missing from:\n" << r.out;
}

// Every command `berth --help` lists answers its own --help: a command
// line builds only the group of commands it names (cli.h), so a command
// its group forgot to name would be "not a berth command".
TEST(Cli, EveryCommandHasHelp) {
  auto help = run_berth({"--help"});
  ASSERT_EQ(help.exit_code, 0) << help.err;
  size_t at = help.out.find("Subcommands:\n");
  ASSERT_NE(at, std::string::npos) << help.out;
  std::istringstream lines(help.out.substr(at + 13));
  std::vector<std::string> commands;
  for (std::string line; std::getline(lines, line) && line.rfind("  ", 0) == 0;)
    commands.push_back(line.substr(2, line.find(' ', 2) - 2));
  EXPECT_GT(commands.size(), 30u) << help.out;
  for (const char* hidden : {"__restart", "__rm-cleanup"}) commands.push_back(hidden);
  for (auto& cmd : commands) {
    auto r = run_berth({cmd, "--help"});
    EXPECT_EQ(r.exit_code, 0) << cmd << ": " << r.err;
    EXPECT_NE(r.out.find("Usage"), std::string::npos) << cmd << ":\n" << r.out;
  }
}

TEST(Cli, VersionJson) {
  auto r = run_berth({"version", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_FALSE(j["Version"].get<std::string>().empty());
}

// `berth --version` prints what `berth version` prints first, as docker.
TEST(Cli, VersionFlagPrintsTheVersionLine) {
  auto flag = run_berth({"--version"});
  ASSERT_EQ(flag.exit_code, 0) << flag.err;
  auto cmd = run_berth({"version"});
  ASSERT_EQ(cmd.exit_code, 0) << cmd.err;
  EXPECT_EQ(flag.out, cmd.out.substr(0, cmd.out.find('\n') + 1));
  EXPECT_EQ(flag.out.rfind("berth version ", 0), 0u) << flag.out;
}

// The version line names the commit the binary was built from, also after
// later commits (CMake configures again when HEAD moves).
TEST(Cli, VersionNamesTheCommitOfTheSourceTree) {
  auto head = berth::test::run({"/usr/bin/git", "-C", std::string(BERTH_TESTS_DIR) + "/..", "rev-parse", "--short", "HEAD"});
  if (head.exit_code != 0 || head.out.empty()) GTEST_SKIP() << "not a git checkout: " << head.err;
  std::string commit = head.out.substr(0, head.out.find('\n'));
  auto r = run_berth({"--version"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("build " + commit), std::string::npos) << r.out << " (HEAD is " << commit << ")";
}

TEST(Cli, InfoReportsRootsKernelAndCgroups) {
  berth::test::TempDir dir;
  auto r = run_berth({"--root", dir.path() + "/root", "--run-root", dir.path() + "/run", "info", "--format", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["BerthRootDir"], dir.path() + "/root");
  EXPECT_EQ(j["BerthRunRootDir"], dir.path() + "/run");
  EXPECT_FALSE(j["KernelVersion"].get<std::string>().empty());
  EXPECT_FALSE(j["CgroupMode"].get<std::string>().empty());
}

TEST(Cli, RootComesFromEnvironment) {
  auto r = run_berth({"info", "--format", "json"}, "", {"BERTH_ROOT=/tmp/berth-env-root", "BERTH_RUN_ROOT=/tmp/berth-env-run"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["BerthRootDir"], "/tmp/berth-env-root");
  EXPECT_EQ(j["BerthRunRootDir"], "/tmp/berth-env-run");
}

TEST(Cli, BadLogLevelNamesTheFlag) {
  auto r = run_berth({"--log-level", "loud", "version"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("--log-level"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
}
