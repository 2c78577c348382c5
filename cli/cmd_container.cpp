// Container commands, docker's flags and output: run, create, start, stop,
// kill, rm, ps, logs, inspect, wait, exec, pause, unpause.
// A container's rootfs is an image from the store (reconciler/image_rootfs.h), or a
// directory given with podman's --rootfs flag.
#include <signal.h>
#include <sys/stat.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "base/human.h"
#include "base/time.h"
#include "base/fs.h"
#include "base/template.h"
#include "cli/cli.h"
#include "cli/raw_terminal.h"
#include "cli/table.h"
#include "cli/network_flags.h"
#include "reconciler/image_rootfs.h"
#include "runtime/attach.h"
#include "runtime/logfile.h"
#include "runtime/runtime.h"
#include "runtime/volume.h"
#include "spec/decode.h"
#include "supervisor/client.h"

namespace berth::cli {

using runtime::Container;
using runtime::ContainerSpec;
using runtime::Runtime;
using runtime::Status;

namespace {

Runtime runtime_for(const GlobalOptions& g) { return Runtime(runtime::Paths{g.root, g.run_root, {}}); }

// docker's daemon is always there; berth starts a `berth serve` for these
// roots when a container needs one: a restart policy, a healthcheck, or a
// user-defined network (serve answers its names on 127.0.0.11). Cheap when
// one already answers.
void ensure_supervisor_for(const GlobalOptions& g, const Container& c) {
  const auto& s = c.spec;
  bool restarts = !s.restart_policy.empty() && s.restart_policy != "no";
  bool health = !s.healthcheck.test.empty() && s.healthcheck.test.front() != "NONE";
  std::string mode = network_mode_name(c);
  bool user_network = mode != "bridge" && mode != "host" && mode != "none" && mode.rfind("container:", 0) != 0;
  if (restarts || health || user_network) supervisor::ensure_daemon(runtime::Paths{g.root, g.run_root, {}});
}

// Docker's multi-container verbs (start, stop, kill, rm, ...): act on each
// reference in turn, print it on success, report each failure on its own
// line, and exit 1 at the end when any failed.
void for_each_container(const std::vector<std::string>& refs, const std::function<void(const std::string&)>& act) {
  int rc = 0;
  for (auto& r : refs) {
    try {
      act(r);
      std::cout << r << "\n";
    } catch (const Error& e) {
      std::cerr << "Error response from daemon: " << e.what() << "\n";
      rc = 1;
    }
  }
  if (rc) exit_with(rc);
}

// "512m", "1g", "100k", "1024" (bytes) -> bytes; docker's RAMInBytes.
int64_t parse_bytes(const std::string& flag, const std::string& s) {
  if (s == "-1") return -1;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  std::string unit = end ? end : "";
  for (auto& c : unit) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (!unit.empty() && unit.back() == 'b' && unit.size() == 2) unit.pop_back();
  double mult = 1;
  if (unit == "" || unit == "b") mult = 1;
  else if (unit == "k") mult = 1024.0;
  else if (unit == "m") mult = 1024.0 * 1024;
  else if (unit == "g") mult = 1024.0 * 1024 * 1024;
  else if (unit == "t") mult = 1024.0 * 1024 * 1024 * 1024;
  else throw UsageError("invalid size for " + flag + ": '" + s + "'");
  if (end == s.c_str() || v < 0) throw UsageError("invalid size for " + flag + ": '" + s + "'");
  return static_cast<int64_t>(v * mult);
}

int parse_signal(const std::string& s) {
  if (!s.empty() && std::all_of(s.begin(), s.end(), ::isdigit)) {
    int n = std::atoi(s.c_str());
    if (n > 0 && n < NSIG) return n;
  }
  std::string up;
  for (char c : s) up += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (up.rfind("SIG", 0) == 0) up = up.substr(3);
  for (int n = 1; n < NSIG; ++n) {
    const char* abbrev = sigabbrev_np(n);
    if (abbrev && up == abbrev) return n;
  }
  throw UsageError("invalid signal: " + s);
}

// Environment entries: "K=V" as is; a bare "K" takes the caller's value, if any.
void add_env(std::vector<std::string>& env, const std::string& entry) {
  std::string kv = entry;
  if (kv.find('=') == std::string::npos) {
    const char* v = std::getenv(kv.c_str());
    if (!v) return;
    kv += "=" + std::string(v);
  }
  std::string key = kv.substr(0, kv.find('='));
  if (key.empty()) throw UsageError("invalid environment variable: " + entry);
  env.erase(std::remove_if(env.begin(), env.end(), [&](auto& e) { return e.compare(0, key.size() + 1, key + "=") == 0; }),
            env.end());
  env.push_back(kv);
}

// -v: host path binds, named and anonymous volumes (runtime/volume.h).
runtime::MountSpec parse_volume(const std::string& spec) { return runtime::parse_volume_flag(spec); }

runtime::MountSpec parse_tmpfs(const std::string& spec) {
  runtime::MountSpec m;
  m.type = runtime::MountSpec::Type::Tmpfs;
  auto colon = spec.find(':');
  m.destination = spec.substr(0, colon);
  if (colon != std::string::npos) m.options = spec.substr(colon + 1);
  if (m.destination.empty() || m.destination[0] != '/')
    throw UsageError("invalid tmpfs specification: '" + spec + "': the path must be absolute");
  return m;
}

struct RunOptions {
  bool detach = false, interactive = false, tty = false, rm = false;
  std::string detach_keys;  // run: docker's --detach-keys
  bool sig_proxy = true;
  bool privileged = false, read_only = false;
  std::string name, rootfs, workdir, user, hostname, entrypoint;
  NetworkFlags net;  // --network, -p, --dns, ... (cli/network_flags.h)
  bool entrypoint_set = false;
  std::vector<std::string> env, env_files, volumes, mounts, tmpfs, cap_add, cap_drop, security_opts, log_opts, labels, ulimits;
  std::string shm_size, stop_signal;
  std::string memory, memory_swap, cpus, cpuset_cpus, log_driver = "json-file", restart = "no";
  int64_t cpu_shares = 0, pids_limit = 0;
  // Healthcheck (run by `berth serve`).
  std::string health_cmd, health_interval, health_timeout, health_start_period, health_start_interval;
  int health_retries = 0;
  bool no_healthcheck = false;
  bool init = false;
  std::vector<std::string> sysctls;
  std::vector<std::string> rest;  // IMAGE [COMMAND [ARG...]], or COMMAND [ARG...] with --rootfs
};

void add_run_flags(CLI::App* cmd, RunOptions& o, bool is_run) {
  // -h is --hostname here, as in docker.
  cmd->set_help_flag("--help", "Print usage");
  if (is_run) {
    cmd->add_flag("-d,--detach", o.detach, "Run container in background and print container ID");
    cmd->add_flag("--rm", o.rm, "Automatically remove the container when it exits");
    cmd->add_option("--detach-keys", o.detach_keys, "Override the key sequence for detaching a container");
    cmd->add_flag("--sig-proxy{true}", o.sig_proxy, "Proxy received signals to the process (default true)");
  }
  cmd->add_flag("-i,--interactive", o.interactive, "Keep STDIN open even if not attached");
  cmd->add_flag("-t,--tty", o.tty, "Allocate a pseudo-TTY");
  cmd->add_option("--name", o.name, "Assign a name to the container");
  cmd->add_option("--rootfs", o.rootfs, "Use DIR as the container's root filesystem (no image)");
  cmd->add_option("-e,--env", o.env, "Set environment variables")->allow_extra_args(false);
  cmd->add_option("--env-file", o.env_files, "Read in a file of environment variables")->allow_extra_args(false);
  cmd->add_option("-v,--volume", o.volumes, "Bind mount a volume (SRC|NAME:DST[:ro|rw|nocopy], or DST)")
      ->allow_extra_args(false);
  cmd->add_option("--mount", o.mounts, "Attach a filesystem mount to the container (type=volume|bind|tmpfs,...)")
      ->allow_extra_args(false);
  cmd->add_option("--tmpfs", o.tmpfs, "Mount a tmpfs directory (PATH[:OPTIONS])")->allow_extra_args(false);
  cmd->add_option("-w,--workdir", o.workdir, "Working directory inside the container");
  cmd->add_option("-u,--user", o.user, "Username or UID (format: <name|uid>[:<group|gid>])");
  cmd->add_option("-h,--hostname", o.hostname, "Container host name");
  cmd->add_option("--entrypoint", o.entrypoint, "Overwrite the default ENTRYPOINT of the image")
      ->each([&o](const std::string&) { o.entrypoint_set = true; });
  add_network_flags(cmd, o.net);
  cmd->add_option("-m,--memory", o.memory, "Memory limit");
  cmd->add_option("--memory-swap", o.memory_swap, "Swap limit equal to memory plus swap: '-1' for unlimited");
  cmd->add_option("--cpus", o.cpus, "Number of CPUs");
  cmd->add_option("-c,--cpu-shares", o.cpu_shares, "CPU shares (relative weight)");
  cmd->add_option("--cpuset-cpus", o.cpuset_cpus, "CPUs in which to allow execution (0-3, 0,1)");
  cmd->add_option("--pids-limit", o.pids_limit, "Tune container pids limit (-1 for unlimited)");
  cmd->add_option("--cap-add", o.cap_add, "Add Linux capabilities")->allow_extra_args(false);
  cmd->add_option("--cap-drop", o.cap_drop, "Drop Linux capabilities")->allow_extra_args(false);
  cmd->add_flag("--privileged", o.privileged, "Give extended privileges to this container");
  cmd->add_option("--security-opt", o.security_opts, "Security options")->allow_extra_args(false);
  cmd->add_flag("--read-only", o.read_only, "Mount the container's root filesystem as read only");
  cmd->add_option("--shm-size", o.shm_size, "Size of /dev/shm");
  cmd->add_option("--ulimit", o.ulimits, "Ulimit options (name=soft[:hard])")->allow_extra_args(false);
  cmd->add_option("--stop-signal", o.stop_signal, "Signal to stop the container");
  cmd->add_option("--log-driver", o.log_driver, "Logging driver for the container (json-file|none)");
  cmd->add_option("--log-opt", o.log_opts, "Log driver options")->allow_extra_args(false);
  cmd->add_option("-l,--label", o.labels, "Set meta data on a container")->allow_extra_args(false);
  cmd->add_option("--restart", o.restart, "Restart policy to apply when a container exits (enforced by berth serve)");
  cmd->add_option("--health-cmd", o.health_cmd, "Command to run to check health");
  cmd->add_option("--health-interval", o.health_interval, "Time between running the check (ms|s|m|h)");
  cmd->add_option("--health-timeout", o.health_timeout, "Maximum time to allow one check to run (ms|s|m|h)");
  cmd->add_option("--health-retries", o.health_retries, "Consecutive failures needed to report unhealthy");
  cmd->add_option("--health-start-period", o.health_start_period,
                  "Start period for the container to initialize before starting health-retries countdown");
  cmd->add_option("--health-start-interval", o.health_start_interval, "Time between running the check during the start period");
  cmd->add_flag("--no-healthcheck", o.no_healthcheck, "Disable any container-specified HEALTHCHECK");
  cmd->add_flag("--init", o.init, "Run an init inside the container that forwards signals and reaps processes");
  cmd->add_option("--sysctl", o.sysctls, "Sysctl options (KEY=VALUE)")->allow_extra_args(false);
  // Everything from the first positional on is IMAGE/COMMAND and its args.
  cmd->prefix_command();
}

std::vector<std::string> json_strings(const nlohmann::json& j) {
  std::vector<std::string> out;
  if (j.is_array())
    for (auto& v : j)
      if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

std::string json_string(const nlohmann::json& cfg, const char* key) {
  return cfg.contains(key) && cfg[key].is_string() ? cfg[key].get<std::string>() : "";
}

// The image's HEALTHCHECK with the --health-* flags over it, as docker run.
runtime::HealthcheckSpec healthcheck_from(const RunOptions& o, const nlohmann::json& image) {
  runtime::HealthcheckSpec h;
  if (image.contains("Healthcheck") && image["Healthcheck"].is_object()) {
    const nlohmann::json& ih = image["Healthcheck"];
    auto num = [&](const char* k) { return ih.contains(k) && ih[k].is_number() ? ih[k].get<int64_t>() : int64_t{0}; };
    h.test = json_strings(ih.value("Test", nlohmann::json()));
    h.interval_ns = num("Interval");
    h.timeout_ns = num("Timeout");
    h.start_period_ns = num("StartPeriod");
    h.start_interval_ns = num("StartInterval");
    h.retries = static_cast<int>(num("Retries"));
  }
  bool flags = !o.health_cmd.empty() || !o.health_interval.empty() || !o.health_timeout.empty() ||
               !o.health_start_period.empty() || !o.health_start_interval.empty() || o.health_retries != 0;
  if (o.no_healthcheck) {
    if (flags) throw Error("--no-healthcheck conflicts with --health-* options", 0, 125);
    return runtime::HealthcheckSpec{{"NONE"}};
  }
  if (!o.health_cmd.empty()) h.test = {"CMD-SHELL", o.health_cmd};
  auto duration = [](const std::string& text, const char* flag, int64_t& out) {
    if (text.empty()) return;
    spec::Duration d;
    if (!spec::parse_duration(text, d) || d.nanoseconds < 0)
      throw Error(std::string("invalid argument \"") + text + "\" for \"" + flag + "\" flag: invalid duration", 0, 125);
    out = d.nanoseconds;
  };
  duration(o.health_interval, "--health-interval", h.interval_ns);
  duration(o.health_timeout, "--health-timeout", h.timeout_ns);
  duration(o.health_start_period, "--health-start-period", h.start_period_ns);
  duration(o.health_start_interval, "--health-start-interval", h.start_interval_ns);
  if (o.health_retries < 0) throw Error("--health-retries cannot be negative", 0, 125);
  if (o.health_retries) h.retries = o.health_retries;
  return h;
}

ContainerSpec spec_from(const RunOptions& o, const std::vector<std::string>& positional, const GlobalOptions& g,
                        bool is_run) {
  ContainerSpec s;
  std::vector<std::string> command = positional;
  // The image config's "config" object: its defaults apply as docker merges them.
  nlohmann::json image = nlohmann::json::object();
  bool from_image = o.rootfs.empty();
  if (from_image) {
    if (command.empty())
      throw UsageError(std::string("\"") + (is_run ? "run" : "create") +
                       "\" requires at least 1 argument: IMAGE [COMMAND] [ARG...]");
    reconciler::ImageRootfs img = reconciler::resolve_image(g.root, command.front());
    command.erase(command.begin());
    s.lower_dirs = img.lower_dirs;
    s.image = img.reference;
    image = img.config;
    s.annotations[reconciler::kImageIdAnnotation] = img.id;
  } else {
    std::string rootfs = path_absolute(o.rootfs);
    if (!is_directory(rootfs)) throw Error("--rootfs " + o.rootfs + ": not a directory", 0, 125);
    s.lower_dirs = {rootfs};
    s.image = rootfs;
  }
  // --entrypoint replaces the image's entrypoint and drops its Cmd; args replace Cmd.
  std::vector<std::string> entrypoint, cmd;
  if (o.entrypoint_set) {
    if (!o.entrypoint.empty()) entrypoint = {o.entrypoint};
    cmd = command;
  } else {
    entrypoint = json_strings(image.value("Entrypoint", nlohmann::json()));
    cmd = command.empty() ? json_strings(image.value("Cmd", nlohmann::json())) : command;
  }
  s.process.args = entrypoint;
  s.process.args.insert(s.process.args.end(), cmd.begin(), cmd.end());
  if (s.process.args.empty()) throw UsageError("no command specified");
  s.name = o.name;
  s.hostname = o.hostname;
  std::string workdir = o.workdir.empty() ? json_string(image, "WorkingDir") : o.workdir;
  s.process.cwd = workdir.empty() ? "/" : workdir;
  s.process.user = o.user.empty() ? json_string(image, "User") : o.user;
  // Image env first; --env-file and -e override it key by key.
  for (auto& e : json_strings(image.value("Env", nlohmann::json()))) add_env(s.process.env, e);
  s.process.tty = o.tty;
  s.process.open_stdin = o.interactive;
  s.process.stdin_once = o.interactive && !o.detach;  // docker: run -d clears StdinOnce
  for (auto& f : o.env_files) {
    std::string text;
    try {
      text = read_file(f);
    } catch (const Error& e) {
      throw Error(std::string("--env-file: ") + e.what(), 0, 125);
    }
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      size_t b = line.find_first_not_of(" \t");
      if (b == std::string::npos || line[b] == '#') continue;
      add_env(s.process.env, line.substr(b));
    }
  }
  for (auto& e : o.env) add_env(s.process.env, e);
  for (auto& v : o.volumes) s.mounts.push_back(parse_volume(v));
  for (auto& v : o.mounts) s.mounts.push_back(runtime::parse_mount_flag(v));
  for (auto& t : o.tmpfs) s.mounts.push_back(parse_tmpfs(t));
  for (size_t i = 0; i < s.mounts.size(); ++i)
    for (size_t k = 0; k < i; ++k)
      if (path_absolute(s.mounts[i].destination) == path_absolute(s.mounts[k].destination))
        throw Error("Duplicate mount point: " + s.mounts[i].destination, 0, 125);
  // The image's Volumes: an anonymous volume each, unless mounted already (docker).
  if (image.contains("Volumes") && image["Volumes"].is_object())
    for (auto& [path, unused] : image["Volumes"].items()) {
      if (path.empty() || path[0] != '/') continue;
      bool covered = std::any_of(s.mounts.begin(), s.mounts.end(), [&](const runtime::MountSpec& m) {
        return path_absolute(m.destination) == path_absolute(path);
      });
      if (covered) continue;
      runtime::MountSpec m;
      m.type = runtime::MountSpec::Type::Volume;
      m.destination = path;
      s.mounts.push_back(m);
    }
  // The network mode is set by create_with_network (cli/network_flags.h).
  if (!o.memory.empty()) s.limits.memory_bytes = parse_bytes("--memory", o.memory);
  if (!o.memory_swap.empty()) s.limits.memory_swap_bytes = parse_bytes("--memory-swap", o.memory_swap);
  if (s.limits.memory_bytes > 0 && s.limits.memory_bytes < 6 * 1024 * 1024)
    throw Error("Minimum memory limit allowed is 6MB", 0, 125);
  if (s.limits.memory_swap_bytes > 0 && s.limits.memory_swap_bytes < s.limits.memory_bytes)
    throw Error("Minimum memoryswap limit should be larger than memory limit, see usage", 0, 125);
  if (!o.cpus.empty()) {
    char* end = nullptr;
    double c = std::strtod(o.cpus.c_str(), &end);
    if (end == o.cpus.c_str() || *end || c <= 0) throw UsageError("invalid argument \"" + o.cpus + "\" for --cpus");
    s.limits.nano_cpus = static_cast<int64_t>(c * 1e9);
  }
  s.limits.cpu_shares = o.cpu_shares;
  s.limits.cpuset_cpus = o.cpuset_cpus;
  s.limits.pids_limit = o.pids_limit > 0 ? o.pids_limit : 0;
  s.security.privileged = o.privileged;
  s.security.cap_add = o.cap_add;
  s.security.cap_drop = o.cap_drop;
  for (auto& opt : o.security_opts) {
    auto eq = opt.find_first_of("=:");
    std::string key = opt.substr(0, eq), val = eq == std::string::npos ? "" : opt.substr(eq + 1);
    if (key == "seccomp") {
      if (val == "unconfined") s.security.seccomp_profile = "unconfined";
      else if (val.empty()) throw Error("invalid --security-opt: " + opt, 0, 125);
      else {
        try {
          s.security.seccomp_profile = read_file(val);
        } catch (const Error& e) {
          throw Error(std::string("opening seccomp profile failed: ") + e.what(), 0, 125);
        }
      }
    } else if (key == "no-new-privileges") {
      if (val.empty() || val == "true") s.security.no_new_privileges = true;
      else if (val != "false") throw Error("invalid --security-opt: " + opt, 0, 125);
    } else if (key == "label" || key == "apparmor") {
      // No LSM support: accepted and ignored, as on a host without one.
    } else {
      throw Error("invalid --security-opt: " + opt, 0, 125);
    }
  }
  s.read_only_rootfs = o.read_only;
  if (!o.shm_size.empty()) {
    s.shm_size = parse_bytes("--shm-size", o.shm_size);
    if (s.shm_size <= 0) throw Error("invalid --shm-size: " + o.shm_size, 0, 125);
  }
  for (auto& u : o.ulimits) {
    auto eq = u.find('=');
    if (eq == std::string::npos) throw Error("invalid ulimit argument: " + u, 0, 125);
    std::string values = u.substr(eq + 1);
    auto colon = values.find(':');
    auto number = [&](const std::string& v) -> uint64_t {
      if (v == "-1" || v == "unlimited") return ~0ULL;
      if (v.empty() || v.find_first_not_of("0123456789") != std::string::npos)
        throw Error("invalid ulimit argument: " + u, 0, 125);
      return std::stoull(v);
    };
    uint64_t soft = number(values.substr(0, colon));
    uint64_t hard = colon == std::string::npos ? soft : number(values.substr(colon + 1));
    s.rlimits.push_back({u.substr(0, eq), soft, hard});
  }
  if (!o.stop_signal.empty()) {
    parse_signal(o.stop_signal);  // validates
    s.stop_signal = o.stop_signal;
  } else if (std::string sig = json_string(image, "StopSignal"); !sig.empty()) {
    try {
      parse_signal(sig);
    } catch (const Error&) {
      throw Error("image " + s.image + ": invalid StopSignal " + sig, 0, 125);
    }
    s.stop_signal = sig;
  }
  s.log.driver = o.log_driver;
  for (auto& lo : o.log_opts) {
    auto eq = lo.find('=');
    if (eq == std::string::npos) throw Error("invalid log opt format: " + lo, 0, 125);
    std::string k = lo.substr(0, eq), v = lo.substr(eq + 1);
    if (k == "max-size") s.log.max_size = parse_bytes("max-size", v);
    else if (k == "max-file") {
      s.log.max_file = std::atoi(v.c_str());
      if (s.log.max_file < 1) throw Error("max-file cannot be less than 1", 0, 125);
    } else throw Error("unknown log opt '" + k + "' for " + o.log_driver + " log driver", 0, 125);
  }
  // Image labels first; the container's own override them.
  if (image.contains("Labels") && image["Labels"].is_object())
    for (auto& [k, v] : image["Labels"].items())
      if (v.is_string()) s.labels[k] = v.get<std::string>();
  for (auto& l : o.labels) {
    auto eq = l.find('=');
    s.labels[l.substr(0, eq)] = eq == std::string::npos ? "" : l.substr(eq + 1);
  }
  const std::string& r = o.restart;
  if (!(r == "no" || r == "always" || r == "unless-stopped" || r.rfind("on-failure", 0) == 0))
    throw Error("invalid restart policy '" + r + "'", 0, 125);
  s.restart_policy = r;
  s.healthcheck = healthcheck_from(o, image);
  s.auto_remove = o.rm;
  s.init = o.init;
  for (auto& kv : o.sysctls) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0)
      throw Error("invalid argument \"" + kv + "\" for \"--sysctl\" flag: want KEY=VALUE", 0, 125);
    s.sysctls[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  if (from_image) {
    // Docker's Config as merged, for inspect and commit. Env is kept before
    // the runtime adds PATH/HOSTNAME defaults; the image's Volumes became
    // anonymous volume mounts above.
    nlohmann::json cfg = {{"Env", s.process.env},
                          {"WorkingDir", workdir},
                          {"User", s.process.user},
                          {"Labels", s.labels},
                          {"Entrypoint", entrypoint.empty() ? nlohmann::json() : nlohmann::json(entrypoint)},
                          {"Cmd", cmd.empty() ? nlohmann::json() : nlohmann::json(cmd)}};
    if (!o.stop_signal.empty() || !json_string(image, "StopSignal").empty()) cfg["StopSignal"] = s.stop_signal;
    for (const char* key : {"ExposedPorts", "Volumes"})
      if (image.contains(key) && image[key].is_object() && !image[key].empty()) cfg[key] = image[key];
    s.annotations[reconciler::kConfigAnnotation] = cfg.dump();
  }
  return s;
}

// Any failure of run/create is berth's, hence 125 (unless the container's
// command could not be executed: 126/127).
template <typename F>
void as_daemon_error(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    if (e.exit_code() == 1) throw Error(e.what(), 0, 125);
    throw;
  }
}

// docker: `run -it` and `exec -it` relay a terminal, so their input must be
// one; from a pipe or a file they fail (exit 1) before anything is made.
// Without -i (or detached) no input is read and any stdin will do.
void check_tty_input(bool attach_stdin, bool tty) {
  if (attach_stdin && tty && !::isatty(STDIN_FILENO)) throw Error("the input device is not a TTY", 0, 1);
}

std::string status_text(const Container& c) {
  switch (c.state.status) {
    case Status::Created: return "Created";
    case Status::Running: {
      std::string up = "Up " + human_duration(now_epoch_seconds() - rfc3339_seconds(c.state.started_at));
      const std::string& h = c.state.health.status;
      if (h == "starting") return up + " (health: starting)";
      return h.empty() ? up : up + " (" + h + ")";
    }
    case Status::Paused: return "Up " + human_duration(now_epoch_seconds() - rfc3339_seconds(c.state.started_at)) + " (Paused)";
    case Status::Restarting: return "Restarting (" + std::to_string(c.state.exit_code) + ")";
    case Status::Exited:
      return "Exited (" + std::to_string(c.state.exit_code) + ") " +
             human_duration(now_epoch_seconds() - rfc3339_seconds(c.state.finished_at)) + " ago";
    case Status::Dead: return "Dead";
  }
  return "";
}

std::string quote_command(const std::vector<std::string>& args) {
  std::string s;
  for (auto& a : args) s += (s.empty() ? "" : " ") + a;
  return s;
}

nlohmann::json inspect_json(const Runtime& rt, const Container& c) {
  const auto& s = c.spec;
  const auto& st = c.state;
  nlohmann::json mounts = nlohmann::json::array();
  std::vector<std::string> binds;
  runtime::VolumeStore volumes(rt.paths());
  for (auto& m : s.mounts) {
    if (m.type == runtime::MountSpec::Type::Volume) {
      auto v = volumes.find(m.source);
      if (!v || !v->anonymous) binds.push_back(m.source + ":" + m.destination + (m.read_only ? ":ro" : ""));
      mounts.push_back({{"Type", "volume"}, {"Name", m.source},
                        {"Source", v ? v->mountpoint : rt.paths().root + "/volumes/" + m.source + "/_data"},
                        {"Destination", m.destination}, {"Driver", "local"},
                        {"Mode", m.read_only ? "ro" : v && v->anonymous ? "" : "z"},
                        {"RW", !m.read_only}, {"Propagation", ""}});
    }
    if (m.type == runtime::MountSpec::Type::Bind) {
      binds.push_back(m.source + ":" + m.destination + (m.read_only ? ":ro" : ""));
      mounts.push_back({{"Type", "bind"}, {"Source", m.source}, {"Destination", m.destination},
                        {"Mode", m.read_only ? "ro" : ""}, {"RW", !m.read_only}, {"Propagation", "rprivate"}});
    }
  }
  nlohmann::json tmpfs = nlohmann::json::object();
  for (auto& m : s.mounts)
    if (m.type == runtime::MountSpec::Type::Tmpfs) tmpfs[m.destination] = m.options;
  std::string lower;
  for (auto& d : s.lower_dirs) lower += (lower.empty() ? "" : ":") + d;
  nlohmann::json ulimits = nlohmann::json::array();
  for (auto& r : s.rlimits)
    ulimits.push_back({{"Name", r.name}, {"Soft", static_cast<int64_t>(r.soft)}, {"Hard", static_cast<int64_t>(r.hard)}});
  nlohmann::json log_config = {{"Type", s.log.driver}, {"Config", nlohmann::json::object()}};
  if (s.log.max_size > 0) log_config["Config"]["max-size"] = std::to_string(s.log.max_size);
  if (s.log.max_file > 1) log_config["Config"]["max-file"] = std::to_string(s.log.max_file);
  nlohmann::json j = {
      {"Id", c.id},
      {"Created", st.created_at},
      {"Path", s.process.args.empty() ? "" : s.process.args[0]},
      {"Args", s.process.args.size() > 1 ? std::vector<std::string>(s.process.args.begin() + 1, s.process.args.end())
                                         : std::vector<std::string>{}},
      {"State",
       {{"Status", runtime::to_string(st.status)},
        {"Running", st.status == Status::Running || st.status == Status::Paused},
        {"Paused", st.status == Status::Paused},
        {"Restarting", st.status == Status::Restarting},
        {"OOMKilled", st.oom_killed},
        {"Dead", st.status == Status::Dead},
        {"Pid", st.pid},
        {"ExitCode", st.exit_code},
        {"Error", st.error},
        {"StartedAt", st.started_at.empty() ? "0001-01-01T00:00:00Z" : st.started_at},
        {"FinishedAt", st.finished_at.empty() ? "0001-01-01T00:00:00Z" : st.finished_at}}},
      {"Image", s.annotations.count(reconciler::kImageIdAnnotation) ? s.annotations.at(reconciler::kImageIdAnnotation) : s.image},
      {"ResolvConfPath", c.dir + "/resolv.conf"},
      {"HostnamePath", c.dir + "/hostname"},
      {"HostsPath", c.dir + "/hosts"},
      {"LogPath", s.log.driver == "json-file" ? rt.log_path(c) : ""},
      {"Name", "/" + s.name},
      {"RestartCount", st.restart_count},
      {"Driver", "overlay2"},
      {"Platform", "linux"},
      {"HostConfig",
       {{"Binds", binds},
        {"RestartPolicy", {{"Name", s.restart_policy.substr(0, s.restart_policy.find(':'))}}},
        {"AutoRemove", s.auto_remove},
        {"LogConfig", log_config},
        {"CapAdd", s.security.cap_add},
        {"CapDrop", s.security.cap_drop},
        {"Privileged", s.security.privileged},
        {"ReadonlyRootfs", s.read_only_rootfs},
        {"ShmSize", s.shm_size > 0 ? s.shm_size : 64 << 20},
        {"Ulimits", ulimits},
        {"SecurityOpt", s.security.no_new_privileges ? std::vector<std::string>{"no-new-privileges"}
                                                     : std::vector<std::string>{}},
        {"Tmpfs", tmpfs},
        {"Memory", s.limits.memory_bytes},
        {"MemorySwap", s.limits.memory_swap_bytes},
        {"NanoCpus", s.limits.nano_cpus},
        {"CpuShares", s.limits.cpu_shares},
        {"CpusetCpus", s.limits.cpuset_cpus},
        {"PidsLimit", s.limits.pids_limit},
        {"Init", s.init ? nlohmann::json(true) : nlohmann::json()},
        {"Sysctls", s.sysctls}}},
      {"GraphDriver",
       {{"Name", "overlay2"},
        {"Data",
         {{"LowerDir", lower},
          {"UpperDir", c.dir + "/upper"},
          {"WorkDir", c.dir + "/work"},
          {"MergedDir", c.dir + "/merged"}}}}},
      {"Mounts", mounts},
      {"Config",
       {{"Hostname", s.hostname},
        {"User", s.process.user},
        {"Tty", s.process.tty},
        {"OpenStdin", s.process.open_stdin},
        {"StdinOnce", s.process.stdin_once},
        {"Env", s.process.env},
        {"Cmd", s.process.args},
        {"Image", s.image},
        {"WorkingDir", s.process.cwd},
        {"StopSignal", s.stop_signal},
        {"Labels", s.labels}}},
  };
  j["NetworkSettings"] = network_settings_json(rt, c, j["HostConfig"]);
  if (auto it = s.annotations.find(reconciler::kConfigAnnotation); it != s.annotations.end()) {
    auto cfg = nlohmann::json::parse(it->second, nullptr, false);
    if (cfg.is_object()) {
      auto& config = j["Config"];
      config["Entrypoint"] = cfg.value("Entrypoint", nlohmann::json());
      config["Cmd"] = cfg.value("Cmd", nlohmann::json());
      config["WorkingDir"] = cfg.value("WorkingDir", "");
      for (const char* key : {"ExposedPorts", "Volumes"})
        if (cfg.contains(key)) config[key] = cfg[key];
    }
  }
  // Healthcheck as docker shows it: Config.Healthcheck, State.Health (written by berth serve).
  if (!s.healthcheck.test.empty()) {
    nlohmann::json hc = {{"Test", s.healthcheck.test}};
    if (s.healthcheck.interval_ns) hc["Interval"] = s.healthcheck.interval_ns;
    if (s.healthcheck.timeout_ns) hc["Timeout"] = s.healthcheck.timeout_ns;
    if (s.healthcheck.start_period_ns) hc["StartPeriod"] = s.healthcheck.start_period_ns;
    if (s.healthcheck.start_interval_ns) hc["StartInterval"] = s.healthcheck.start_interval_ns;
    if (s.healthcheck.retries) hc["Retries"] = s.healthcheck.retries;
    j["Config"]["Healthcheck"] = hc;
  }
  if (!st.health.status.empty()) {
    nlohmann::json log = nlohmann::json::array();
    for (auto& p : st.health.log)
      log.push_back({{"Start", p.start}, {"End", p.end}, {"ExitCode", p.exit_code}, {"Output", p.output}});
    j["State"]["Health"] = {{"Status", st.health.status}, {"FailingStreak", st.health.failing_streak}, {"Log", log}};
  }
  if (auto colon = s.restart_policy.find(':'); colon != std::string::npos)
    j["HostConfig"]["RestartPolicy"]["MaximumRetryCount"] = std::atoi(s.restart_policy.c_str() + colon + 1);
  else
    j["HostConfig"]["RestartPolicy"]["MaximumRetryCount"] = 0;
  return j;
}

// Bytes under dir as docker counts a container's size: regular files and
// symlinks, each inode once, directories not at all.
int64_t tree_size(const std::string& dir) {
  int64_t total = 0;
  std::set<std::pair<dev_t, ino_t>> seen;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || S_ISDIR(st.st_mode) || st.st_size == 0) continue;
    if (seen.insert({st.st_dev, st.st_ino}).second) total += st.st_size;
  }
  return total;
}

// `ps --format 'table ...'`: the header is the template rendered over
// docker's column titles.
std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> cells;
  size_t start = 0;
  for (;;) {
    size_t tab = line.find('\t', start);
    cells.push_back(line.substr(start, tab - start));
    if (tab == std::string::npos) return cells;
    start = tab + 1;
  }
}
std::vector<std::string> ps_template_header(const std::string& tmpl) {
  nlohmann::json titles = {{"ID", "CONTAINER ID"}, {"Image", "IMAGE"},    {"Command", "COMMAND"},
                           {"CreatedAt", "CREATED AT"}, {"RunningFor", "CREATED"}, {"State", "STATE"},
                           {"Status", "STATUS"},   {"Ports", "PORTS"},    {"Names", "NAMES"},
                           {"Labels", "LABELS"},   {"Size", "SIZE"}};
  return split_tabs(render_template(tmpl, titles));
}

void print_log_entry(const runtime::LogEntry& e, bool timestamps) {
  std::ostream& os = e.stream == "stderr" ? std::cerr : std::cout;
  if (timestamps) os << e.time << " ";
  os << e.log;
}

}  // namespace

static void register_container_commands(CLI::App& app, GlobalOptions& global) {
  // run / create
  for (bool is_run : {true, false}) {
    auto* cmd = add_command(app, is_run ? "run" : "create",
                            is_run ? "Create and run a new container" : "Create a new container");
    auto o = std::make_shared<RunOptions>();
    add_run_flags(cmd, *o, is_run);
    cmd->callback([cmd, o, is_run, &global] {
      Runtime rt = runtime_for(global);
      if (is_run) runtime::parse_detach_keys(o->detach_keys);  // a bad one fails before anything is made
      if (is_run) check_tty_input(o->interactive && !o->detach, o->tty);
      ContainerSpec spec;
      Container c;
      as_daemon_error([&] {
        spec = spec_from(*o, cmd->remaining(), global, is_run);
        c = create_with_network(rt, spec, o->net);
        // The container holds its image from now on; without the hold, no container.
        if (auto it = spec.annotations.find(reconciler::kImageIdAnnotation); it != spec.annotations.end()) {
          try {
            reconciler::hold_image(global.root, it->second, c.id);
          } catch (const Error&) {
            try {
              rt.remove(c.id, true, true);
              release_network(rt, c.id);
            } catch (const Error&) {
            }
            throw;
          }
        }
      });
      if (!is_run) {
        std::cout << c.id << "\n";
        return;
      }
      runtime::Attach attach;
      attach.attach = !o->detach;
      attach.stdin = o->interactive && !o->detach;
      attach.detach_keys = o->detach_keys;
      attach.sig_proxy = o->sig_proxy;
      bool detached = false;
      attach.detached = &detached;
      int code = 0;
      try {
        std::unique_ptr<RawTerminal> raw;
        if (attach.attach && o->tty && o->interactive) raw = std::make_unique<RawTerminal>();
        ensure_supervisor_for(global, c);
        code = rt.start(c.id, attach);
      } catch (const Error& e) {
        if (o->rm) {
          try {
            rt.remove(c.id, true, true);
            release_network(rt, c.id);
            reconciler::release_image(global.root, c.id);
          } catch (const Error&) {
          }
        }
        if (e.exit_code() == 1) throw Error(e.what(), 0, 125);
        throw;
      }
      if (o->detach) {
        std::cout << c.id << "\n";
        return;
      }
      // --rm: the monitor has removed the container by now; drop its hold.
      if (o->rm && !path_exists(c.dir)) {
        try {
          release_network(rt, c.id);
          reconciler::release_image(global.root, c.id);
        } catch (const Error&) {
        }
      }
      exit_with(code);
    });
  }

  auto* start = add_command(app, "start", "Start one or more stopped containers");
  auto start_refs = std::make_shared<std::vector<std::string>>();
  auto start_attach = std::make_shared<bool>(false);
  auto start_stdin = std::make_shared<bool>(false);
  auto start_keys = std::make_shared<std::string>();
  start->add_option("CONTAINER", *start_refs, "Containers")->required();
  start->add_flag("-a,--attach", *start_attach, "Attach STDOUT/STDERR and forward signals");
  start->add_flag("-i,--interactive", *start_stdin, "Attach container's STDIN");
  start->add_option("--detach-keys", *start_keys, "Override the key sequence for detaching a container");
  start->callback([start_refs, start_attach, start_stdin, start_keys, &global] {
    Runtime rt = runtime_for(global);
    // docker: -a streams the output and returns the exit code; -i also
    // feeds the caller's stdin (if the container was made with -i).
    if (*start_attach || *start_stdin) {
      if (start_refs->size() != 1) throw UsageError("you cannot start and attach multiple containers at once");
      runtime::parse_detach_keys(*start_keys);
      Container c = rt.get(start_refs->front());
      if (c.state.status == runtime::Status::Running || c.state.status == runtime::Status::Paused) {
        // docker attaches to a container that is already running.
        runtime::AttachOptions ao;
        ao.stdin = *start_stdin;
        ao.detach_keys = *start_keys;
        bool detached = false;
        int code = 0;
        {
          std::unique_ptr<RawTerminal> raw;
          if (ao.stdin && c.spec.process.tty && c.spec.process.open_stdin) raw = std::make_unique<RawTerminal>();
          code = rt.attach(c.id, ao, &detached);
        }
        exit_with(detached ? 0 : code);
      }
      ensure_supervisor_for(global, c);
      runtime::Attach attach;
      attach.attach = true;
      attach.stdin = *start_stdin && c.spec.process.open_stdin;
      attach.detach_keys = *start_keys;
      bool detached = false;
      attach.detached = &detached;
      int code = 0;
      {
        std::unique_ptr<RawTerminal> raw;
        if (attach.stdin && c.spec.process.tty) raw = std::make_unique<RawTerminal>();
        code = rt.start(c.id, attach);
      }
      exit_with(detached ? 0 : code);
    }
    for_each_container(*start_refs, [&](const std::string& r) {
      ensure_supervisor_for(global, rt.get(r));
      rt.start(r);
    });
  });

  auto* stop = add_command(app, "stop", "Stop one or more running containers");
  auto stop_refs = std::make_shared<std::vector<std::string>>();
  auto stop_time = std::make_shared<int>(10);
  auto stop_signal = std::make_shared<std::string>();
  stop->add_option("CONTAINER", *stop_refs, "Containers")->required();
  stop->add_option("-t,--time", *stop_time, "Seconds to wait before killing the container");
  stop->add_option("-s,--signal", *stop_signal, "Signal to send to the container");
  stop->callback([stop_refs, stop_time, stop_signal, &global] {
    Runtime rt = runtime_for(global);
    for_each_container(*stop_refs, [&](const std::string& r) {
      // The container's --stop-signal unless -s says otherwise.
      int sig = parse_signal(stop_signal->empty() ? rt.get(r).spec.stop_signal : *stop_signal);
      rt.stop(r, *stop_time, sig);
    });
  });

  auto* restart = add_command(app, "restart", "Restart one or more containers");
  auto restart_refs = std::make_shared<std::vector<std::string>>();
  auto restart_time = std::make_shared<int>(10);
  restart->add_option("CONTAINER", *restart_refs, "Containers")->required();
  restart->add_option("-t,--time", *restart_time, "Seconds to wait before killing the container");
  restart->callback([restart_refs, restart_time, &global] {
    Runtime rt = runtime_for(global);
    for_each_container(*restart_refs, [&](const std::string& r) {
      rt.stop(r, *restart_time, parse_signal(rt.get(r).spec.stop_signal));
      rt.start(r);
    });
  });

  auto* rename = add_command(app, "rename", "Rename a container");
  auto rename_args = std::make_shared<std::vector<std::string>>();
  rename->add_option("CONTAINER NEW_NAME", *rename_args, "Container and its new name")->expected(2)->required();
  rename->callback([rename_args, &global] {
    Runtime rt = runtime_for(global);
    rt.rename((*rename_args)[0], (*rename_args)[1]);
  });

  auto* kill = add_command(app, "kill", "Kill one or more running containers");
  auto kill_refs = std::make_shared<std::vector<std::string>>();
  auto kill_signal = std::make_shared<std::string>("KILL");
  kill->add_option("CONTAINER", *kill_refs, "Containers")->required();
  kill->add_option("-s,--signal", *kill_signal, "Signal to send to the container");
  kill->callback([kill_refs, kill_signal, &global] {
    Runtime rt = runtime_for(global);
    int sig = parse_signal(*kill_signal);
    for_each_container(*kill_refs, [&](const std::string& r) { rt.kill(r, sig); });
  });

  auto* rm = add_command(app, "rm", "Remove one or more containers");
  auto rm_refs = std::make_shared<std::vector<std::string>>();
  auto rm_force = std::make_shared<bool>(false), rm_volumes = std::make_shared<bool>(false);
  rm->add_option("CONTAINER", *rm_refs, "Containers")->required();
  rm->add_flag("-f,--force", *rm_force, "Force the removal of a running container (uses SIGKILL)");
  rm->add_flag("-v,--volumes", *rm_volumes, "Remove anonymous volumes associated with the container");
  rm->callback([rm_refs, rm_force, rm_volumes, &global] {
    Runtime rt = runtime_for(global);
    for_each_container(*rm_refs, [&](const std::string& r) {
      std::string id = r;
      try {
        id = rt.get(r).id;
      } catch (const Error&) {
      }
      rt.remove(r, *rm_force, *rm_volumes);
      release_network(rt, id);
      // Left behind if this fails: reconciler::sync_image_holds() drops it later.
      try {
        reconciler::release_image(global.root, id);
      } catch (const Error& e) {
        std::cerr << "Warning: " << r << ": cannot release its image: " << e.what() << "\n";
      }
    });
  });

  for (bool pausing : {true, false}) {
    auto* cmd = add_command(app, pausing ? "pause" : "unpause",
                            pausing ? "Pause all processes within one or more containers"
                                    : "Unpause all processes within one or more containers");
    auto refs = std::make_shared<std::vector<std::string>>();
    cmd->add_option("CONTAINER", *refs, "Containers")->required();
    cmd->callback([refs, pausing, &global] {
      Runtime rt = runtime_for(global);
      for_each_container(*refs, [&](const std::string& r) { pausing ? rt.pause(r) : rt.unpause(r); });
    });
  }

  auto* wait = add_command(app, "wait", "Block until one or more containers stop, then print their exit codes");
  auto wait_refs = std::make_shared<std::vector<std::string>>();
  wait->add_option("CONTAINER", *wait_refs, "Containers")->required();
  wait->callback([wait_refs, &global] {
    Runtime rt = runtime_for(global);
    for (auto& r : *wait_refs) std::cout << rt.wait(r) << std::endl;
  });

  auto* ps = add_command(app, "ps", "List containers");
  auto ps_all = std::make_shared<bool>(false), ps_quiet = std::make_shared<bool>(false),
       ps_notrunc = std::make_shared<bool>(false), ps_size = std::make_shared<bool>(false);
  auto ps_filters = std::make_shared<std::vector<std::string>>();
  auto ps_format = std::make_shared<std::string>();
  ps->add_flag("-a,--all", *ps_all, "Show all containers (default shows just running)");
  ps->add_flag("-q,--quiet", *ps_quiet, "Only display container IDs");
  ps->add_flag("--no-trunc", *ps_notrunc, "Don't truncate output");
  ps->add_flag("-s,--size", *ps_size, "Display total file sizes");
  ps->add_option("-f,--filter", *ps_filters, "Filter output (name=, id=, status=, label=, ancestor=)")
      ->allow_extra_args(false);
  ps->add_option("--format", *ps_format, "Format the output: table, json, or a Go template ('table TEMPLATE' for a table)");
  ps->callback([ps_all, ps_quiet, ps_notrunc, ps_size, ps_filters, ps_format, &global] {
    const std::string& format = *ps_format;
    bool as_json = format == "json" || format == "{{json .}}";
    bool table_template = format.rfind("table ", 0) == 0;
    bool custom = !as_json && !format.empty() && format != "table";
    std::string tmpl = table_template ? format.substr(6) : format;
    // docker: a template that shows .Size computes it without -s.
    bool with_size = *ps_size || (custom && tmpl.find(".Size") != std::string::npos);
    // Filters: the same key ORs, different keys AND, as docker's.
    std::map<std::string, std::vector<std::string>> filters;
    for (auto& f : *ps_filters) {
      auto eq = f.find('=');
      std::string key = f.substr(0, eq), value = eq == std::string::npos ? "" : f.substr(eq + 1);
      if (key != "name" && key != "id" && key != "status" && key != "label" && key != "ancestor")
        throw UsageError("invalid filter '" + key + "'");
      filters[key].push_back(value);
    }
    auto matches = [&](const Container& c) {
      for (auto& [key, values] : filters) {
        bool any = false;
        for (auto& v : values) {
          if (key == "name") any |= c.spec.name.find(v) != std::string::npos;
          else if (key == "id") any |= c.id.rfind(v, 0) == 0;
          else if (key == "status") any |= v == runtime::to_string(c.state.status);
          else if (key == "ancestor") any |= v == c.spec.image;
          else if (key == "label") {
            auto eq = v.find('=');
            auto it = c.spec.labels.find(v.substr(0, eq));
            any |= it != c.spec.labels.end() && (eq == std::string::npos || it->second == v.substr(eq + 1));
          }
        }
        if (!any) return false;
      }
      return true;
    };
    bool status_filter = filters.count("status") > 0;
    Runtime rt = runtime_for(global);
    std::vector<std::vector<std::string>> rows;
    rows.push_back({"CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"});
    if (with_size && !custom) rows[0].push_back("SIZE");
    if (table_template) rows[0] = ps_template_header(tmpl);
    std::optional<std::vector<net::NetworkRecord>> networks;  // read once, for the first PORTS shown
    auto ports = [&](const runtime::Container& c) {
      if (!networks) networks = all_networks(rt);
      return ports_text(*networks, c);
    };
    for (auto& c : rt.list()) {
      bool running = c.state.status == Status::Running || c.state.status == Status::Paused;
      if (!*ps_all && !running && !status_filter) continue;
      if (!matches(c)) continue;
      std::string id = *ps_notrunc ? c.id : c.id.substr(0, 12);
      if (*ps_quiet) {
        std::cout << id << "\n";
        continue;
      }
      std::string cmd = quote_command(c.spec.process.args);
      if (!*ps_notrunc && !as_json && cmd.size() > 20) cmd = cmd.substr(0, 19) + "…";
      std::string created = human_duration(now_epoch_seconds() - rfc3339_seconds(c.state.created_at));
      std::string size = "0B";
      if (with_size) {
        // docker's SizeRw (the upper dir) and SizeRootFs (image + upper).
        int64_t rw = tree_size(c.dir + "/upper"), all = rw;
        for (auto& d : c.spec.lower_dirs) all += tree_size(d);
        size = human_size(static_cast<double>(rw), 3) + " (virtual " + human_size(static_cast<double>(all), 3) + ")";
      }
      if (as_json || custom) {
        std::string labels;
        for (auto& [k, v] : c.spec.labels) labels += (labels.empty() ? "" : ",") + k + "=" + v;
        nlohmann::json j = {{"ID", id},          {"Image", c.spec.image},
                            {"Command", "\"" + cmd + "\""},
                            {"CreatedAt", c.state.created_at},
                            {"RunningFor", created + " ago"},
                            {"State", runtime::to_string(c.state.status)},
                            {"Status", status_text(c)},
                            {"Ports", ports(c)}, {"Names", c.spec.name},
                            {"Labels", labels},
                            {"Size", size}};
        if (as_json) {
          std::cout << j.dump() << "\n";
        } else if (table_template) {
          rows.push_back(split_tabs(render_template(tmpl, j)));
        } else {
          std::cout << render_template(tmpl, j) << "\n";
        }
        continue;
      }
      rows.push_back({id, c.spec.image, "\"" + cmd + "\"", created + " ago", status_text(c), ports(c), c.spec.name});
      if (with_size) rows.back().push_back(size);
    }
    if (*ps_quiet || as_json || (custom && !table_template)) return;
    print_table(rows);
  });

  auto* inspect = add_command(app, "inspect", "Display detailed information on one or more containers");
  auto inspect_refs = std::make_shared<std::vector<std::string>>();
  auto inspect_format = std::make_shared<std::string>();
  inspect->add_option("CONTAINER", *inspect_refs, "Containers")->required();
  inspect->add_option("-f,--format", *inspect_format, "Format the output using a Go-like template ({{.A.B}})");
  inspect->callback([inspect_refs, inspect_format, &global] {
    Runtime rt = runtime_for(global);
    nlohmann::json all = nlohmann::json::array();
    int rc = 0;
    for (auto& r : *inspect_refs) {
      try {
        auto j = inspect_json(rt, rt.get(r));
        if (!inspect_format->empty()) std::cout << render_template(*inspect_format, j) << "\n";
        all.push_back(j);
      } catch (const Error& e) {
        std::cerr << "Error: " << e.what() << "\n";
        rc = 1;
      }
    }
    if (inspect_format->empty()) std::cout << all.dump(4) << "\n";
    if (rc) exit_with(rc);
  });

  auto* logs = add_command(app, "logs", "Fetch the logs of a container");
  auto logs_ref = std::make_shared<std::string>();
  auto logs_follow = std::make_shared<bool>(false), logs_ts = std::make_shared<bool>(false);
  auto logs_tail = std::make_shared<std::string>("all");
  logs->add_option("CONTAINER", *logs_ref, "Container")->required();
  logs->add_flag("-f,--follow", *logs_follow, "Follow log output");
  logs->add_flag("-t,--timestamps", *logs_ts, "Show timestamps");
  logs->add_option("-n,--tail", *logs_tail, "Number of lines to show from the end of the logs");
  auto logs_since = std::make_shared<std::string>(), logs_until = std::make_shared<std::string>();
  logs->add_option("--since", *logs_since, "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)");
  logs->add_option("--until", *logs_until, "Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)");
  logs->callback([logs_ref, logs_follow, logs_ts, logs_tail, logs_since, logs_until, &global] {
    // docker: --tail picks the last lines first, then --since/--until filter them.
    double since = parse_docker_time("--since", *logs_since), until = parse_docker_time("--until", *logs_until);
    auto in_window = [&](const runtime::LogEntry& e) {
      if (since == 0 && until == 0) return true;
      double t = parse_docker_time("log time", e.time);
      return (since == 0 || t >= since) && (until == 0 || t <= until);
    };
    Runtime rt = runtime_for(global);
    Container c = rt.get(*logs_ref);
    if (c.spec.log.driver == "none")
      throw Error("configured logging driver does not support reading", 0, 1);
    std::string path = rt.log_path(c);
    size_t offset = 0;
    auto entries = runtime::read_json_log(path, c.spec.log.max_file, &offset);
    size_t from = 0;
    if (*logs_tail != "all") {
      long n = std::strtol(logs_tail->c_str(), nullptr, 10);
      if (n >= 0 && static_cast<size_t>(n) < entries.size()) from = entries.size() - static_cast<size_t>(n);
    }
    for (size_t i = from; i < entries.size(); ++i)
      if (in_window(entries[i])) print_log_entry(entries[i], *logs_ts);
    std::cout.flush();
    std::cerr.flush();
    if (!*logs_follow) return;
    // Follow the live file from where the read ended; stop once the
    // container is no longer running and the file is drained.
    for (;;) {
      bool running;
      try {
        auto now = rt.get(c.id).state.status;
        running = now == Status::Running || now == Status::Paused;
      } catch (const Error&) {
        running = false;
      }
      std::string cur;
      if (read_file_if_exists(path, cur)) {
        if (cur.size() < offset) offset = 0;  // rotated
        size_t end = cur.rfind('\n');
        if (end != std::string::npos && end + 1 > offset) {
          std::istringstream in(cur.substr(offset, end + 1 - offset));
          for (std::string line; std::getline(in, line);) {
            runtime::LogEntry e;
            if (runtime::parse_log_line(line, e) && in_window(e)) print_log_entry(e, *logs_ts);
          }
          offset = end + 1;
          std::cout.flush();
          std::cerr.flush();
        }
      }
      if (!running) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });

  auto* exec = add_command(app, "exec", "Execute a command in a running container");
  auto exec_opts = std::make_shared<RunOptions>();
  exec->add_flag("-i,--interactive", exec_opts->interactive, "Keep STDIN open even if not attached");
  exec->add_flag("-t,--tty", exec_opts->tty, "Allocate a pseudo-TTY");
  exec->add_flag("-d,--detach", exec_opts->detach, "Detached mode: run command in the background");
  exec->add_option("-u,--user", exec_opts->user, "Username or UID (format: <name|uid>[:<group|gid>])");
  exec->add_option("-w,--workdir", exec_opts->workdir, "Working directory inside the container");
  exec->add_option("-e,--env", exec_opts->env, "Set environment variables")->allow_extra_args(false);
  exec->prefix_command();
  exec->callback([exec, exec_opts, &global] {
    auto rest = exec->remaining();
    if (rest.size() < 2) throw UsageError("\"exec\" requires at least 2 arguments: CONTAINER COMMAND [ARG...]");
    runtime::ProcessSpec p;
    p.args.assign(rest.begin() + 1, rest.end());
    p.user = exec_opts->user;
    p.cwd = exec_opts->workdir;
    for (auto& e : exec_opts->env) add_env(p.env, e);
    p.tty = exec_opts->tty;
    p.open_stdin = exec_opts->interactive;
    check_tty_input(p.open_stdin && !exec_opts->detach, p.tty);
    Runtime rt = runtime_for(global);
    int code = 0;
    {
      // -it: keystrokes go to the process's pty as they are typed.
      std::unique_ptr<RawTerminal> raw;
      if (p.tty && p.open_stdin && !exec_opts->detach) raw = std::make_unique<RawTerminal>();
      code = rt.exec(rest[0], p, exec_opts->detach);
    }
    exit_with(code);
  });
}

static void register_check_command(CLI::App& app, GlobalOptions&) {
  auto* check = add_command(app, "check", "Check the kernel features berth needs or can use");
  check->callback([] {
    using Level = runtime::CheckItem::Level;
    std::string group;
    bool fatal = false;
    for (auto& item : runtime::check_host()) {
      if (item.group != group) {
        std::cout << (group.empty() ? "" : "\n") << "--- " << item.group << " ---\n";
        group = item.group;
      }
      const char* word = item.level == Level::Ok ? "ok" : item.level == Level::Degraded ? "degraded" : "missing";
      std::cout << item.name << ": " << word;
      if (item.level != Level::Ok && !item.detail.empty())
        std::cout << " (" << (item.required ? "required for " : "without it: no ") << item.detail << ")";
      std::cout << "\n";
      fatal |= item.required && item.level != Level::Ok;
    }
    std::cout << "\n" << (fatal ? "berth cannot run containers on this host\n" : "berth can run containers on this host\n");
    if (fatal) exit_with(1);
  });
}

BERTH_REGISTER_COMMANDS(200, register_container_commands, "run", "create", "start", "stop", "restart", "rename", "kill", "rm", "pause", "unpause", "wait",
                        "ps", "inspect", "logs", "exec");
BERTH_REGISTER_COMMANDS(210, register_check_command, "check");

}  // namespace berth::cli
