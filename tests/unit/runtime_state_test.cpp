#include <gtest/gtest.h>
#include <unistd.h>

#include "runtime/state.h"
#include "tests/support/run.h"

namespace berth::runtime {
namespace {

TEST(RuntimeState, SpecRoundTrips) {
  ContainerSpec s;
  s.name = "web";
  s.image = "busybox";
  s.lower_dirs = {"/l/2", "/l/1"};
  s.process.args = {"sh", "-c", "echo \"hi\""};
  s.process.env = {"A=1", "B=two words"};
  s.process.cwd = "/srv";
  s.process.user = "berth:wheel";
  s.process.tty = true;
  s.hostname = "h";
  s.mounts.push_back({MountSpec::Type::Bind, "/src", "/dst", true, ""});
  s.mounts.push_back({MountSpec::Type::Tmpfs, "", "/run", false, "size=1m"});
  s.read_only_rootfs = true;
  s.shm_size = 8 << 20;
  s.rlimits = {{"nofile", 100, 200}};
  s.stop_signal = "SIGUSR1";
  s.network = NetworkMode::Host;
  s.limits.memory_bytes = 1 << 20;
  s.limits.memory_swap_bytes = -1;
  s.limits.nano_cpus = 500000000;
  s.limits.pids_limit = 7;
  s.limits.cpuset_cpus = "0-1";
  s.security.cap_add = {"NET_ADMIN"};
  s.security.cap_drop = {"ALL"};
  s.security.seccomp_profile = "unconfined";
  s.security.no_new_privileges = true;
  s.log.driver = "none";
  s.log.max_size = 1000;
  s.log.max_file = 3;
  s.labels = {{"a", "b"}};
  s.restart_policy = "on-failure:3";
  s.auto_remove = true;
  ContainerSpec t = state::spec_from_json(state::to_json(s));
  EXPECT_EQ(state::to_json(t), state::to_json(s));
  EXPECT_EQ(t.mounts[1].options, "size=1m");
  EXPECT_EQ(t.network, NetworkMode::Host);
  EXPECT_EQ(t.limits.memory_swap_bytes, -1);
  ASSERT_EQ(t.rlimits.size(), 1u);
  EXPECT_EQ(t.rlimits[0].hard, 200u);
  EXPECT_EQ(t.stop_signal, "SIGUSR1");
}

TEST(RuntimeState, StateAndRuntimeRecordRoundTrip) {
  test::TempDir tmp;
  ContainerState st;
  st.status = Status::Exited;
  st.exit_code = 137;
  st.oom_killed = true;
  st.created_at = state::now_rfc3339nano();
  state::save_state(tmp.path(), st);
  auto back = state::load_state(tmp.path());
  EXPECT_EQ(back.status, Status::Exited);
  EXPECT_EQ(back.exit_code, 137);
  EXPECT_TRUE(back.oom_killed);
  EXPECT_EQ(back.created_at, st.created_at);

  EXPECT_FALSE(state::load_runtime(tmp.path() + "/run").has_value());
  state::RuntimeRecord rec{1, 2, 3, 4};
  state::save_runtime(tmp.path() + "/run", rec);
  auto r = state::load_runtime(tmp.path() + "/run");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->monitor_start, 4u);
}

TEST(RuntimeState, PidReuseIsDetected) {
  pid_t self = ::getpid();
  auto start = state::process_start_time(self);
  EXPECT_GT(start, 0u);
  EXPECT_TRUE(state::process_matches(self, start));
  EXPECT_FALSE(state::process_matches(self, start + 1)) << "same pid, other start time: another process";
  EXPECT_FALSE(state::process_matches(0, 0));
}

TEST(RuntimeState, IdsAndNames) {
  auto a = state::new_id(), b = state::new_id();
  EXPECT_EQ(a.size(), 64u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_NE(state::random_name().find('_'), std::string::npos);
}

}  // namespace
}  // namespace berth::runtime
