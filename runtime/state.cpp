#include "runtime/state.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/fs.h"
#include "base/time.h"
#include "runtime/attach.h"

namespace berth::runtime {

const char* to_string(Status status) {
  switch (status) {
    case Status::Created: return "created";
    case Status::Running: return "running";
    case Status::Paused: return "paused";
    case Status::Restarting: return "restarting";
    case Status::Exited: return "exited";
    case Status::Dead: return "dead";
  }
  return "unknown";
}

}  // namespace berth::runtime

namespace berth::runtime::state {

using nlohmann::json;

std::string container_dir(const Paths& paths, const std::string& id) {
  return paths.root + "/containers/" + id;
}
std::string runtime_dir(const Paths& paths, const std::string& id) {
  return paths.run_root + "/containers/" + id;
}

static void random_bytes(void* buf, size_t n) {
  auto* p = static_cast<unsigned char*>(buf);
  while (n > 0) {
    ssize_t got = ::getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw_errno("getrandom");
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
}

std::string new_id() {
  unsigned char b[32];
  random_bytes(b, sizeof b);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : b) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

std::string random_name() {
  static const char* adjectives[] = {"brave", "calm", "eager", "fancy", "gentle", "happy", "jolly",
                                     "keen", "lucid", "merry", "nimble", "proud", "quiet", "swift"};
  static const char* nouns[] = {"albatross", "beacon", "cutter", "dinghy", "ferry", "galleon", "harbor",
                                "keel", "lighthouse", "mooring", "pier", "quay", "schooner", "wharf"};
  unsigned char b[3];
  random_bytes(b, sizeof b);
  return std::string(adjectives[b[0] % std::size(adjectives)]) + "_" + nouns[b[1] % std::size(nouns)] +
         std::to_string(b[2] % 100);
}

std::string now_rfc3339nano() { return now_rfc3339_nano(); }

static json mount_to_json(const MountSpec& m) {
  json j = {{"type", m.type == MountSpec::Type::Bind ? "bind" : m.type == MountSpec::Type::Tmpfs ? "tmpfs" : "volume"},
            {"source", m.source},
            {"destination", m.destination},
            {"read_only", m.read_only},
            {"options", m.options}};
  if (m.no_copy) j["no_copy"] = true;
  return j;
}

std::string to_json(const ContainerSpec& s) {
  json mounts = json::array();
  for (auto& m : s.mounts) mounts.push_back(mount_to_json(m));
  json rlimits = json::array();
  for (auto& r : s.rlimits) rlimits.push_back({{"name", r.name}, {"soft", r.soft}, {"hard", r.hard}});
  json j = {
      {"name", s.name},
      {"image", s.image},
      {"lower_dirs", s.lower_dirs},
      {"process",
       {{"args", s.process.args},
        {"env", s.process.env},
        {"cwd", s.process.cwd},
        {"user", s.process.user},
        {"tty", s.process.tty},
        {"open_stdin", s.process.open_stdin},
        {"stdin_once", s.process.stdin_once}}},
      {"hostname", s.hostname},
      {"mounts", mounts},
      {"read_only_rootfs", s.read_only_rootfs},
      {"shm_size", s.shm_size},
      {"rlimits", rlimits},
      {"stop_signal", s.stop_signal},
      {"network", s.network == NetworkMode::Host ? "host" : s.network == NetworkMode::Netns ? "netns" : "none"},
      {"netns_path", s.netns_path},
      {"remove_netns", s.remove_netns},
      {"hosts_file", s.hosts_file},
      {"resolv_conf", s.resolv_conf},
      {"limits",
       {{"memory", s.limits.memory_bytes},
        {"memory_swap", s.limits.memory_swap_bytes},
        {"nano_cpus", s.limits.nano_cpus},
        {"cpu_shares", s.limits.cpu_shares},
        {"cpuset_cpus", s.limits.cpuset_cpus},
        {"pids_limit", s.limits.pids_limit}}},
      {"security",
       {{"privileged", s.security.privileged},
        {"cap_add", s.security.cap_add},
        {"cap_drop", s.security.cap_drop},
        {"seccomp_profile", s.security.seccomp_profile},
        {"no_new_privileges", s.security.no_new_privileges}}},
      {"log", {{"driver", s.log.driver}, {"max_size", s.log.max_size}, {"max_file", s.log.max_file}}},
      {"labels", s.labels},
      {"restart_policy", s.restart_policy},
      {"healthcheck",
       {{"test", s.healthcheck.test},
        {"interval_ns", s.healthcheck.interval_ns},
        {"timeout_ns", s.healthcheck.timeout_ns},
        {"start_period_ns", s.healthcheck.start_period_ns},
        {"start_interval_ns", s.healthcheck.start_interval_ns},
        {"retries", s.healthcheck.retries}}},
      {"auto_remove", s.auto_remove},
      {"annotations", s.annotations},
  };
  if (!s.sysctls.empty()) j["sysctls"] = s.sysctls;
  if (s.init) j["init"] = true;
  return j.dump(2);
}

ContainerSpec spec_from_json(const std::string& text) {
  json j = json::parse(text);
  ContainerSpec s;
  s.name = j.value("name", "");
  s.image = j.value("image", "");
  s.lower_dirs = j.value("lower_dirs", std::vector<std::string>{});
  auto& p = j.at("process");
  s.process.args = p.value("args", std::vector<std::string>{});
  s.process.env = p.value("env", std::vector<std::string>{});
  s.process.cwd = p.value("cwd", "/");
  s.process.user = p.value("user", "");
  s.process.tty = p.value("tty", false);
  s.process.open_stdin = p.value("open_stdin", false);
  s.process.stdin_once = p.value("stdin_once", false);
  s.hostname = j.value("hostname", "");
  for (auto& m : j.value("mounts", json::array())) {
    MountSpec ms;
    std::string type = m.value("type", "bind");
    ms.type = type == "tmpfs" ? MountSpec::Type::Tmpfs : type == "volume" ? MountSpec::Type::Volume : MountSpec::Type::Bind;
    ms.no_copy = m.value("no_copy", false);
    ms.source = m.value("source", "");
    ms.destination = m.value("destination", "");
    ms.read_only = m.value("read_only", false);
    ms.options = m.value("options", "");
    s.mounts.push_back(ms);
  }
  s.read_only_rootfs = j.value("read_only_rootfs", false);
  s.shm_size = j.value("shm_size", int64_t{0});
  for (auto& r : j.value("rlimits", json::array()))
    s.rlimits.push_back({r.value("name", ""), r.value("soft", uint64_t{0}), r.value("hard", uint64_t{0})});
  s.stop_signal = j.value("stop_signal", "SIGTERM");
  std::string network = j.value("network", "none");
  s.network = network == "host" ? NetworkMode::Host : network == "netns" ? NetworkMode::Netns : NetworkMode::None;
  s.netns_path = j.value("netns_path", "");
  s.remove_netns = j.value("remove_netns", false);
  s.hosts_file = j.value("hosts_file", "");
  s.resolv_conf = j.value("resolv_conf", "");
  auto l = j.value("limits", json::object());
  s.limits.memory_bytes = l.value("memory", int64_t{0});
  s.limits.memory_swap_bytes = l.value("memory_swap", int64_t{0});
  s.limits.nano_cpus = l.value("nano_cpus", int64_t{0});
  s.limits.cpu_shares = l.value("cpu_shares", int64_t{0});
  s.limits.cpuset_cpus = l.value("cpuset_cpus", "");
  s.limits.pids_limit = l.value("pids_limit", int64_t{0});
  auto sec = j.value("security", json::object());
  s.security.privileged = sec.value("privileged", false);
  s.security.cap_add = sec.value("cap_add", std::vector<std::string>{});
  s.security.cap_drop = sec.value("cap_drop", std::vector<std::string>{});
  s.security.seccomp_profile = sec.value("seccomp_profile", "");
  s.security.no_new_privileges = sec.value("no_new_privileges", false);
  auto lg = j.value("log", json::object());
  s.log.driver = lg.value("driver", "json-file");
  s.log.max_size = lg.value("max_size", int64_t{-1});
  s.log.max_file = lg.value("max_file", 1);
  s.labels = j.value("labels", std::map<std::string, std::string>{});
  s.restart_policy = j.value("restart_policy", "no");
  auto hc = j.value("healthcheck", json::object());
  s.healthcheck.test = hc.value("test", std::vector<std::string>{});
  s.healthcheck.interval_ns = hc.value("interval_ns", int64_t{0});
  s.healthcheck.timeout_ns = hc.value("timeout_ns", int64_t{0});
  s.healthcheck.start_period_ns = hc.value("start_period_ns", int64_t{0});
  s.healthcheck.start_interval_ns = hc.value("start_interval_ns", int64_t{0});
  s.healthcheck.retries = hc.value("retries", 0);
  s.auto_remove = j.value("auto_remove", false);
  s.annotations = j.value("annotations", std::map<std::string, std::string>{});
  s.sysctls = j.value("sysctls", std::map<std::string, std::string>{});
  s.init = j.value("init", false);
  return s;
}

static void write_atomic(const std::string& path, const std::string& data, bool durable) {
  if (durable) return write_file_atomic(path, data, 0600);
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd || ::write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size())) {
      int e = errno;
      ::unlink(tmp.c_str());
      throw_errno("cannot write " + tmp, e);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw_errno("cannot rename " + tmp + " to " + path, e);
  }
}

void save_spec(const std::string& dir, const ContainerSpec& spec, bool durable) {
  write_atomic(dir + "/config.json", to_json(spec), durable);
}

ContainerSpec load_spec(const std::string& dir) {
  try {
    return spec_from_json(read_file(dir + "/config.json"));
  } catch (const json::exception& e) {
    throw Error("corrupt " + dir + "/config.json: " + e.what());
  }
}

static Status status_from(const std::string& s) {
  for (Status st : {Status::Created, Status::Running, Status::Paused, Status::Restarting, Status::Exited,
                    Status::Dead})
    if (s == to_string(st)) return st;
  return Status::Dead;
}

void save_state(const std::string& dir, const ContainerState& st, bool durable) {
  json j = {{"status", to_string(st.status)}, {"exit_code", st.exit_code},   {"oom_killed", st.oom_killed},
            {"error", st.error},              {"created_at", st.created_at}, {"started_at", st.started_at},
            {"finished_at", st.finished_at}, {"manually_stopped", st.manually_stopped},
            {"restart_count", st.restart_count}};
  write_atomic(dir + "/state.json", j.dump(), durable);
}

ContainerState load_state(const std::string& dir) {
  ContainerState st;
  try {
    json j = json::parse(read_file(dir + "/state.json"));
    st.status = status_from(j.value("status", "dead"));
    st.exit_code = j.value("exit_code", 0);
    st.oom_killed = j.value("oom_killed", false);
    st.error = j.value("error", "");
    st.created_at = j.value("created_at", "");
    st.started_at = j.value("started_at", "");
    st.finished_at = j.value("finished_at", "");
    st.manually_stopped = j.value("manually_stopped", false);
    st.restart_count = j.value("restart_count", 0);
  } catch (const json::exception& e) {
    throw Error("corrupt " + dir + "/state.json: " + e.what());
  }
  st.health = load_health(dir);
  return st;
}

void save_health(const std::string& dir, const HealthState& h) {
  json log = json::array();
  for (auto& p : h.log)
    log.push_back({{"start", p.start}, {"end", p.end}, {"exit_code", p.exit_code}, {"output", p.output}});
  json j = {{"status", h.status}, {"failing_streak", h.failing_streak}, {"log", log}};
  write_atomic(dir + "/health.json", j.dump(), false);
}

HealthState load_health(const std::string& dir) {
  HealthState h;
  std::string text;
  if (!read_file_if_exists(dir + "/health.json", text)) return h;
  try {
    json j = json::parse(text);
    h.status = j.value("status", "");
    h.failing_streak = j.value("failing_streak", 0);
    for (auto& p : j.value("log", json::array()))
      h.log.push_back({p.value("start", ""), p.value("end", ""), p.value("exit_code", 0), p.value("output", "")});
  } catch (const json::exception&) {
    // A torn or foreign file: report no health rather than fail every reader.
  }
  return h;
}

void save_runtime(const std::string& run_dir, const RuntimeRecord& r) {
  make_dirs(run_dir, 0700);
  json j = {{"pid", r.pid},
            {"pid_start", r.pid_start},
            {"monitor_pid", r.monitor_pid},
            {"monitor_start", r.monitor_start}};
  write_atomic(run_dir + "/runtime.json", j.dump(), false);
}

void remove_runtime(const std::string& run_dir) {
  ::unlink((run_dir + "/" + attach_proto::kSocketName).c_str());
  ::unlink((run_dir + "/runtime.json").c_str());
  ::rmdir(run_dir.c_str());
}

std::optional<RuntimeRecord> load_runtime(const std::string& run_dir) {
  std::string text;
  if (!read_file_if_exists(run_dir + "/runtime.json", text)) return std::nullopt;
  try {
    json j = json::parse(text);
    RuntimeRecord r;
    r.pid = j.value("pid", 0);
    r.pid_start = j.value("pid_start", 0ULL);
    r.monitor_pid = j.value("monitor_pid", 0);
    r.monitor_start = j.value("monitor_start", 0ULL);
    return r;
  } catch (const json::exception&) {
    return std::nullopt;
  }
}

// Reads "pid (comm) S ... starttime" — comm may hold spaces and parens,
// so fields are counted from the last ')'.
static bool read_stat(pid_t pid, char& state, unsigned long long& start) {
  std::string text;
  try {
    if (!read_file_if_exists("/proc/" + std::to_string(pid) + "/stat", text)) return false;
  } catch (const Error&) {
    return false;
  }
  auto rp = text.rfind(')');
  if (rp == std::string::npos || rp + 2 >= text.size()) return false;
  state = text[rp + 2];
  // After ')': field 3 is state; starttime is field 22.
  size_t pos = rp + 2;
  for (int field = 3; field < 22; ++field) {
    pos = text.find(' ', pos);
    if (pos == std::string::npos) return false;
    ++pos;
  }
  start = std::strtoull(text.c_str() + pos, nullptr, 10);
  return true;
}

unsigned long long process_start_time(pid_t pid) {
  char st;
  unsigned long long start;
  if (pid <= 0 || !read_stat(pid, st, start)) return 0;
  return start;
}

bool process_matches(pid_t pid, unsigned long long start) {
  char st;
  unsigned long long s;
  if (pid <= 0 || !read_stat(pid, st, s)) return false;
  return s == start && st != 'Z' && st != 'X';
}

std::vector<std::string> list_ids(const Paths& paths) {
  std::vector<std::string> out;
  DIR* d = ::opendir((paths.root + "/containers").c_str());
  if (!d) return out;
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.size() == 64 && n.find_first_not_of("0123456789abcdef") == std::string::npos) out.push_back(n);
  }
  ::closedir(d);
  return out;
}

}  // namespace berth::runtime::state
