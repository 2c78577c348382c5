// The child processes serve starts on its loop (restarts by policy,
// healthcheck probes, GitOps applies, clients' commands): all of them the
// berth binary, with the fds of serve's choosing. One place fills libuv's
// spawn options.
#pragma once

#include <uv.h>

#include <string>
#include <vector>

namespace berth::supervisor {

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] is the program run
  std::string cwd;                // "" = serve's
  int stdout_fd = -1;             // -1: discarded
  int stderr_fd = -1;             // -1: discarded
  // Its own session and process group: a signal to serve's group does not
  // reach it, it runs to its end if serve dies, and kill(-pid) ends it with
  // whatever it started.
  bool detached = false;
  std::vector<std::string> env;  // KEY=VALUE; empty: serve's own
  int stdin_fd = -1;              // -1: /dev/null
  std::string file;               // the program, when argv[0] is only its name
};

// uv_spawn of `options` into `process` (whose `data` the caller sets);
// `exit_cb` runs on the loop when it has exited. The fds are only
// duplicated into the child: the caller closes its own. Returns uv_spawn's
// result: 0, or a negative libuv error, after which the caller still closes
// `process`.
int spawn_child(uv_loop_t* loop, uv_process_t* process, const SpawnOptions& options, uv_exit_cb exit_cb);

}  // namespace berth::supervisor
