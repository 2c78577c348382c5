// Talking to `berth serve` from another berth process: start it when it is
// not there, and plain HTTP/1.1 requests over its unix socket.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace berth::supervisor {

// <run_root>/berth.sock, <run_root>/berth.pid, <run_root>/serve.log
std::string socket_path(const runtime::Paths& paths);
std::string pid_path(const runtime::Paths& paths);
std::string log_path(const runtime::Paths& paths);

// True when a daemon answers GET /_ping on the socket within timeout.
bool daemon_answers(const runtime::Paths& paths, std::chrono::milliseconds timeout = std::chrono::milliseconds(500));

// Makes sure a `berth serve` runs for paths.root / paths.run_root: when the
// socket does not answer, starts `<self_exe> --root R --run-root RR serve`
// in the background (double fork, setsid, stdout/stderr to serve.log) and
// waits until it answers. Throws berth::Error (exit code 125) when it does
// not come up within `wait`. paths.self_exe empty = /proc/self/exe.
void ensure_daemon(const runtime::Paths& paths, std::chrono::milliseconds wait = std::chrono::seconds(10));

// Runs a berth command line (args without argv[0]) through the daemon of
// `paths` (POST /commands, see supervisor/commands.h): this process's
// environment, working directory, umask and fds 0-2 go with it; signals it
// receives (INT, TERM, HUP, QUIT, USR1, USR2, WINCH) are passed on, and a
// SIGTSTP (ctrl-z) stops the command with this process until it is
// continued; the command's exit status comes back (also when serve dies
// first). When no daemon answers, `start` says whether to start one
// (ensure_daemon). Returns std::nullopt when no daemon took the command
// (none runs and start is false, one could not be started, or it refused
// before running anything): the caller then runs it itself, with the same
// result, since the disk is the one source of truth. Throws berth::Error
// (125) when serve does not take the command within 10 s.
std::optional<int> run_via_daemon(const runtime::Paths& paths, const std::vector<std::string>& args, bool start);

struct HttpResponse {
  int status = 0;
  std::string body;
};

// One request (Connection: close) to the daemon's socket; the body is
// de-chunked. Throws berth::Error when the socket cannot be reached.
HttpResponse http_request(const std::string& socket, const std::string& method, const std::string& target,
                          const std::string& body = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));

// A streaming GET (e.g. /events): calls on_line for each newline-ended line
// of the (de-chunked) body until the server closes or on_line returns
// false. Returns the HTTP status. Throws berth::Error when unreachable.
int http_stream_lines(const std::string& socket, const std::string& target,
                      const std::function<bool(const std::string& line)>& on_line);

}  // namespace berth::supervisor
