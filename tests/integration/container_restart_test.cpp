// `berth run -d --restart ...` as docker users type it: with no `berth
// serve` running, run starts one for the roots (docker's daemon is always
// there) and runs through it, and the policy is enforced.
#include <signal.h>

#include "tests/integration/container_fixture.h"

namespace berth::test {
namespace {

class RestartTest : public ContainerTest {
 protected:
  pid_t daemon_pid() {
    std::string text;
    read_file_if_exists(run_root_ + "/berth.pid", text);
    pid_t pid = std::atoi(text.c_str());
    return pid > 0 && ::kill(pid, 0) == 0 ? pid : 0;
  }
};

TEST_F(RestartTest, RunWithARestartPolicyStartsASupervisorThatEnforcesIt) {
  run_detached({"--name", "plain"}, {"true"});
  ASSERT_EQ(trim(berth({"wait", "plain"}).out), "0");
  EXPECT_GT(daemon_pid(), 0) << "run starts a serve and runs through it";

  std::string id = run_detached({"--restart", "on-failure:2"}, {"sh", "-c", "sleep 0.2; exit 3"});
  EXPECT_GT(daemon_pid(), 0);
  EXPECT_TRUE(eventually(
      [&] {
        auto j = inspect(id);
        return j.is_object() && j["RestartCount"] == 2 && j["State"]["Status"] == "exited";
      },
      15000))
      << inspect(id).dump();
  EXPECT_EQ(inspect(id)["State"]["ExitCode"], 3);

  // The serve died: a user start of a container with a policy brings one back.
  std::string always = run_detached({"--restart", "always"}, {"sleep", "600"});
  ASSERT_EQ(berth({"stop", "-t", "0", always}).exit_code, 0);
  pid_t first = daemon_pid();
  ASSERT_GT(first, 0);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  ASSERT_TRUE(eventually([&] { return daemon_pid() == 0; }));
  ASSERT_EQ(berth({"start", always}).exit_code, 0);
  EXPECT_GT(daemon_pid(), 0);
}

}  // namespace
}  // namespace berth::test
