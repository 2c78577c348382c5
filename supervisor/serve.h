// `berth serve`: the long-running supervisor. One libuv loop on one thread
// serves the HTTP/1.1 + JSON API on <run_root>/berth.sock, watches every
// container (a pidfd per running container's monitor, inotify on the state
// directories, a slow level-triggered resync), applies restart policies
// with docker's backoff, runs healthchecks, hosts the embedded DNS server
// for containers on berth networks, and streams events. Blocking work
// (starting a container, running a probe) happens in child processes of
// the berth binary, never on the loop. Containers never depend on the
// daemon: their monitors own them, so SIGKILL of serve loses nothing and
// the next serve re-adopts them.
#pragma once

#include <string>

#include "runtime/runtime.h"

namespace berth::supervisor {

struct ServeOptions {
  runtime::Paths paths;           // self_exe: the berth binary for child processes
  std::string version = "0.0.0";  // what GET /version reports
  std::string git_commit;
  int resync_interval_ms = 5000;  // the safety-net full resync
  bool dns = true;                // host the embedded DNS server
  // GitOps (supervisor/gitops.h): the directory of compose files to keep
  // applied ("" = none), its safety-net rescan, the first retry of a failed
  // apply (doubling up to a minute), and the resync that enforces it.
  std::string watch_dir;
  int watch_rescan_ms = 10'000;
  int watch_debounce_ms = 300;
  int watch_retry_ms = 1000;
  int watch_resync_ms = 30'000;
  // Started by the CLI (ensure_daemon) rather than by the user: its pid
  // file says so, and a serve the user starts for the same run root stops
  // it (SIGTERM; containers run on) and takes its place.
  bool started_by_cli = false;
};

// Runs until SIGTERM or SIGINT (clean shutdown: containers are left
// running). Throws berth::Error when another daemon holds the run root
// (unless it was started by the CLI and this one was not) or the socket
// cannot be bound.
void serve(const ServeOptions& options);

// The hidden `berth __restart ID COUNT` a daemon runs to start a container
// again by its restart policy: records the restart count, then starts it.
// Does nothing when it runs already, or when the user stopped it (unless
// even_if_stopped: an `always` container at daemon start, as docker).
void restart_by_policy(const runtime::Paths& paths, const std::string& id, int restart_count,
                       bool even_if_stopped = false);

}  // namespace berth::supervisor
