// The supervisor's pure decisions, apart from the loop so they are unit
// tested: restart policies with docker's backoff, and healthcheck results.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/runtime.h"

namespace berth::supervisor {

struct RestartPolicy {
  enum class Kind { No, Always, UnlessStopped, OnFailure };
  Kind kind = Kind::No;
  int max_retries = 0;  // on-failure:N; 0 = unlimited
};
// "no", "always", "unless-stopped", "on-failure[:N]"; throws berth::Error otherwise.
RestartPolicy parse_restart_policy(const std::string& text);

// Whether a container that ended (status Exited) should be started again
// now that it has already been restarted `restart_count` times by policy.
// A container the user stopped is never restarted.
bool should_restart(const RestartPolicy& policy, int exit_code, bool manually_stopped, int restart_count);

// docker's restart backoff: 100 ms, doubling, at most 1 min; back to
// 100 ms once the container ran for 10 s.
class Backoff {
 public:
  static constexpr int64_t kFirstMs = 100;
  static constexpr int64_t kMaxMs = 60'000;
  static constexpr int64_t kResetAfterMs = 10'000;
  // The delay before the next start, given how long the last run lasted.
  int64_t next(int64_t ran_for_ms);
  int64_t current() const { return delay_ms_; }

 private:
  int64_t delay_ms_ = 0;
};

// The docker defaults filled in (interval 30 s, timeout 30 s, start
// interval 5 s, retries 3).
struct HealthTiming {
  int64_t interval_ms, timeout_ms, start_period_ms, start_interval_ms;
  int retries;
};
HealthTiming health_timing(const runtime::HealthcheckSpec& spec);

// Folds one probe into the health record as docker does: success makes it
// healthy; a failure counts toward `retries` (unhealthy when reached)
// unless the container is still in its start period and never was healthy.
// Keeps the last 5 probes. Returns true when the status changed.
bool apply_probe(runtime::HealthState& health, const runtime::HealthProbe& probe, int retries, bool in_start_period);

// The argv that runs a healthcheck's test inside the container
// ({"CMD", a...} -> a...; {"CMD-SHELL", c} -> /bin/sh -c c). Empty for NONE.
std::vector<std::string> probe_command(const runtime::HealthcheckSpec& spec);

// RFC 3339 (with or without a fraction) to nanoseconds since the epoch; 0 when empty or invalid.
int64_t parse_rfc3339_ns(const std::string& text);

}  // namespace berth::supervisor
