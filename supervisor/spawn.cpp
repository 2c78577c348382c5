#include "supervisor/spawn.h"

namespace berth::supervisor {

int spawn_child(uv_loop_t* loop, uv_process_t* process, const SpawnOptions& options, uv_exit_cb exit_cb) {
  std::vector<std::string> argv = options.argv;  // uv_spawn wants char*; it execs before returning
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  uv_stdio_container_t stdio[3];
  stdio[0].flags = UV_IGNORE;
  int fds[2] = {options.stdout_fd, options.stderr_fd};
  for (int i = 0; i < 2; ++i) {
    stdio[i + 1].flags = fds[i] >= 0 ? UV_INHERIT_FD : UV_IGNORE;
    stdio[i + 1].data.fd = fds[i];
  }
  uv_process_options_t o{};
  o.file = args[0];
  o.args = args.data();
  o.cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  o.stdio = stdio;
  o.stdio_count = 3;
  o.flags = options.detached ? UV_PROCESS_DETACHED : 0;
  o.exit_cb = exit_cb;
  return uv_spawn(loop, process, &o);
}

}  // namespace berth::supervisor
