// berth's integrated container runtime: the public verbs.
// Knows nothing of YAML, images or networks: it is handed a rootfs
// (overlay lower dirs) and a process spec.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace berth::runtime {

enum class CgroupMode { Legacy, Hybrid, Unified };
const char* to_string(CgroupMode mode);

struct HostInfo {
  std::string kernel_release;  // uname -r
  std::string os_type;         // uname -s
  std::string architecture;    // uname -m
  CgroupMode cgroup_mode = CgroupMode::Legacy;
  // v1 controllers mounted as their own hierarchies (legacy and hybrid modes).
  std::vector<std::string> cgroup_v1_controllers;
  // Controllers available on the v2 hierarchy (its cgroup.controllers).
  std::vector<std::string> cgroup_v2_controllers;
  std::string cgroup_v2_mount;  // where the v2 hierarchy is, if any
  unsigned cpus = 0;
  unsigned long long memory_bytes = 0;
};

// Reads /proc and /sys; never changes anything.
HostInfo probe_host();

// `berth check`: one line per kernel feature berth needs or can use.
struct CheckItem {
  enum class Level { Ok, Degraded, Missing };
  std::string group;   // "Namespaces", "Filesystems", "Cgroups", "Security", "Networking"
  std::string name;
  Level level = Level::Ok;
  bool required = false;  // berth cannot run containers without it
  std::string detail;     // what it is, or what its absence costs
};
std::vector<CheckItem> check_host();

// ---------------------------------------------------------------------------
// Container spec: everything needed to create a container, as plain values.

struct MountSpec {
  enum class Type { Bind, Tmpfs };
  Type type = Type::Bind;
  std::string source;       // host path (bind only)
  std::string destination;  // absolute path in the container
  bool read_only = false;
  std::string options;      // tmpfs mount data, e.g. "size=64m,mode=1777"
};

struct ProcessSpec {
  std::vector<std::string> args;  // args[0] is looked up in the container's PATH
  std::vector<std::string> env;   // "KEY=VALUE"
  std::string cwd = "/";
  std::string user;               // "name|uid[:group|gid]"; empty = root
  bool tty = false;
  bool open_stdin = false;
};

struct Limits {
  int64_t memory_bytes = 0;       // 0 = unlimited
  int64_t memory_swap_bytes = 0;  // memory+swap; 0 = default (2x memory), -1 = unlimited
  int64_t nano_cpus = 0;          // --cpus × 1e9; 0 = unlimited
  int64_t cpu_shares = 0;         // 0 = default
  std::string cpuset_cpus;
  int64_t pids_limit = 0;         // 0 = unlimited
};

struct SecuritySpec {
  bool privileged = false;
  std::vector<std::string> cap_add;   // as given by the user (ALL, CAP_X, x)
  std::vector<std::string> cap_drop;
  // "" = docker's default profile, "unconfined", or the JSON text of a profile.
  std::string seccomp_profile;
  bool no_new_privileges = false;
};

struct LogSpec {
  std::string driver = "json-file";  // json-file | none
  int64_t max_size = -1;             // bytes; -1 = unlimited
  int max_file = 1;
};

enum class NetworkMode { None, Host };

// --ulimit name=soft[:hard]; name as docker spells it (nofile, nproc, core, ...).
struct Rlimit {
  std::string name;
  uint64_t soft = 0;
  uint64_t hard = 0;
};

struct ContainerSpec {
  std::string name;       // empty = generated
  std::string image;      // what the user named (for ps/inspect)
  // Overlay lower dirs, topmost first (overlayfs lowerdir order).
  std::vector<std::string> lower_dirs;
  ProcessSpec process;
  std::string hostname;   // empty = first 12 characters of the id
  std::vector<MountSpec> mounts;
  bool read_only_rootfs = false;
  int64_t shm_size = 0;  // bytes of /dev/shm; 0 = docker's 64 MiB
  std::vector<Rlimit> rlimits;
  std::string stop_signal = "SIGTERM";  // what stop sends first
  NetworkMode network = NetworkMode::None;
  Limits limits;
  SecuritySpec security;
  LogSpec log;
  std::map<std::string, std::string> labels;
  std::string restart_policy = "no";  // stored for the supervisor; not acted upon here
  bool auto_remove = false;            // --rm: the monitor removes the container on exit
  // Opaque to the runtime: stored with the container and handed back
  // unchanged (the CLI keeps the image ID and the image-derived config here).
  std::map<std::string, std::string> annotations;
};

// ---------------------------------------------------------------------------
// State.

enum class Status { Created, Running, Paused, Restarting, Exited, Dead };
const char* to_string(Status status);

struct ContainerState {
  Status status = Status::Created;
  int exit_code = 0;
  bool oom_killed = false;
  std::string error;        // why it did not start, or why it is dead
  std::string created_at;   // RFC 3339 with nanoseconds, UTC
  std::string started_at;
  std::string finished_at;
  pid_t pid = 0;            // container init on the host (0 when not running)
  pid_t monitor_pid = 0;
};

struct Container {
  std::string id;  // 64 hex characters
  ContainerSpec spec;
  ContainerState state;
  std::string dir;  // <root>/containers/<id>
};

// Where a runtime keeps its files.
struct Paths {
  std::string root;      // durable: <root>/containers/<id>/{config.json,state.json,...}
  std::string run_root;  // volatile: <run_root>/containers/<id>/runtime.json
  std::string self_exe;  // the berth binary (for the monitor mode); empty = /proc/self/exe
};

// How the caller of start() wants to be connected to the container.
struct Attach {
  bool attach = false;      // stdout/stderr forwarded to the caller's fds 1 and 2, exit code returned
  bool stdin = false;       // the caller's fd 0 becomes the container's stdin
};

// ---------------------------------------------------------------------------
// The verbs. Every one throws berth::Error (exit code 125) on failure.

class Runtime {
 public:
  explicit Runtime(Paths paths);

  // Validates the spec (capabilities, seccomp profile, user, mounts) and
  // writes the container's directory. Leaves nothing behind on failure.
  Container create(ContainerSpec spec);

  // Starts the container under a new monitor. Returns once the container's
  // process has been executed (or throws with exit code 125/126/127).
  // When attach.attach, blocks until the container exits and returns its
  // exit code (the monitor forwards output); otherwise returns 0.
  int start(const std::string& id_or_name, const Attach& attach = {});

  // Sends a signal to the container's init.
  void kill(const std::string& id_or_name, int signal);
  // SIGTERM (or signal), waits timeout_s, then SIGKILL; returns when exited.
  void stop(const std::string& id_or_name, int timeout_s, int signal = 15);
  // Blocks until the container is not running; returns its exit code.
  int wait(const std::string& id_or_name);
  // Removes a stopped container (force: kill it first). Leaves nothing.
  void remove(const std::string& id_or_name, bool force);
  // Gives the container a new (unique) name.
  void rename(const std::string& id_or_name, const std::string& new_name);
  void pause(const std::string& id_or_name);
  void unpause(const std::string& id_or_name);

  // Runs a process inside a running container (all namespaces, cgroup,
  // capabilities, seccomp, no_new_privs). Returns its exit code, or 0 at
  // once when detached (its stdio is then /dev/null).
  int exec(const std::string& id_or_name, const ProcessSpec& process, bool detach = false);

  Container get(const std::string& id_or_name) const;
  std::vector<Container> list() const;
  std::string log_path(const Container& c) const;

  // The hidden monitor mode entry point (`berth __monitor`); not for users.
  const Paths& paths() const { return paths_; }

 private:
  Paths paths_;
};

// The exit code docker's CLI uses when a process was killed by signal n.
constexpr int exit_code_for_signal(int n) { return 128 + n; }

}  // namespace berth::runtime
