// berth-monitor: one per container, the parent of its init for the
// container's whole life (runtime/monitor_loop.h). Executed only by berth's
// runtime, with the init already running as this process's child; not a
// command for users.
#include <stdio.h>
#include <unistd.h>

#include <string>

#include "runtime/monitor_loop.h"

int main(int argc, char** argv) {
  berth::runtime::MonitorArgs args;
  std::string why;
  if (!berth::runtime::parse_monitor_argv(argc, argv, args, why)) {
    fprintf(stderr, "berth-monitor: %s (it is started by berth, not by hand)\n", why.c_str());
    return 125;
  }
  berth::runtime::monitor_loop(args);
}
