#include "supervisor/policy.h"

#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <vector>

#include "base/error.h"

namespace berth::supervisor {

RestartPolicy parse_restart_policy(const std::string& text) {
  RestartPolicy p;
  if (text.empty() || text == "no") return p;
  if (text == "always") {
    p.kind = RestartPolicy::Kind::Always;
  } else if (text == "unless-stopped") {
    p.kind = RestartPolicy::Kind::UnlessStopped;
  } else if (text == "on-failure") {
    p.kind = RestartPolicy::Kind::OnFailure;
  } else if (text.rfind("on-failure:", 0) == 0) {
    std::string n = text.substr(11);
    char* end = nullptr;
    long v = std::strtol(n.c_str(), &end, 10);
    if (n.empty() || *end != '\0' || v < 0) throw Error("invalid restart policy '" + text + "'", 0, 125);
    p.kind = RestartPolicy::Kind::OnFailure;
    p.max_retries = static_cast<int>(v);
  } else {
    throw Error("invalid restart policy '" + text + "'", 0, 125);
  }
  return p;
}

bool should_restart(const RestartPolicy& policy, int exit_code, bool manually_stopped, int restart_count) {
  if (manually_stopped) return false;
  switch (policy.kind) {
    case RestartPolicy::Kind::No: return false;
    case RestartPolicy::Kind::Always:
    case RestartPolicy::Kind::UnlessStopped: return true;
    case RestartPolicy::Kind::OnFailure:
      return exit_code != 0 && (policy.max_retries == 0 || restart_count < policy.max_retries);
  }
  return false;
}

int64_t Backoff::next(int64_t ran_for_ms) {
  if (ran_for_ms >= kResetAfterMs) delay_ms_ = 0;
  delay_ms_ = delay_ms_ == 0 ? kFirstMs : delay_ms_ * 2;
  if (delay_ms_ > kMaxMs) delay_ms_ = kMaxMs;
  return delay_ms_;
}

HealthTiming health_timing(const runtime::HealthcheckSpec& s) {
  auto ms = [](int64_t ns, int64_t def) { return ns > 0 ? std::max<int64_t>(1, ns / 1'000'000) : def; };
  return {ms(s.interval_ns, 30'000), ms(s.timeout_ns, 30'000), s.start_period_ns > 0 ? s.start_period_ns / 1'000'000 : 0,
          ms(s.start_interval_ns, 5'000), s.retries > 0 ? s.retries : 3};
}

bool apply_probe(runtime::HealthState& h, const runtime::HealthProbe& probe, int retries, bool in_start_period) {
  std::string before = h.status;
  if (h.status.empty()) h.status = "starting";
  h.log.push_back(probe);
  while (h.log.size() > 5) h.log.erase(h.log.begin());
  if (probe.exit_code == 0) {
    h.failing_streak = 0;
    h.status = "healthy";
  } else if (!(in_start_period && h.status == "starting")) {
    ++h.failing_streak;
    if (h.failing_streak >= retries) h.status = "unhealthy";
  }
  return h.status != before;
}

std::vector<std::string> probe_command(const runtime::HealthcheckSpec& spec) {
  if (!spec.enabled()) return {};
  if (spec.test[0] == "CMD-SHELL") {
    std::string cmd;
    for (size_t i = 1; i < spec.test.size(); ++i) cmd += (i > 1 ? " " : "") + spec.test[i];
    return {"/bin/sh", "-c", cmd};
  }
  if (spec.test[0] == "CMD") return std::vector<std::string>(spec.test.begin() + 1, spec.test.end());
  // A bare command (no CMD/CMD-SHELL prefix) is a shell command, as docker's CLI treats it.
  std::string cmd;
  for (auto& t : spec.test) cmd += (cmd.empty() ? "" : " ") + t;
  return {"/bin/sh", "-c", cmd};
}

int64_t parse_rfc3339_ns(const std::string& t) {
  if (t.empty()) return 0;
  struct tm tm {};
  const char* rest = ::strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) return 0;
  int64_t ns = 0;
  if (*rest == '.') {
    ++rest;
    int digits = 0;
    while (*rest >= '0' && *rest <= '9') {
      if (digits < 9) {
        ns = ns * 10 + (*rest - '0');
        ++digits;
      }
      ++rest;
    }
    while (digits++ < 9) ns *= 10;
  }
  return static_cast<int64_t>(::timegm(&tm)) * 1'000'000'000 + ns;
}

}  // namespace berth::supervisor
