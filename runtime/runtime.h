// berth's integrated container runtime: the public verbs.
// Knows nothing of YAML, images or networks: it is handed a rootfs
// (overlay lower dirs) and a process spec.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
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

// Moves this process out of the cgroups its starter put it in, into the
// top of every cgroup hierarchy mounted here (the root, or as far up as
// this mount namespace shows). For berth's long-lived processes, a
// container's monitor and a serve the CLI started: they must not die with
// the shell session, CI job or service unit that ran the command, which a
// manager stops by killing every process of its cgroup. Containers have
// cgroups of their own. Makes nothing (no cgroup to remove later). Best
// effort: returns the hierarchies it could not leave and why, "" when none.
std::string leave_starter_cgroups();

// Whether the monitors this process starts leave its cgroups first
// (leave_starter_cgroups): yes by default, so that a container outlives the
// session, job or unit that ran the command, as docker's do; no in the
// commands a serve runs (serve starts no monitor itself), whose cgroup is
// theirs (a unit with KillMode=process, as docker's shims live in
// containerd's; a serve the CLI started has left the CLI's cgroups itself).
void set_monitors_leave_cgroups(bool leave);

// ---------------------------------------------------------------------------
// Container spec: everything needed to create a container, as plain values.

struct MountSpec {
  // Volume: a volume of runtime/volume.h's store, by name.
  enum class Type { Bind, Tmpfs, Volume };
  Type type = Type::Bind;
  // Bind: host path. Volume: the volume's name; empty asks create() for a
  // new anonymous volume (its name is then recorded here).
  std::string source;
  std::string destination;  // absolute path in the container
  bool read_only = false;
  std::string options;      // tmpfs mount data, e.g. "size=64m,mode=1777"
  // Volume: do not copy the image's content at destination into an empty
  // volume on the container's first start (docker's nocopy).
  bool no_copy = false;
};

struct ProcessSpec {
  std::vector<std::string> args;  // args[0] is looked up in the container's PATH
  std::vector<std::string> env;   // "KEY=VALUE"
  std::string cwd = "/";
  std::string user;               // "name|uid[:group|gid]"; empty = root
  bool tty = false;
  bool open_stdin = false;
  // docker's StdinOnce (`run -i` attached, `create -i`): the container's
  // stdin closes when the attached client's stdin does; otherwise (`run -d
  // -i`) it stays open for the next client.
  bool stdin_once = false;
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

// None: a new, empty network namespace (loopback only). Host: the host's.
// Netns: joins the existing namespace at ContainerSpec::netns_path (a
// bind-mounted netns file, or /proc/<pid>/ns/net of another container).
enum class NetworkMode { None, Host, Netns };

// A container's healthcheck, as docker stores it (HEALTHCHECK / compose
// `healthcheck:`). The runtime only keeps it; the supervisor runs it.
struct HealthcheckSpec {
  // {"CMD", arg...}, {"CMD-SHELL", "command"} or {"NONE"}; empty = none set.
  std::vector<std::string> test;
  int64_t interval_ns = 0;        // 0 = docker's default, 30 s
  int64_t timeout_ns = 0;         // 0 = 30 s
  int64_t start_period_ns = 0;    // 0 = none
  int64_t start_interval_ns = 0;  // 0 = 5 s
  int retries = 0;                // 0 = 3
  bool enabled() const { return !test.empty() && test[0] != "NONE"; }
  bool operator==(const HealthcheckSpec&) const = default;
};

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
  std::string netns_path;   // NetworkMode::Netns only: the namespace to setns() into
  // netns_path is a bind-mounted netns file made for this container: the
  // runtime unmounts and unlinks it when it removes the container (also
  // when the monitor removes a --rm container).
  bool remove_netns = false;
  // Contents of the container's /etc/hosts and /etc/resolv.conf; empty =
  // the defaults (localhost lines, or the host's file with host networking;
  // the host's resolv.conf).
  std::string hosts_file;
  std::string resolv_conf;
  Limits limits;
  SecuritySpec security;
  LogSpec log;
  std::map<std::string, std::string> labels;
  // "no", "always", "unless-stopped", "on-failure[:max]": stored for the
  // supervisor; the runtime does not act on it.
  std::string restart_policy = "no";
  HealthcheckSpec healthcheck;  // stored for the supervisor
  bool auto_remove = false;            // --rm: the monitor removes the container on exit
  // --sysctl KEY=VALUE: written in the container's namespaces before its
  // command runs. Only namespaced keys (create() checks them as docker does).
  std::map<std::string, std::string> sysctls;
  // --init: berth-init (a tiny static init next to the berth binary) is
  // bind-mounted at /sbin/docker-init and runs as PID 1, the command as its child.
  bool init = false;
  // Opaque to the runtime: stored with the container and handed back
  // unchanged (the CLI keeps the image ID and the image-derived config here).
  std::map<std::string, std::string> annotations;
};

// ---------------------------------------------------------------------------
// State.

enum class Status { Created, Running, Paused, Restarting, Exited, Dead };
const char* to_string(Status status);

// One healthcheck probe, as docker's State.Health.Log entries.
struct HealthProbe {
  std::string start;  // RFC 3339 nano
  std::string end;
  int exit_code = 0;
  std::string output;  // trimmed to a few KiB
};

// Written by the supervisor (in <root>/containers/<id>/health.json, apart
// from state.json so it never races the monitor's updates).
struct HealthState {
  std::string status;  // "" (no healthcheck), "starting", "healthy", "unhealthy"
  int failing_streak = 0;
  std::vector<HealthProbe> log;  // the last 5 probes, oldest first
};

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
  // Set by stop/kill from a user, cleared by start: restart policies leave
  // such a container alone (docker's HasBeenManuallyStopped).
  bool manually_stopped = false;
  int restart_count = 0;  // restarts by the supervisor's restart policy
  HealthState health;
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
  // A start by a restart policy (the supervisor): keeps RestartCount. Any
  // other start resets it to 0, as docker's start by a user does.
  bool by_restart_policy = false;
  // With stdin and a tty: the caller's keystrokes go through the monitor,
  // and this sequence (docker's --detach-keys; "" = ctrl-p,ctrl-q) detaches
  // the caller, leaving the container running; start() then returns 0 and
  // sets *detached.
  std::string detach_keys;
  bool* detached = nullptr;
  bool sig_proxy = true;  // the caller's signals go to the container (docker's --sig-proxy)
};

// `berth attach`: what the caller wants.
struct AttachOptions {
  bool stdin = true;         // false: --no-stdin
  std::string detach_keys;   // as Attach::detach_keys
  bool sig_proxy = true;     // forward the caller's signals (without a tty)
};

// ---------------------------------------------------------------------------
// The verbs. Every one throws berth::Error (exit code 125) on failure.

class Runtime {
 public:
  explicit Runtime(Paths paths);

  // Validates the spec (capabilities, seccomp profile, user, mounts) and
  // writes the container's directory. Leaves nothing behind on failure.
  // `id`: a new_container_id() the caller chose beforehand (to name things
  // it prepares for the container, e.g. its network namespace); empty = a
  // fresh one.
  Container create(ContainerSpec spec, const std::string& id = {});
  // A random docker-style name no container has now (for callers that need
  // the name before create).
  std::string unused_name() const;

  // Starts the container under a new monitor. Returns once the container's
  // process has been executed (or throws with exit code 125/126/127).
  // When attach.attach, blocks until the container exits and returns its
  // exit code (the monitor forwards output); otherwise returns 0.
  int start(const std::string& id_or_name, const Attach& attach = {});

  // Connects to a running container through its monitor: its output to
  // fds 1 and 2, fd 0 to its pty (with -i and -t). Returns its exit code
  // once it exits, or 0 when the caller detached (*detached set).
  int attach(const std::string& id_or_name, const AttachOptions& options, bool* detached = nullptr);

  // Sends a signal to the container's init.
  void kill(const std::string& id_or_name, int signal);
  // SIGTERM (or signal), waits timeout_s, then SIGKILL; returns when exited.
  void stop(const std::string& id_or_name, int timeout_s, int signal = 15);
  // Blocks until the container is not running; returns its exit code.
  int wait(const std::string& id_or_name);
  // Removes a stopped container (force: kill it first). Leaves nothing.
  // remove_volumes (docker's rm -v): its anonymous volumes go too, unless
  // another container uses them; named volumes never do.
  void remove(const std::string& id_or_name, bool force, bool remove_volumes = false);
  // Ends a container whose monitor died while its processes run on
  // (Status::Dead: unlogged, their exit unseen), as containerd does when a
  // shim dies: kills them and records the end its monitor would have (exit
  // 137, an error saying why), after which the container is exited and can
  // be started again. False when it is not dead (any more).
  bool end_unmonitored(const std::string& id_or_name);
  // Gives the container a new (unique) name.
  void rename(const std::string& id_or_name, const std::string& new_name);
  void pause(const std::string& id_or_name);
  // Records the supervisor's view of the container's health (health.json).
  void set_health(const std::string& id_or_name, const HealthState& health);
  void unpause(const std::string& id_or_name);

  // Runs a process inside a running container (all namespaces, cgroup,
  // capabilities, seccomp, no_new_privs). Returns its exit code, or 0 at
  // once when detached (its stdio is then /dev/null).
  int exec(const std::string& id_or_name, const ProcessSpec& process, bool detach = false);

  // Calls fn with an O_PATH fd of the container's root directory as the
  // container sees it, mounts included (for `cp`, runtime/archive.h): a
  // running container's through /proc/PID/root; a stopped one's rootfs,
  // volumes and binds mounted in a private mount namespace of a child
  // process, in which fn then runs (an Error it throws is rethrown here
  // with its message and exit code).
  void with_root(const std::string& id_or_name, const std::function<void(int root_fd)>& fn) const;

  Container get(const std::string& id_or_name) const;
  std::vector<Container> list() const;
  std::string log_path(const Container& c) const;

  // The hidden monitor mode entry point (`berth __monitor`); not for users.
  const Paths& paths() const { return paths_; }

 private:
  Paths paths_;
};

// 64 random hex digits: a container id no container has yet.
std::string new_container_id();

// The exit code docker's CLI uses when a process was killed by signal n.
constexpr int exit_code_for_signal(int n) { return 128 + n; }

}  // namespace berth::runtime
