#include "supervisor/spawn.h"

namespace berth::supervisor {

int spawn_child(uv_loop_t* loop, uv_process_t* process, const SpawnOptions& options, uv_exit_cb exit_cb) {
  std::vector<std::string> argv = options.argv;  // uv_spawn wants char*; it execs before returning
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  std::vector<std::string> env = options.env;
  std::vector<char*> envp;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  uv_stdio_container_t stdio[3];
  int fds[3] = {options.stdin_fd, options.stdout_fd, options.stderr_fd};
  for (int i = 0; i < 3; ++i) {
    stdio[i].flags = fds[i] >= 0 ? UV_INHERIT_FD : UV_IGNORE;
    stdio[i].data.fd = fds[i];
  }
  uv_process_options_t o{};
  o.file = options.file.empty() ? args[0] : options.file.c_str();
  o.args = args.data();
  o.cwd = options.cwd.empty() ? nullptr : options.cwd.c_str();
  o.env = env.empty() ? nullptr : envp.data();
  o.stdio = stdio;
  o.stdio_count = 3;
  o.flags = options.detached ? UV_PROCESS_DETACHED : 0;
  o.exit_cb = exit_cb;
  return uv_spawn(loop, process, &o);
}

}  // namespace berth::supervisor
