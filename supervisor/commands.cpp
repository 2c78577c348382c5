#include "supervisor/commands.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "runtime/runtime.h"

namespace berth::supervisor {

using nlohmann::json;

std::string orphan_status_path(const std::string& run_root, pid_t command) {
  return run_root + "/commands/" + std::to_string(command);
}

namespace {
pid_t g_serve = 0;  // the serve that started this process as a command
}

void take_command_marker() {
  const char* serve = std::getenv(kInServeEnv);
  if (!serve) return;
  runtime::set_monitors_leave_cgroups(false);  // serve's cgroup is theirs
  pid_t pid = static_cast<pid_t>(std::atoi(serve));
  if (pid > 1 && pid == ::getppid()) g_serve = pid;
  ::setenv(kInServeEnv, "1", 1);
}

void record_status_if_orphaned(const std::string& run_root, int code) {
  if (g_serve == 0 || run_root.empty()) return;
  if (::getppid() == g_serve) return;  // serve tells the client itself
  try {
    make_dirs(run_root + "/commands", 0700);
    write_file_atomic(orphan_status_path(run_root, ::getpid()), std::to_string(code) + "\n", 0600);
  } catch (const std::exception&) {
    // Nowhere to leave it: the client says the status is unknown.
  }
}

std::string command_request_json(const CommandRequest& r) {
  return json{{"Args", r.args}, {"Env", r.env}, {"Umask", static_cast<int>(r.umask)}}.dump();
}

CommandRequest parse_command_request(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object()) throw Error("the request body is not a JSON object", 0, 1);
  CommandRequest r;
  auto strings = [&](const char* key, std::vector<std::string>& out, bool required) {
    auto it = j.find(key);
    if (it == j.end()) {
      if (required) throw Error(std::string("missing \"") + key + "\"", 0, 1);
      return;
    }
    if (!it->is_array()) throw Error(std::string("\"") + key + "\" must be an array of strings", 0, 1);
    for (auto& s : *it) {
      if (!s.is_string()) throw Error(std::string("\"") + key + "\" must be an array of strings", 0, 1);
      out.push_back(s.get<std::string>());
    }
  };
  strings("Args", r.args, true);
  if (r.args.empty()) throw Error("\"Args\" is empty: no command to run", 0, 1);
  strings("Env", r.env, false);
  if (auto it = j.find("Umask"); it != j.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0 || it->get<int64_t>() > 0777)
      throw Error("\"Umask\" must be an integer from 0 to 0777", 0, 1);
    r.umask = static_cast<mode_t>(it->get<int64_t>());
  }
  return r;
}

ClientProcess take_client_process(int socket_fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(socket_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) throw_errno("SO_PEERCRED");
  // The socket is root:root 0660; a member of group root could connect, but
  // running commands as root is root's alone (docker's group is the same
  // privilege: berth does not offer it).
  if (cred.uid != 0) throw Error("only root may run commands through berth serve", 0, 1);
  ClientProcess p;
  p.pid = cred.pid;
  std::string proc = "/proc/" + std::to_string(cred.pid);
  p.exe = proc + "/exe";
  p.cwd = proc + "/cwd";
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, cred.pid, 0)));
  if (!pidfd) throw_errno("pidfd_open of the client (pid " + std::to_string(cred.pid) + ")");
  for (int i = 0; i < 3; ++i) {
    int fd = static_cast<int>(::syscall(SYS_pidfd_getfd, pidfd.get(), i, 0));
    if (fd < 0 && errno == EBADF) fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd < 0) throw_errno("cannot take fd " + std::to_string(i) + " of the client (pid " + std::to_string(cred.pid) + ")");
    p.stdio[static_cast<size_t>(i)] = UniqueFd(fd);
  }
  return p;
}

}  // namespace berth::supervisor
