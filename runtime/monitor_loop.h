// The monitor's life after the container's init runs: it waits for the
// init, copies the container's output to the log (and to an attached
// caller), records how the container ended, removes its cgroup and, for
// --rm, the container. This is the whole of `berth-monitor`, a small
// static executable (runtime/monitor_main.cpp) that the launch half of the
// monitor (runtime/monitor.cpp, still a fork of berth) execs once the init
// has started, so that each container costs only this process's memory.
// The same code runs in-process when berth-monitor cannot be executed, or
// when the container is already gone by the time it would be.
//
// Kept free of spdlog, libcurl, libnl, nftables, libarchive, seccomp and
// libcap: berth-monitor links only base's core and the state, log and
// cgroup parts of runtime (the berth_monitor_core library).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace berth::runtime {

struct MonitorArgs {
  std::string id;
  std::string container_dir;  // <root>/containers/<id>
  std::string run_dir;        // <run_root>/containers/<id>
  pid_t pid = 0;              // the container's init: this process's child
  // Read ends of the container's stdout and stderr pipes; with a tty,
  // out_fd is the pty master (and err_fd is -1).
  int out_fd = -1;
  int err_fd = -1;
  bool tty = false;
  // Without a tty, for a `-i` container no caller feeds directly: the write
  // end of its stdin pipe, fed by attach clients (-1 = none). stdin_once:
  // docker's StdinOnce, a client's EOF closes it.
  int in_fd = -1;
  bool stdin_once = false;
  // An attached caller: its fds 1 and 2 get the output, report_fd gets
  // "exit <code>" at the end; with stdin, fd 0 is copied to the pty.
  int report_fd = -1;
  bool attached = false;
  bool forward_stdin = false;
  // A listening unix socket (<run_dir>/attach.sock) for `berth attach`
  // clients (runtime/attach.h has the protocol), or -1.
  int attach_fd = -1;
  std::string log_driver = "json-file";  // json-file | none
  int64_t log_max_size = -1;
  int log_max_file = 1;
  // --rm: remove the container when it exits.
  bool auto_remove = false;
  std::string netns_file;  // --rm: the container's own netns file, unmounted and unlinked
  // --rm: anonymous volumes, and whether the caller's own cleanup (its
  // networks, image hold) is left to `berth __rm-cleanup` run from here.
  std::vector<std::string> volumes;
  std::string berth_exe;  // the berth binary, for __rm-cleanup
  std::string root, run_root;
};

// argv for berth-monitor (argv[0] included) and back.
std::vector<std::string> monitor_argv(const std::string& exe, const MonitorArgs& a);
// False (and a message in why) on a malformed command line.
bool parse_monitor_argv(int argc, char** argv, MonitorArgs& a, std::string& why);

// Runs until the container has exited and is recorded; never returns.
[[noreturn]] void monitor_loop(MonitorArgs& a);

}  // namespace berth::runtime
