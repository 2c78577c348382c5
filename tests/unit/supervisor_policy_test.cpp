// The supervisor's pure decisions: restart policies, docker's backoff,
// healthcheck timing defaults, folding probes into the health record.
#include <gtest/gtest.h>

#include "base/error.h"
#include "supervisor/policy.h"

namespace berth::supervisor {
namespace {

using Kind = RestartPolicy::Kind;

TEST(RestartPolicyTest, ParsesDockerSpellings) {
  EXPECT_EQ(parse_restart_policy("").kind, Kind::No);
  EXPECT_EQ(parse_restart_policy("no").kind, Kind::No);
  EXPECT_EQ(parse_restart_policy("always").kind, Kind::Always);
  EXPECT_EQ(parse_restart_policy("unless-stopped").kind, Kind::UnlessStopped);
  auto p = parse_restart_policy("on-failure");
  EXPECT_EQ(p.kind, Kind::OnFailure);
  EXPECT_EQ(p.max_retries, 0);
  p = parse_restart_policy("on-failure:3");
  EXPECT_EQ(p.kind, Kind::OnFailure);
  EXPECT_EQ(p.max_retries, 3);
  for (const char* bad : {"sometimes", "on-failure:", "on-failure:x", "on-failure:-1", "always:2", "No"})
    EXPECT_THROW(parse_restart_policy(bad), Error) << bad;
}

TEST(RestartPolicyTest, DecidesAsDocker) {
  auto no = parse_restart_policy("no"), always = parse_restart_policy("always"),
       unless = parse_restart_policy("unless-stopped"), onf = parse_restart_policy("on-failure"),
       onf3 = parse_restart_policy("on-failure:3");
  EXPECT_FALSE(should_restart(no, 1, false, 0));
  EXPECT_TRUE(should_restart(always, 0, false, 0));
  EXPECT_TRUE(should_restart(always, 137, false, 100));
  EXPECT_TRUE(should_restart(unless, 0, false, 5));
  // A user's stop or kill wins over every policy.
  EXPECT_FALSE(should_restart(always, 1, true, 0));
  EXPECT_FALSE(should_restart(unless, 1, true, 0));
  EXPECT_FALSE(should_restart(onf, 1, true, 0));
  // on-failure: only a non-zero exit, and at most N restarts.
  EXPECT_FALSE(should_restart(onf, 0, false, 0));
  EXPECT_TRUE(should_restart(onf, 2, false, 1000));
  EXPECT_TRUE(should_restart(onf3, 1, false, 0));
  EXPECT_TRUE(should_restart(onf3, 1, false, 2));
  EXPECT_FALSE(should_restart(onf3, 1, false, 3));
  EXPECT_FALSE(should_restart(onf3, 0, false, 0));
}

TEST(BackoffTest, DoublesFrom100msCappedAtAMinuteAndResetsAfter10s) {
  Backoff b;
  EXPECT_EQ(b.next(0), 100);
  EXPECT_EQ(b.next(50), 200);
  EXPECT_EQ(b.next(9'999), 400);
  int64_t d = 0;
  for (int i = 0; i < 20; ++i) d = b.next(0);
  EXPECT_EQ(d, 60'000);
  EXPECT_EQ(b.current(), 60'000);
  // A run of 10 s or more starts over.
  EXPECT_EQ(b.next(10'000), 100);
  EXPECT_EQ(b.next(1), 200);
}

TEST(HealthTimingTest, DockerDefaults) {
  runtime::HealthcheckSpec s;
  s.test = {"CMD", "true"};
  auto t = health_timing(s);
  EXPECT_EQ(t.interval_ms, 30'000);
  EXPECT_EQ(t.timeout_ms, 30'000);
  EXPECT_EQ(t.start_period_ms, 0);
  EXPECT_EQ(t.start_interval_ms, 5'000);
  EXPECT_EQ(t.retries, 3);
  s.interval_ns = 250'000'000;
  s.timeout_ns = 2'000'000'000;
  s.start_period_ns = 60'000'000'000;
  s.start_interval_ns = 1'000'000'000;
  s.retries = 7;
  t = health_timing(s);
  EXPECT_EQ(t.interval_ms, 250);
  EXPECT_EQ(t.timeout_ms, 2'000);
  EXPECT_EQ(t.start_period_ms, 60'000);
  EXPECT_EQ(t.start_interval_ms, 1'000);
  EXPECT_EQ(t.retries, 7);
}

TEST(ProbeCommandTest, CmdCmdShellAndNone) {
  runtime::HealthcheckSpec s;
  EXPECT_TRUE(probe_command(s).empty());
  s.test = {"NONE"};
  EXPECT_TRUE(probe_command(s).empty());
  s.test = {"CMD", "wget", "-q", "http://x/"};
  EXPECT_EQ(probe_command(s), (std::vector<std::string>{"wget", "-q", "http://x/"}));
  s.test = {"CMD-SHELL", "test -f /ready && echo ok"};
  EXPECT_EQ(probe_command(s), (std::vector<std::string>{"/bin/sh", "-c", "test -f /ready && echo ok"}));
}

runtime::HealthProbe probe(int code) {
  runtime::HealthProbe p;
  p.exit_code = code;
  p.output = "out" + std::to_string(code);
  return p;
}

TEST(ApplyProbeTest, SuccessIsHealthyFailuresCountToRetries) {
  runtime::HealthState h;
  h.status = "starting";
  EXPECT_TRUE(apply_probe(h, probe(0), 3, false));
  EXPECT_EQ(h.status, "healthy");
  EXPECT_FALSE(apply_probe(h, probe(1), 3, false));
  EXPECT_FALSE(apply_probe(h, probe(1), 3, false));
  EXPECT_EQ(h.failing_streak, 2);
  EXPECT_EQ(h.status, "healthy");
  EXPECT_TRUE(apply_probe(h, probe(1), 3, false));
  EXPECT_EQ(h.status, "unhealthy");
  EXPECT_EQ(h.failing_streak, 3);
  EXPECT_TRUE(apply_probe(h, probe(0), 3, false));
  EXPECT_EQ(h.status, "healthy");
  EXPECT_EQ(h.failing_streak, 0);
  // Only the last five probes are kept, oldest first.
  EXPECT_FALSE(apply_probe(h, probe(0), 3, false));
  ASSERT_EQ(h.log.size(), 5u);
  EXPECT_EQ(h.log.front().output, "out1");
  EXPECT_EQ(h.log.back().output, "out0");
}

TEST(ApplyProbeTest, StartPeriodFailuresDoNotCountUntilFirstSuccess) {
  runtime::HealthState h;
  h.status = "starting";
  for (int i = 0; i < 10; ++i) EXPECT_FALSE(apply_probe(h, probe(1), 1, true));
  EXPECT_EQ(h.status, "starting");
  EXPECT_EQ(h.failing_streak, 0);
  // After the start period, failures count.
  EXPECT_TRUE(apply_probe(h, probe(1), 1, false));
  EXPECT_EQ(h.status, "unhealthy");
  // Once healthy, a failure inside the start period counts too (docker).
  runtime::HealthState g;
  g.status = "starting";
  apply_probe(g, probe(0), 1, true);
  EXPECT_TRUE(apply_probe(g, probe(1), 1, true));
  EXPECT_EQ(g.status, "unhealthy");
}

TEST(ParseRfc3339Test, WithAndWithoutFraction) {
  EXPECT_EQ(parse_rfc3339_ns(""), 0);
  EXPECT_EQ(parse_rfc3339_ns("garbage"), 0);
  EXPECT_EQ(parse_rfc3339_ns("1970-01-01T00:00:01Z"), 1'000'000'000);
  EXPECT_EQ(parse_rfc3339_ns("1970-01-01T00:00:01.5Z"), 1'500'000'000);
  EXPECT_EQ(parse_rfc3339_ns("2023-11-14T22:13:20.000000001Z"), 1'700'000'000'000'000'001);
}

}  // namespace
}  // namespace berth::supervisor
