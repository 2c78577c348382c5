// Commands a CLI hands to `berth serve` (POST /commands): serve runs the
// client's own berth binary with the client's arguments, environment,
// working directory, umask and standard streams, as a child of its own.
// So what a command starts (a container's monitor, a `-d --rm` cleanup)
// descends from the supervisor and shares its cgroup, not the user's
// shell's, SSH session's or CI job's, whose end would take it along. The
// client only forwards signals and returns the exit status.
#pragma once

#include <sys/types.h>

#include <array>
#include <string>
#include <vector>

#include "base/fs.h"

namespace berth::supervisor {

// Set in the environment of everything serve starts: such a process (the
// variable set, to any value) does the work itself instead of handing it
// back to serve, and serve refuses a command whose environment has it.
inline constexpr const char* kInServeEnv = "BERTH_IN_SERVE";

// A command run by serve that ends after serve has gone leaves its exit
// status here for its client (serve, which would have told it, cannot):
// <run_root>/commands/<pid of the command>.
std::string orphan_status_path(const std::string& run_root, pid_t command);
// At the start of a berth process: notes whether serve started it as a
// client's command (kInServeEnv holds serve's pid, and serve is its
// parent). What it starts in turn gets the marker as "1": not commands.
void take_command_marker();
// At the end of such a command: when serve is no longer its parent,
// records `code` for its client.
void record_status_if_orphaned(const std::string& run_root, int code);

struct CommandRequest {
  std::vector<std::string> args;  // without argv[0]
  std::vector<std::string> env;   // KEY=VALUE
  mode_t umask = 022;
};

// The JSON body of POST /commands: {"Args": [...], "Env": [...], "Umask": 18}.
std::string command_request_json(const CommandRequest& request);
// Throws berth::Error (exit code 1) naming the field that is wrong.
CommandRequest parse_command_request(const std::string& body);

// What serve takes from the client process at the other end of a unix
// socket: its pid (SO_PEERCRED), its binary and working directory (as
// /proc/PID paths, which stay valid while it waits), and duplicates of its
// fds 0, 1 and 2 (pidfd_getfd; /dev/null for one it has closed). Throws
// berth::Error when the peer is not root or its fds cannot be taken.
struct ClientProcess {
  pid_t pid = 0;
  std::string exe, cwd;
  std::array<UniqueFd, 3> stdio;
};
ClientProcess take_client_process(int socket_fd);

}  // namespace berth::supervisor
