// The monitor: one small process per container, parent of its init. It
// clones the init, holds the container's stdio, writes the log, records
// how the container ended, and removes the container's cgroup. It runs
// in its own session, so the CLI that started it can die freely.
//
// Two halves: run_monitor (here) is a fork of berth that clones and
// starts the init, records it running and reports to the CLI; it then
// execs berth-monitor (runtime/monitor_loop.h), a small static program
// that stays with the container for the rest of its life.
#pragma once

#include <string>

#include "runtime/cgroup.h"
#include "runtime/linux.h"
#include "runtime/runtime.h"

namespace berth::runtime {

struct MonitorLaunch {
  std::string id;
  std::string container_dir;
  std::string run_dir;
  InitConfig init;
  Attach attach;
  Cgroup* cgroup = nullptr;
  int report_fd = -1;  // to the CLI: "ok <pid>", "error <code> <message>", "exit <code>"
  std::string berth_exe;  // berth_executable(): berth-monitor is next to it
};

// The berth binary: self_exe, or /proc/self/exe's target when empty.
std::string berth_executable(const std::string& self_exe);

// Runs in the (grand)child forked by Runtime::start; never returns.
[[noreturn]] void run_monitor(MonitorLaunch& m);

}  // namespace berth::runtime
