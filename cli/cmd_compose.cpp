// Compose project commands, driven by the reconciler: `berth up`/`down`
// and `berth compose <verb>` (up, down, ps, logs, start, stop, restart,
// kill, rm, pause, unpause, exec), and `berth ls` (projects). `berth ps`,
// `logs`, `exec`, ... stay docker's container commands.
//
// up: desired state (spec) + one observed snapshot (reconciler/observe.h)
// -> a pure plan -> the executor over the real driver (reconciler/driver.h),
// printing compose's progress lines ("Container app-web-1  Started") on
// stderr. The other verbs select the project's containers by their
// com.docker.compose.* labels, so they work without the compose file when
// -p names the project.
#include <dirent.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "base/human.h"
#include "base/time.h"
#include "base/fs.h"
#include "cli/cli.h"
#include "cli/raw_terminal.h"
#include "cli/table.h"
#include "cli/project_flags.h"
#include "cli/registry_cli.h"
#include "images/images.h"
#include "net/network.h"
#include "net/ports.h"
#include "reconciler/container_network.h"
#include "reconciler/driver.h"
#include "reconciler/image_rootfs.h"
#include "reconciler/observe.h"
#include "reconciler/process_driver.h"
#include "reconciler/reconciler.h"
#include "runtime/logfile.h"
#include "supervisor/client.h"

namespace berth::cli {

namespace {

namespace label = reconciler::label;

// Operations in flight at once in up/down (--parallel, else COMPOSE_PARALLEL_LIMIT, overrides).
constexpr std::size_t kDefaultParallel = 8;
using nlohmann::json;

runtime::Paths paths_of(const GlobalOptions& g) { return runtime::Paths{g.root, g.run_root, {}}; }

// -p/-f given after `compose` and after the verb: the verb's win.
ProjectFlags merged(const ProjectFlags& outer, const ProjectFlags& inner) {
  ProjectFlags f = inner;
  if (f.files.empty()) f.files = outer.files;
  if (f.project_name.empty()) f.project_name = outer.project_name;
  if (f.project_directory.empty()) f.project_directory = outer.project_directory;
  if (f.env_files.empty()) f.env_files = outer.env_files;
  if (f.profiles.empty()) f.profiles = outer.profiles;
  if (f.parallel == 0) f.parallel = outer.parallel;
  return f;
}

// The project name: -p when given (no compose file needed), else the loaded project's.
std::string project_name(const ProjectFlags& flags) {
  if (!flags.project_name.empty()) return flags.project_name;
  return load_project_or_exit(flags).name;
}

std::map<std::string, std::int64_t> parse_scale(const std::vector<std::string>& items) {
  std::map<std::string, std::int64_t> scale;
  for (const auto& item : items) {
    std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw UsageError("--scale: want SERVICE=NUM, got \"" + item + "\"");
    try {
      std::size_t used = 0;
      long long n = std::stoll(item.substr(eq + 1), &used);
      if (used != item.size() - eq - 1) throw std::invalid_argument("trailing");
      scale[item.substr(0, eq)] = n;
    } catch (const std::exception&) {
      throw UsageError("--scale: \"" + item.substr(eq + 1) + "\" is not a number");
    }
  }
  return scale;
}

std::optional<int> given(int timeout) { return timeout >= 0 ? std::optional<int>(timeout) : std::nullopt; }

void print_event(const reconciler::Event& e) { std::cerr << e.str() << "\n" << std::flush; }

// The project's containers (not one-off ones), oldest first, optionally only
// those of `services`.
std::vector<runtime::Container> project_containers(const runtime::Runtime& rt, const std::string& project,
                                                   const std::vector<std::string>& services = {}) {
  std::vector<runtime::Container> out;
  for (auto& c : rt.list()) {
    auto p = c.spec.labels.find(label::project);
    if (p == c.spec.labels.end() || p->second != project) continue;
    auto oneoff = c.spec.labels.find(label::oneoff);
    if (oneoff != c.spec.labels.end() && oneoff->second == "True") continue;
    if (!services.empty()) {
      auto s = c.spec.labels.find(label::service);
      if (s == c.spec.labels.end() || std::find(services.begin(), services.end(), s->second) == services.end())
        continue;
    }
    out.push_back(std::move(c));
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::string label_of(const runtime::Container& c, const char* key) {
  auto it = c.spec.labels.find(key);
  return it == c.spec.labels.end() ? std::string() : it->second;
}

int number_of(const runtime::Container& c) { return std::atoi(label_of(c, label::container_number).c_str()); }

// "web-1": how compose names a container in log prefixes.
std::string short_name(const runtime::Container& c) {
  std::string service = label_of(c, label::service);
  if (service.empty()) return c.spec.name;
  return service + "-" + std::to_string(number_of(c));
}

// ------------------------------------------------------------------ time

std::string ago(const std::string& t) { return human_duration(now_epoch_seconds() - rfc3339_seconds(t)) + " ago"; }

// compose's STATUS column: "Up 3 seconds (healthy)", "Exited (0) 2 seconds ago".
std::string status_text(const runtime::Container& c) {
  const auto& st = c.state;
  std::string health = st.health.status.empty() ? "" : " (" + (st.health.status == "starting" ? std::string("health: starting") : st.health.status) + ")";
  switch (st.status) {
    case runtime::Status::Created: return "Created";
    case runtime::Status::Running: return "Up " + human_duration(now_epoch_seconds() - rfc3339_seconds(st.started_at)) + health;
    case runtime::Status::Paused: return "Up " + human_duration(now_epoch_seconds() - rfc3339_seconds(st.started_at)) + " (Paused)";
    case runtime::Status::Restarting: return "Restarting (" + std::to_string(st.exit_code) + ")";
    case runtime::Status::Exited:
      return "Exited (" + std::to_string(st.exit_code) + ") " + ago(st.finished_at);
    case runtime::Status::Dead: return "Dead";
  }
  return "";
}

std::string state_word(const runtime::Container& c) { return runtime::to_string(c.state.status); }

// Every network in the store, read once for all the containers ps shows
// (none when there is no store yet).
std::vector<net::NetworkRecord> all_networks(const std::string& root) {
  try {
    net::NetworkManager mgr(root);
    if (path_exists(mgr.store().dir())) return mgr.list();
  } catch (const Error&) {
  }
  return {};
}

std::string ports_text(const std::vector<net::NetworkRecord>& networks, const runtime::Container& c) {
  std::string out;
  if (c.state.status != runtime::Status::Running && c.state.status != runtime::Status::Paused) return out;
  try {
    for (const auto& j : reconciler::container_endpoints(networks, c))
      for (const auto& p : j.endpoint.ports)
        out += (out.empty() ? "" : ", ") +
               net::format_port(p.host_ip.empty() ? "0.0.0.0" : p.host_ip, p.host_port, p.container_port, p.protocol);
  } catch (const Error&) {
  }
  return out;
}

// compose's ps --format json "Publishers".
json publishers_json(const std::vector<net::NetworkRecord>& networks, const runtime::Container& c) {
  json out = json::array();
  if (c.state.status != runtime::Status::Running && c.state.status != runtime::Status::Paused) return out;
  try {
    for (const auto& j : reconciler::container_endpoints(networks, c))
      for (const auto& p : j.endpoint.ports)
        out.push_back({{"URL", p.host_ip.empty() ? "0.0.0.0" : p.host_ip},
                       {"TargetPort", p.container_port},
                       {"PublishedPort", p.host_port},
                       {"Protocol", p.protocol}});
  } catch (const Error&) {
  }
  return out;
}

// ------------------------------------------------------------------ logs

std::atomic<bool> g_interrupted{false};
std::atomic<int> g_interrupts{0};
extern "C" void on_interrupt(int) {
  g_interrupted = true;
  g_interrupts.fetch_add(1);
}

struct InterruptGuard {
  struct sigaction old_int {}, old_term {};
  InterruptGuard() {
    g_interrupted = false;
    g_interrupts = 0;
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
  }
  ~InterruptGuard() {
    sigaction(SIGINT, &old_int, nullptr);
    sigaction(SIGTERM, &old_term, nullptr);
  }
};

// --since/--until, as docker accepts them (base/time.h).
double parse_log_time(const std::string& flag, const std::string& v) { return parse_docker_time(flag, v); }

struct LogOptions {
  bool follow = false;
  bool timestamps = false;
  bool no_prefix = false;
  bool color = false;  // ANSI colours on the prefixes (only on a tty)
  std::string tail = "all";
  double since = 0, until = 0;  // seconds since the epoch; 0 = unbounded
};

// compose's prefix colours, in the order services first appear.
const char* const kColours[] = {"36", "33", "32", "35", "34", "96", "93", "92", "95", "94"};

// Prints the logs of a set of containers with "web-1  | " prefixes, each
// poll() printing what was logged since the previous one, merged in time
// order. The first poll of a container honours --tail/--since.
class LogPrinter {
 public:
  LogPrinter(const runtime::Runtime& rt, LogOptions o) : rt_(rt), o_(std::move(o)) {}

  std::string prefix(const std::string& name) {
    if (o_.no_prefix) return "";
    std::string p = name;
    if (p.size() < width_) p += std::string(width_ - p.size(), ' ');
    p += "  | ";
    if (!o_.color) return p;
    auto [it, added] = colour_.emplace(name, kColours[colour_.size() % std::size(kColours)]);
    return "\033[" + it->second + "m" + p + "\033[0m";
  }

  void poll(const std::vector<runtime::Container>& containers) {
    std::vector<std::pair<runtime::LogEntry, std::string>> lines;
    for (const auto& c : containers) width_ = std::max(width_, short_name(c).size());
    for (const auto& c : containers) {
      if (c.spec.log.driver == "none") continue;
      auto [it, added] = sources_.emplace(c.id, Source{short_name(c), rt_.log_path(c)});
      Source& s = it->second;
      if (added) {
        std::size_t end = 0;
        auto entries = runtime::read_json_log(s.path, c.spec.log.max_file, &end);
        s.offset = end;
        std::vector<runtime::LogEntry> kept;
        for (auto& e : entries)
          if (wanted(e)) kept.push_back(std::move(e));
        std::size_t from = 0;
        if (o_.tail != "all") {
          char* rest = nullptr;
          long n = std::strtol(o_.tail.c_str(), &rest, 10);
          if (rest && *rest == '\0' && n >= 0 && static_cast<std::size_t>(n) < kept.size())
            from = kept.size() - static_cast<std::size_t>(n);
        }
        for (std::size_t i = from; i < kept.size(); ++i) lines.emplace_back(kept[i], s.name);
        continue;
      }
      std::string cur;
      if (!read_file_if_exists(s.path, cur)) continue;
      if (cur.size() < s.offset) s.offset = 0;  // rotated
      std::size_t end = cur.rfind('\n');
      if (end == std::string::npos || end + 1 <= s.offset) continue;
      std::istringstream in(cur.substr(s.offset, end + 1 - s.offset));
      for (std::string line; std::getline(in, line);) {
        runtime::LogEntry e;
        if (runtime::parse_log_line(line, e) && wanted(e)) lines.emplace_back(e, s.name);
      }
      s.offset = end + 1;
    }
    std::stable_sort(lines.begin(), lines.end(),
                     [](const auto& a, const auto& b) { return a.first.time < b.first.time; });
    std::string out;
    for (auto& [e, name] : lines) {
      std::string text = e.log;
      if (!text.empty() && text.back() != '\n') text += '\n';
      out += prefix(name) + (o_.timestamps ? e.time + " " : "") + text;
    }
    if (!out.empty()) std::cout << out << std::flush;
  }

 private:
  bool wanted(const runtime::LogEntry& e) const {
    if (o_.since <= 0 && o_.until <= 0) return true;
    double t = rfc3339_seconds(e.time);
    return (o_.since <= 0 || t >= o_.since) && (o_.until <= 0 || t < o_.until);
  }

  struct Source {
    std::string name;
    std::string path;
    std::size_t offset = 0;
  };
  const runtime::Runtime& rt_;
  LogOptions o_;
  std::map<std::string, Source> sources_;  // by container id
  std::map<std::string, std::string> colour_;
  std::size_t width_ = 0;
};

// Follows the logs of a project's containers (picked again every round, so
// a follow sees containers created later). Returns when not following, on
// ctrl-c, or when `until` says so.
void stream_logs(const runtime::Runtime& rt, const std::string& project, const std::vector<std::string>& services,
                 const LogOptions& o, const std::function<bool()>& until = {}) {
  LogPrinter printer(rt, o);
  for (;;) {
    printer.poll(project_containers(rt, project, services));
    if (!o.follow || g_interrupted) return;
    if (until && until()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (g_interrupted) return;
  }
}

// ------------------------------------------------------------------ up / down

struct UpFlags {
  ProjectFlags project;
  std::vector<std::string> services;
  std::vector<std::string> scale;  // svc=N, repeatable
  bool dry_run = false;
  bool detach = false;
  bool force_recreate = false;
  bool no_recreate = false;
  bool remove_orphans = false;
  bool no_deps = false;
  bool wait = false;
  int wait_timeout = 0;  // seconds; 0 = no limit beyond the driver's
  int timeout = -1;      // -t; -1 = not given
  bool abort_on_exit = false;
  std::string exit_code_from;
  bool no_color = false, no_log_prefix = false;
  std::string pull;  // --pull: always|missing|never|build ("" = each service's pull_policy)
};

struct DownFlags {
  ProjectFlags project;
  std::string rmi;  // "", local, all
  bool dry_run = false;
  bool volumes = false;
  bool remove_orphans = false;
  int timeout = -1;
};

// Waits (--wait) until every container of the services runs, and is
// healthy when it has a healthcheck; fails on one that exits or is unhealthy.
void wait_running(const runtime::Paths& paths, const std::string& project, const std::vector<std::string>& services,
                  int timeout_s) {
  runtime::Runtime rt(paths);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s > 0 ? timeout_s : 3600);
  for (;;) {
    bool all = true;
    for (const auto& c : project_containers(rt, project, services)) {
      const auto& st = c.state;
      if (st.status == runtime::Status::Exited || st.status == runtime::Status::Dead)
        throw Error("container " + c.spec.name + " exited (" + std::to_string(st.exit_code) + ")", 0, 1);
      if (st.health.status == "unhealthy") throw Error("container " + c.spec.name + " is unhealthy", 0, 1);
      if (st.status != runtime::Status::Running) all = false;
      else if (c.spec.healthcheck.enabled() && st.health.status != "healthy") all = false;
    }
    if (all) return;
    if (std::chrono::steady_clock::now() >= deadline)
      throw Error("timed out waiting for the project's containers to be running/healthy", 0, 1);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

void stop_project(const runtime::Paths& paths, const std::string& project, const std::vector<std::string>& services,
                  std::optional<int> timeout);
bool stop_containers(const runtime::Paths& paths, const std::vector<runtime::Container>& containers,
                     std::optional<int> timeout, std::size_t max_parallel = SIZE_MAX);

bool is_up(const runtime::Container& c) {
  return c.state.status == runtime::Status::Running || c.state.status == runtime::Status::Paused ||
         c.state.status == runtime::Status::Restarting;
}

// `up` without -d: streams the selected services' logs with prefixes until
// every container has exited, ctrl-c (which stops the app, as compose does:
// exit 130), or with --abort-on-container-exit/--exit-code-from the first
// container that exits (which stops the others). Returns the exit code.
int attach_up(const UpFlags& f, const runtime::Paths& paths, const std::string& project,
              const std::vector<std::string>& selected) {
  InterruptGuard guard;
  runtime::Runtime rt(paths);
  LogOptions lo;
  lo.follow = true;
  lo.no_prefix = f.no_log_prefix;
  lo.color = !f.no_color && ::isatty(STDOUT_FILENO);
  LogPrinter printer(rt, lo);
  auto attached = project_containers(rt, project, selected);
  {
    // By name, as compose lists them (the containers start in parallel).
    std::vector<std::string> sorted;
    for (const auto& c : attached) sorted.push_back(short_name(c));
    std::sort(sorted.begin(), sorted.end());
    std::string names;
    for (const auto& n : sorted) names += (names.empty() ? "" : ", ") + n;
    std::cout << "Attaching to " << names << "\n" << std::flush;
  }
  bool abort = f.abort_on_exit || !f.exit_code_from.empty();
  // Containers that were already exited when we attached are not news.
  std::map<std::string, std::string> reported;  // id -> finished_at
  for (const auto& c : attached)
    if (!is_up(c)) reported[c.id] = c.state.finished_at;
  int rc = 0;
  bool aborting = false;
  for (;;) {
    auto containers = project_containers(rt, project, selected);
    printer.poll(containers);
    bool any_up = false;
    for (const auto& c : containers) {
      if (is_up(c)) {
        any_up = true;
        continue;
      }
      if (c.state.status == runtime::Status::Created) continue;
      auto it = reported.find(c.id);
      if (it != reported.end() && it->second == c.state.finished_at) continue;
      reported[c.id] = c.state.finished_at;
      std::cout << short_name(c) << " exited with code "
                << c.state.exit_code << "\n" << std::flush;
      if (abort && !aborting) {
        aborting = true;
        rc = c.state.exit_code;
      }
    }
    if (aborting || g_interrupted || !any_up) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (g_interrupted) {
    std::cerr << "Gracefully stopping... (press Ctrl+C again to force)\n";
    stop_project(paths, project, {}, given(f.timeout));
    return 130;
  }
  if (aborting) {
    std::cout << "Aborting on container exit...\n" << std::flush;
    stop_project(paths, project, {}, given(f.timeout));
    printer.poll(project_containers(rt, project, selected));
  }
  if (!f.exit_code_from.empty()) {
    rc = 0;
    for (const auto& c : project_containers(rt, project, {f.exit_code_from})) {
      if (is_up(c)) continue;
      rc = c.state.exit_code;
      break;
    }
  }
  return rc;
}

// Whether a project needs `berth serve`: a restart policy, a healthcheck
// (its own or its image's), or a container on a berth network (its DNS).
bool needs_supervisor(const spec::Project& project, const std::string& root) {
  for (const auto& [name, s] : project.services) {
    if (!s.restart.empty() && s.restart != "no") return true;
    if (s.deploy && s.deploy->restart_policy && s.deploy->restart_policy->condition != "none") return true;
    if (s.healthcheck && !s.healthcheck->disable) return true;
    const std::string& mode = s.network_mode;
    if (mode != "none" && mode != "host" && mode.rfind("container:", 0) != 0 && mode.rfind("service:", 0) != 0)
      return true;
    try {
      auto cfg = reconciler::resolve_image(root, s.image).config;
      if (cfg.contains("Healthcheck") && cfg["Healthcheck"].is_object()) return true;
    } catch (const Error&) {
    }
  }
  return false;
}

void run_up(const UpFlags& f, const GlobalOptions& g) {
  if (f.force_recreate && f.no_recreate) throw UsageError("--force-recreate and --no-recreate are incompatible");
  if (f.detach && (f.abort_on_exit || !f.exit_code_from.empty()))
    throw UsageError("--abort-on-container-exit and --exit-code-from cannot be combined with -d");
  auto scale = parse_scale(f.scale);
  spec::Project project = load_project_or_exit(f.project, f.services);
  if (!f.exit_code_from.empty() && !project.services.count(f.exit_code_from))
    throw UsageError("--exit-code-from: no such service: " + f.exit_code_from);
  runtime::Paths paths = paths_of(g);
  // As compose: the images the services lack (or whose pull_policy asks a
  // fresh pull) are pulled first, in parallel; a service left without its
  // image (or a failed pull) stops `up` before anything changes.
  if (!f.dry_run) {
    ProjectPullOptions pull;
    pull.for_up = true;
    pull.policy = f.pull;
    // The named services and (unless --no-deps) what they depend on.
    for (std::vector<std::string> todo = f.services; !todo.empty();) {
      std::string name = todo.back();
      todo.pop_back();
      if (std::find(pull.services.begin(), pull.services.end(), name) != pull.services.end()) continue;
      pull.services.push_back(name);
      auto it = project.services.find(name);
      if (it != project.services.end() && !f.no_deps)
        for (const auto& [dep, _] : it->second.depends_on) todo.push_back(dep);
    }
    pull.parallel = f.project.parallel;
    auto pull_errors = pull_project_images(project, g, pull);
    for (const auto& [service, error] : pull_errors) std::cerr << "Error service " << service << ": " << error << "\n";
    if (!pull_errors.empty()) exit_with(1);
  }
  reconciler::DesiredOptions desired_options;
  desired_options.scale = scale;
  // Resolve each service's image once (so that a retagged image recreates
  // its containers); why one is missing is kept for the error below.
  std::map<std::string, std::string> image_errors;
  // Services often share an image: each reference is looked up once.
  std::map<std::string, std::pair<std::string, std::string>> resolved;  // reference -> (id, error)
  for (const auto& [name, s] : project.services) {
    if (s.image.empty()) {
      image_errors[name] = "no image (berth cannot build images yet)";
      continue;
    }
    auto it = resolved.find(s.image);
    if (it == resolved.end()) {
      std::pair<std::string, std::string> r;
      try {
        r.first = reconciler::resolve_image(g.root, s.image).id;
      } catch (const Error& e) {
        r.second = e.what();
      }
      it = resolved.emplace(s.image, std::move(r)).first;
    }
    if (it->second.second.empty()) desired_options.image_ids[name] = it->second.first;
    else image_errors[name] = it->second.second;
  }
  reconciler::DesiredState desired = reconciler::desired_state(project, desired_options);
  reconciler::UpOptions options;
  options.force_recreate = f.force_recreate;
  options.no_recreate = f.no_recreate;
  options.remove_orphans = f.remove_orphans;
  options.no_deps = f.no_deps;
  options.services = f.services;
  reconciler::ObservedState observed = f.dry_run && !is_directory(g.root) ? reconciler::ObservedState{}
                                                                          : reconciler::observe(paths, project.name);
  reconciler::Plan plan = reconciler::plan(desired, observed, options);
  if (f.dry_run) {
    std::cout << reconciler::render(plan);
    return;
  }
  // As compose (which pulls first): a service that needs a container but
  // has no image stops the whole `up` before anything changes, so what runs
  // keeps running.
  std::set<std::string> missing;
  for (const auto& op : plan.operations)
    if (op.kind == reconciler::OpKind::CreateContainer && image_errors.count(op.service)) missing.insert(op.service);
  if (!missing.empty()) {
    for (const auto& service : missing) std::cerr << "Error service " << service << ": " << image_errors[service] << "\n";
    exit_with(1);
  }
  for (const auto& w : plan.warnings) std::cerr << "WARN " << w << "\n";
  reconciler::DriverOptions dopts;
  dopts.stop_timeout = given(f.timeout);
  if (f.wait_timeout > 0) dopts.wait_timeout = std::chrono::seconds(f.wait_timeout);
  dopts.warn = [](const std::string& w) { std::cerr << "WARN " << w << "\n"; };
  reconciler::RuntimeDriver driver(paths, dopts);
  // Independent operations run at once, each in its own process.
  reconciler::ProcessDriver parallel(driver);
  reconciler::ExecutorOptions eopts;
  eopts.max_parallel = reconciler::parallel_limit(f.project.parallel, kDefaultParallel);
  eopts.stop_timeout = std::chrono::seconds(f.timeout >= 0 ? f.timeout : 10);
  eopts.on_event = print_event;
  eopts.ordered_events = true;  // the same lines in the same order, however the operations overlap
  // `berth serve` enforces restart policies, runs healthchecks (which
  // service_healthy waits on) and answers DNS on berth networks: make sure
  // one runs for these roots when the app needs any of that, also when
  // nothing changed: after a supervisor died, the next `up` brings it back
  // (and with it restart policies, healthchecks and DNS). A running one is a
  // single connect away.
  if (needs_supervisor(project, g.root)) supervisor::ensure_daemon(paths);
  auto result = reconciler::run_plan(plan, parallel, eopts, [&] { return parallel.drain(); });
  if (!result.ok()) {
    for (const auto& e : result.errors) std::cerr << "Error " << e << "\n";
    exit_with(1);
  }
  std::vector<std::string> selected = f.services;
  if (f.wait) wait_running(paths, project.name, selected, f.wait_timeout);
  if (f.detach || f.wait) return;
  exit_with(attach_up(f, paths, project.name, selected));
}

void run_down(const DownFlags& f, const GlobalOptions& g) {
  if (!f.rmi.empty() && f.rmi != "local" && f.rmi != "all")
    throw UsageError("--rmi: want \"local\" or \"all\", got \"" + f.rmi + "\"");
  reconciler::DownOptions options;
  std::optional<spec::Project> project;
  if (!f.project.project_name.empty() && f.project.files.empty()) {
    // -p alone: the project need not have a compose file here.
    options.project = f.project.project_name;
    project = try_load_project(f.project);
  } else {
    project = load_project_or_exit(f.project);
    options.project = project->name;
  }
  if (project) {
    options.services.emplace();
    for (const auto& [name, _] : project->services) options.services->insert(name);
  }
  options.remove_volumes = f.volumes;
  options.remove_orphans = f.remove_orphans;
  runtime::Paths paths = paths_of(g);
  reconciler::ObservedState observed =
      is_directory(g.root) ? reconciler::observe(paths, options.project) : reconciler::ObservedState{};
  reconciler::Plan plan = reconciler::plan_down(observed, options);
  // --rmi: all = every image the services (or the project's containers)
  // use; local = only those without a custom tag, i.e. the images compose
  // would have built as <project>-<service>.
  std::vector<std::string> images;
  auto add_image = [&](const std::string& ref) {
    if (!ref.empty() && std::find(images.begin(), images.end(), ref) == images.end()) images.push_back(ref);
  };
  if (!f.rmi.empty()) {
    if (project)
      for (const auto& [name, s] : project->services)
        if (f.rmi == "all" ? !s.image.empty() : s.image.empty()) add_image(f.rmi == "all" ? s.image : project->name + "-" + name);
    if (f.rmi == "all" && is_directory(g.root)) {
      runtime::Runtime rt(paths);
      for (const auto& c : project_containers(rt, options.project)) add_image(c.spec.image);
    }
  }
  if (f.dry_run) {
    std::cout << reconciler::render(plan);
    for (const auto& i : images) std::cout << "remove image " << i << "\n";
    return;
  }
  for (const auto& w : plan.warnings) std::cerr << "WARN " << w << "\n";
  int rc = 0;
  // Stop first, in parallel by dependency level (the plan stops one at a
  // time); then plan again over what is now stopped.
  if (is_directory(g.root)) {
    runtime::Runtime rt(paths);
    std::vector<runtime::Container> to_stop;
    for (auto& c : project_containers(rt, options.project))
      if (!options.services || options.remove_orphans || options.services->count(label_of(c, label::service)))
        to_stop.push_back(std::move(c));
    // All at once unless --parallel or COMPOSE_PARALLEL_LIMIT says otherwise,
    // as compose: a batch would wait a full stop timeout per PID 1 that
    // ignores SIGTERM.
    if (!stop_containers(paths, to_stop, given(f.timeout), reconciler::parallel_limit(f.project.parallel, SIZE_MAX)))
      rc = 1;
    observed = reconciler::observe(paths, options.project);
    plan = reconciler::plan_down(observed, options);
  }
  reconciler::DriverOptions dopts;
  dopts.stop_timeout = given(f.timeout);
  dopts.remove_anonymous_volumes = f.volumes;
  reconciler::RuntimeDriver driver(paths, dopts);
  reconciler::ProcessDriver parallel(driver);
  reconciler::ExecutorOptions eopts;
  eopts.max_parallel = reconciler::parallel_limit(f.project.parallel, kDefaultParallel);
  eopts.stop_timeout = std::chrono::seconds(f.timeout >= 0 ? f.timeout : 10);
  eopts.on_event = print_event;
  eopts.ordered_events = true;  // the same lines in the same order, however the operations overlap
  auto result = reconciler::run_plan(plan, parallel, eopts, [&] { return parallel.drain(); });
  if (!result.ok()) {
    for (const auto& e : result.errors) std::cerr << "Error " << e << "\n";
    rc = 1;
  }
  if (!images.empty() && is_directory(g.root)) {
    reconciler::sync_image_holds(g.root);
    images::Store store(g.root);
    for (const auto& ref : images) {
      try {
        store.resolve(ref);
      } catch (const Error&) {
        continue;  // not here (never pulled, or already gone): nothing to do
      }
      try {
        std::cerr << "Image " << ref << "  Removing\n";
        store.remove(ref, false);
        std::cerr << "Image " << ref << "  Removed\n";
      } catch (const Error& e) {
        std::cerr << "Error image " << ref << ": " << e.what() << "\n";
        rc = 1;
      }
    }
  }
  if (rc) exit_with(rc);
}

void add_up(CLI::App& parent, const GlobalOptions& g, const std::shared_ptr<ProjectFlags>& outer) {
  auto up = std::make_shared<UpFlags>();
  auto* cmd = add_command(parent, "up", "Create and start the containers of a compose project");
  add_project_flags(cmd, up->project);
  cmd->add_option("services", up->services, "Services to start (default: all)");
  cmd->add_flag("--dry-run", up->dry_run, "Print the plan against the current state; change nothing");
  cmd->add_flag("-d,--detach", up->detach, "Run containers in the background");
  cmd->add_flag("--wait", up->wait, "Wait for services to be running|healthy (implies detached mode)");
  cmd->add_option("--wait-timeout", up->wait_timeout, "Maximum seconds to wait for the project to be running|healthy");
  cmd->add_flag("--force-recreate", up->force_recreate, "Recreate containers even if nothing changed");
  cmd->add_flag("--no-recreate", up->no_recreate, "Never recreate existing containers");
  cmd->add_flag("--remove-orphans", up->remove_orphans, "Remove containers of services not in the project");
  cmd->add_flag("--no-deps", up->no_deps, "Do not start the named services' dependencies");
  cmd->add_option("--scale", up->scale, "Scale SERVICE to NUM instances (SERVICE=NUM, repeatable)")->allow_extra_args(false);
  cmd->add_option("-t,--timeout", up->timeout, "Shutdown timeout in seconds (default: each service's stop_grace_period, else 10)");
  cmd->add_flag("--abort-on-container-exit", up->abort_on_exit, "Stop all containers if any container was stopped (not with -d)");
  cmd->add_option("--exit-code-from", up->exit_code_from, "Return the exit code of the selected service container (implies --abort-on-container-exit)");
  cmd->add_flag("--no-color", up->no_color, "Produce monochrome output");
  cmd->add_flag("--no-log-prefix", up->no_log_prefix, "Don't print prefix in logs");
  cmd->add_option("--pull", up->pull, "Pull image before running (\"always\"|\"missing\"|\"never\"|\"build\"; default: each service's pull_policy)");
  cmd->callback([up, outer, &g] {
    UpFlags f = *up;
    if (!f.pull.empty() && f.pull != "policy") check_pull_policy(f.pull, "--pull");
    if (outer) f.project = merged(*outer, f.project);
    run_up(f, g);
  });
}

void add_down(CLI::App& parent, const GlobalOptions& g, const std::shared_ptr<ProjectFlags>& outer) {
  auto down = std::make_shared<DownFlags>();
  auto* cmd = add_command(parent, "down", "Stop and remove the containers and networks of a compose project");
  add_project_flags(cmd, down->project);
  cmd->add_flag("--dry-run", down->dry_run, "Print the plan against the current state; change nothing");
  cmd->add_flag("-v,--volumes", down->volumes, "Remove the project's named volumes and containers' anonymous volumes");
  cmd->add_flag("--remove-orphans", down->remove_orphans, "Remove containers of services not in the project");
  cmd->add_option("-t,--timeout", down->timeout, "Shutdown timeout in seconds");
  cmd->add_option("--rmi", down->rmi, "Remove images used by services: \"local\" (only those without a custom tag) or \"all\"");
  cmd->callback([down, outer, &g] {
    DownFlags f = *down;
    if (outer) f.project = merged(*outer, f.project);
    run_down(f, g);
  });
}

// ------------------------------------------------------------------ verbs

// Stops the running (or paused) ones of `containers` as compose does:
// dependents before their dependencies (read from the depends_on labels),
// the containers of one level in parallel (at most max_parallel at once).
// Progress lines come in a fixed order: a level's "Stopping" lines, then its
// "Stopped" lines. Returns false if one failed (reported as "Error container
// X: ...").
bool stop_containers(const runtime::Paths& paths, const std::vector<runtime::Container>& containers,
                     std::optional<int> timeout, std::size_t max_parallel) {
  std::map<std::string, std::set<std::string>> deps;  // service -> the services it depends on
  for (const auto& c : containers) {
    std::istringstream in(label_of(c, label::depends_on));
    for (std::string item; std::getline(in, item, ',');)
      if (!item.empty()) deps[label_of(c, label::service)].insert(item.substr(0, item.find(':')));
  }
  // level(s) = 0 when no service depends on s, else 1 + the highest level
  // of its dependents; dependency cycles are rejected by the spec.
  std::map<std::string, int> level;
  for (const auto& c : containers) level[label_of(c, label::service)] = 0;
  for (std::size_t round = 0; round <= level.size(); ++round) {
    bool changed = false;
    for (const auto& [service, ds] : deps)
      for (const auto& d : ds)
        if (level.count(d) && level[d] < level[service] + 1) {
          level[d] = level[service] + 1;
          changed = true;
        }
    if (!changed) break;
  }
  std::map<int, std::vector<const runtime::Container*>> by_level;
  for (const auto& c : containers)
    if (c.state.status == runtime::Status::Running || c.state.status == runtime::Status::Paused)
      by_level[level[label_of(c, label::service)]].push_back(&c);
  bool ok = true;
  for (auto& [lvl, group] : by_level) {
    std::sort(group.begin(), group.end(), [](auto* a, auto* b) { return a->spec.name < b->spec.name; });
    for (auto* c : group) std::cerr << "Container " << c->spec.name << "  Stopping\n";
    std::vector<std::string> errors(group.size());
    std::atomic<std::size_t> next{0};  // each thread stops the next container not taken yet
    std::vector<std::thread> threads;
    for (std::size_t n = 0; n < std::min(group.size(), std::max<std::size_t>(1, max_parallel)); ++n)
      threads.emplace_back([&] {
        for (std::size_t i; (i = next++) < group.size();) {
          try {
            reconciler::DriverOptions o;
            o.stop_timeout = timeout;
            reconciler::RuntimeDriver driver(paths, o);
            // A second ctrl-c while stopping: kill at once, as compose does.
            driver.stop(group[i]->id, g_interrupts >= 2 ? std::optional<int>(0) : std::nullopt);
          } catch (const std::exception& e) {
            errors[i] = e.what();
          }
        }
      });
    for (auto& t : threads) t.join();
    for (std::size_t i = 0; i < group.size(); ++i) {
      if (errors[i].empty()) {
        std::cerr << "Container " << group[i]->spec.name << "  Stopped\n";
      } else {
        std::cerr << "Error container " << group[i]->spec.name << ": " << errors[i] << "\n";
        ok = false;
      }
    }
  }
  std::cerr << std::flush;
  return ok;
}

void stop_project(const runtime::Paths& paths, const std::string& project, const std::vector<std::string>& services,
                  std::optional<int> timeout) {
  runtime::Runtime rt(paths);
  stop_containers(paths, project_containers(rt, project, services), timeout);
}

struct VerbFlags {
  ProjectFlags project;
  std::vector<std::string> services;
  int timeout = -1;
  std::string signal = "SIGKILL";
  bool force = false, stop_first = false, volumes = false;
};

void add_verbs(CLI::App& compose, const GlobalOptions& g, const std::shared_ptr<ProjectFlags>& outer) {
  struct Verb {
    const char* name;
    const char* help;
  };
  for (Verb v : {Verb{"start", "Start services"}, Verb{"stop", "Stop services"}, Verb{"restart", "Restart services"},
                 Verb{"kill", "Force stop service containers"}, Verb{"rm", "Remove stopped service containers"},
                 Verb{"pause", "Pause services"}, Verb{"unpause", "Unpause services"}}) {
    auto f = std::make_shared<VerbFlags>();
    auto* cmd = add_command(compose, v.name, v.help);
    // -f/-p/... belong to `compose` (docker compose), not to this subcommand.
    cmd->add_option("services", f->services, "Services (default: all)");
    std::string verb = v.name;
    if (verb == "stop" || verb == "restart") cmd->add_option("-t,--timeout", f->timeout, "Shutdown timeout in seconds");
    if (verb == "kill") cmd->add_option("-s,--signal", f->signal, "Signal to send to the container");
    if (verb == "rm") {
      cmd->add_flag("-f,--force", f->force, "Don't ask to confirm removal");
      cmd->add_flag("-s,--stop", f->stop_first, "Stop the containers, if required, before removing");
      cmd->add_flag("-v,--volumes", f->volumes, "Remove any anonymous volumes attached to containers");
    }
    cmd->callback([f, outer, verb, &g] {
      ProjectFlags pf = outer ? merged(*outer, f->project) : f->project;
      std::string project = project_name(pf);
      runtime::Paths paths = paths_of(g);
      runtime::Runtime rt(paths);
      reconciler::DriverOptions o;
      o.stop_timeout = given(f->timeout);
      o.remove_anonymous_volumes = f->volumes;
      reconciler::RuntimeDriver driver(paths, o);
      auto containers = project_containers(rt, project, f->services);
      if (verb == "stop" || verb == "kill" || verb == "rm") std::reverse(containers.begin(), containers.end());
      int rc = 0;
      auto report = [](const runtime::Container& c, const char* status) {
        std::cerr << "Container " << c.spec.name << "  " << status << "\n";
      };
      for (const auto& c : containers) {
        bool up = c.state.status == runtime::Status::Running || c.state.status == runtime::Status::Paused ||
                  c.state.status == runtime::Status::Restarting;
        try {
          if (verb == "start") {
            if (up) continue;
            report(c, "Starting");
            rt.start(c.id);
            report(c, "Started");
          } else if (verb == "stop") {
            if (!up) continue;
            report(c, "Stopping");
            driver.stop(c.id, std::nullopt);
            report(c, "Stopped");
          } else if (verb == "restart") {
            report(c, "Restarting");
            if (up) driver.stop(c.id, std::nullopt);
            rt.start(c.id);
            report(c, "Started");
          } else if (verb == "kill") {
            if (!up) continue;
            report(c, "Killing");
            rt.kill(c.id, reconciler::signal_number(f->signal));
            report(c, "Killed");
          } else if (verb == "rm") {
            if (up && !f->stop_first) continue;
            if (up) {
              report(c, "Stopping");
              driver.stop(c.id, std::nullopt);
              report(c, "Stopped");
            }
            report(c, "Removing");
            driver.remove(c.id);
            report(c, "Removed");
          } else if (verb == "pause") {
            if (c.state.status != runtime::Status::Running) continue;
            report(c, "Pausing");
            rt.pause(c.id);
            report(c, "Paused");
          } else if (verb == "unpause") {
            if (c.state.status != runtime::Status::Paused) continue;
            report(c, "Unpausing");
            rt.unpause(c.id);
            report(c, "Unpaused");
          }
        } catch (const Error& e) {
          std::cerr << "Error container " << c.spec.name << ": " << e.what() << "\n";
          rc = 1;
        }
      }
      if (verb == "rm" && containers.empty()) std::cerr << "No stopped containers\n";
      if (rc) exit_with(rc);
    });
  }
}

struct PsFlags {
  ProjectFlags project;
  std::vector<std::string> services;
  bool all = false, quiet = false, list_services = false;
  std::string format = "table";
  std::vector<std::string> status;
};

void add_ps(CLI::App& compose, const GlobalOptions& g, const std::shared_ptr<ProjectFlags>& outer) {
  auto f = std::make_shared<PsFlags>();
  auto* cmd = add_command(compose, "ps", "List containers of a compose project");
  // -f/-p/... belong to `compose` (docker compose), not to this subcommand.
  cmd->add_option("services", f->services, "Services (default: all)");
  cmd->add_flag("-a,--all", f->all, "Show all stopped containers too");
  cmd->add_flag("-q,--quiet", f->quiet, "Only display IDs");
  cmd->add_flag("--services", f->list_services, "Display services");
  cmd->add_option("--format", f->format, "Format the output: table or json");
  cmd->add_option("--status", f->status, "Filter services by status (created, running, paused, restarting, exited, dead)")
      ->allow_extra_args(false);
  cmd->callback([f, outer, &g] {
    ProjectFlags pf = outer ? merged(*outer, f->project) : f->project;
    std::string project = project_name(pf);
    runtime::Runtime rt(paths_of(g));
    std::vector<runtime::Container> shown;
    for (auto& c : project_containers(rt, project, f->services)) {
      std::string state = state_word(c);
      if (!f->status.empty()) {
        if (std::find(f->status.begin(), f->status.end(), state) == f->status.end()) continue;
      } else if (!f->all && c.state.status != runtime::Status::Running && c.state.status != runtime::Status::Paused &&
                 c.state.status != runtime::Status::Restarting) {
        continue;
      }
      shown.push_back(std::move(c));
    }
    std::sort(shown.begin(), shown.end(), [](const auto& a, const auto& b) { return a.spec.name < b.spec.name; });
    std::vector<net::NetworkRecord> networks;
    if (!shown.empty() && !f->quiet && !f->list_services) networks = all_networks(g.root);
    if (f->list_services) {
      std::set<std::string> names;
      for (const auto& c : shown) names.insert(label_of(c, label::service));
      for (const auto& n : names) std::cout << n << "\n";
      return;
    }
    if (f->quiet) {
      for (const auto& c : shown) std::cout << c.id << "\n";
      return;
    }
    auto command_of = [](const runtime::Container& c) {
      std::string s;
      for (const auto& a : c.spec.process.args) s += (s.empty() ? "" : " ") + a;
      return "\"" + (s.size() > 20 ? s.substr(0, 19) + "…" : s) + "\"";
    };
    if (f->format == "json") {
      json arr = json::array();
      for (const auto& c : shown) {
        std::string cmdline;
        for (const auto& a : c.spec.process.args) cmdline += (cmdline.empty() ? "" : " ") + a;
        arr.push_back({{"ID", c.id},
                       {"Name", c.spec.name},
                       {"Image", c.spec.image},
                       {"Command", cmdline},
                       {"Project", project},
                       {"Service", label_of(c, label::service)},
                       {"CreatedAt", c.state.created_at},
                       {"State", state_word(c)},
                       {"Health", c.state.health.status},
                       {"ExitCode", c.state.exit_code},
                       {"Status", status_text(c)},
                       {"Ports", ports_text(networks, c)},
                       {"Publishers", publishers_json(networks, c)},
                       {"Labels", c.spec.labels}});
      }
      std::cout << arr.dump() << "\n";
      return;
    }
    if (f->format != "table") throw UsageError("--format: want table or json, got \"" + f->format + "\"");
    std::vector<std::vector<std::string>> rows{{"NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"}};
    for (const auto& c : shown)
      rows.push_back({c.spec.name, c.spec.image, command_of(c), label_of(c, label::service), ago(c.state.created_at),
                      status_text(c), ports_text(networks, c)});
    print_table(rows);
  });
}

struct LogsFlags {
  ProjectFlags project;
  std::vector<std::string> services;
  LogOptions options;
  std::string since, until;
  bool no_color = false;
};

void add_logs(CLI::App& compose, const GlobalOptions& g, const std::shared_ptr<ProjectFlags>& outer) {
  auto f = std::make_shared<LogsFlags>();
  auto* cmd = add_command(compose, "logs", "View output from containers");
  // -f/-p/... belong to `compose` (docker compose), not to this subcommand.
  cmd->add_option("services", f->services, "Services (default: all)");
  cmd->add_flag("-f,--follow", f->options.follow, "Follow log output");
  cmd->add_flag("-t,--timestamps", f->options.timestamps, "Show timestamps");
  cmd->add_flag("--no-log-prefix", f->options.no_prefix, "Don't print prefix in logs");
  cmd->add_option("-n,--tail", f->options.tail, "Number of lines to show from the end of the logs for each container");
  cmd->add_option("--since", f->since, "Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)");
  cmd->add_option("--until", f->until, "Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or relative (e.g. 42m)");
  cmd->add_flag("--no-color", f->no_color, "Produce monochrome output");
  cmd->callback([f, outer, &g] {
    ProjectFlags pf = outer ? merged(*outer, f->project) : f->project;
    std::string project = project_name(pf);
    LogOptions o = f->options;
    o.since = parse_log_time("--since", f->since);
    o.until = parse_log_time("--until", f->until);
    o.color = !f->no_color && ::isatty(STDOUT_FILENO);
    if (o.tail != "all") {
      char* rest = nullptr;
      long n = std::strtol(o.tail.c_str(), &rest, 10);
      if (o.tail.empty() || *rest || n < 0) throw UsageError("--tail: want a number or \"all\", got \"" + o.tail + "\"");
    }
    runtime::Runtime rt(paths_of(g));
    InterruptGuard guard;
    // --until ends a follow once that time has passed, as docker does.
    stream_logs(rt, project, f->services, o, [&] { return o.until > 0 && now_epoch_seconds() >= o.until; });
  });
}

// `compose exec` and `compose run` allocate a TTY unless -T, as docker
// compose does when its output is a terminal; berth also needs its input to
// be one (compose would fail with "the input device is not a TTY"), so a
// script feeding stdin gets plain streams.
bool compose_wants_tty(bool no_tty) { return !no_tty && ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO); }

struct ExecFlags {
  ProjectFlags project;
  int index = 1;
  bool detach = false, no_tty = false, interactive = true, tty = true;
  std::string user, workdir;
  std::vector<std::string> env;
};

void add_exec(CLI::App& compose, const GlobalOptions& g, const std::shared_ptr<ProjectFlags>& outer) {
  auto f = std::make_shared<ExecFlags>();
  auto* cmd = add_command(compose, "exec", "Execute a command in a running service container");
  // -f/-p/... belong to `compose` (docker compose), not to this subcommand.
  cmd->add_option("--index", f->index, "Index of the container if the service has several replicas")->capture_default_str();
  cmd->add_flag("-d,--detach", f->detach, "Detached mode: run the command in the background");
  cmd->add_flag("-T,--no-TTY,--no-tty", f->no_tty,
                "Disable pseudo-TTY allocation (default: a TTY when stdin and stdout are terminals)");
  // docker compose takes -i/-t for docker exec compatibility: the defaults.
  cmd->add_flag("-i,--interactive", f->interactive, "Keep STDIN open (the default)");
  cmd->add_flag("-t,--tty", f->tty, "Allocate a pseudo-TTY (the default)");
  cmd->add_option("-u,--user", f->user, "Run the command as this user");
  cmd->add_option("-w,--workdir", f->workdir, "Working directory for this command");
  cmd->add_option("-e,--env", f->env, "Set environment variables")->allow_extra_args(false);
  cmd->prefix_command();
  cmd->callback([cmd, f, outer, &g] {
    auto rest = cmd->remaining();
    if (rest.size() < 2) throw UsageError("\"compose exec\" requires at least 2 arguments: SERVICE COMMAND [ARGS...]");
    ProjectFlags pf = outer ? merged(*outer, f->project) : f->project;
    std::string project = project_name(pf);
    runtime::Runtime rt(paths_of(g));
    std::optional<runtime::Container> target;
    for (auto& c : project_containers(rt, project, {rest[0]}))
      if (number_of(c) == f->index) target = std::move(c);
    if (!target) throw Error("service \"" + rest[0] + "\" is not running", 0, 1);
    if (target->state.status != runtime::Status::Running)
      throw Error("container " + target->spec.name + " is not running", 0, 1);
    runtime::ProcessSpec p;
    p.args.assign(rest.begin() + 1, rest.end());
    p.user = f->user;
    p.cwd = f->workdir;
    p.open_stdin = f->interactive;  // docker compose exec: -i is the default
    p.tty = compose_wants_tty(f->no_tty);
    for (const auto& e : f->env) {
      if (e.find('=') != std::string::npos) p.env.push_back(e);
      else if (const char* v = std::getenv(e.c_str())) p.env.push_back(e + "=" + v);
    }
    int code = 0;
    {
      std::unique_ptr<RawTerminal> raw;
      if (p.tty && p.open_stdin && !f->detach) raw = std::make_unique<RawTerminal>();
      code = rt.exec(target->id, p, f->detach);
    }
    exit_with(code);
  });
}

struct RunFlags {
  ProjectFlags project;
  bool detach = false, rm = false, no_deps = false, no_tty = false, service_ports = false;
  bool interactive = true;
  std::string name, entrypoint, user, workdir;
  std::vector<std::string> env, labels;
};

// `compose run SERVICE [COMMAND...]`: a one-off container of the service
// (com.docker.compose.oneoff=True, named <project>-<service>-run-<hex>),
// after `up -d` of its dependencies unless --no-deps. Its ports are not
// published (unless --service-ports) and its restart policy does not apply.
void add_run(CLI::App& compose, const GlobalOptions& g, const std::shared_ptr<ProjectFlags>& outer) {
  auto f = std::make_shared<RunFlags>();
  auto* cmd = add_command(compose, "run", "Run a one-off command on a service");
  cmd->add_flag("-d,--detach", f->detach, "Run container in background and print its name");
  cmd->add_flag("--rm", f->rm, "Automatically remove the container when it exits");
  cmd->add_flag("--no-deps", f->no_deps, "Don't start linked services");
  cmd->add_option("--name", f->name, "Assign a name to the container");
  cmd->add_option("--entrypoint", f->entrypoint, "Override the entrypoint of the image");
  cmd->add_option("-e,--env", f->env, "Set environment variables")->allow_extra_args(false);
  cmd->add_option("-l,--label", f->labels, "Add or override a label")->allow_extra_args(false);
  cmd->add_option("-u,--user", f->user, "Run as specified username or uid");
  cmd->add_option("-w,--workdir", f->workdir, "Working directory inside the container");
  cmd->add_flag("-T,--no-TTY,--no-tty", f->no_tty,
                "Disable pseudo-TTY allocation (default: a TTY when stdin and stdout are terminals)");
  cmd->add_flag("-i,--interactive,!--no-interactive", f->interactive, "Keep STDIN open (default true)");
  cmd->add_flag("-P,--service-ports", f->service_ports, "Run with the service's ports published");
  cmd->prefix_command();
  cmd->callback([cmd, f, outer, &g] {
    auto rest = cmd->remaining();
    if (rest.empty()) throw UsageError("\"compose run\" requires at least 1 argument: SERVICE [COMMAND] [ARGS...]");
    std::string service = rest[0];
    ProjectFlags pf = outer ? merged(*outer, f->project) : f->project;
    spec::Project project = load_project_or_exit(pf, {service});
    if (!project.services.count(service)) throw Error("no such service: " + service, 0, 1);
    runtime::Paths paths = paths_of(g);
    reconciler::DesiredOptions dopt;
    dopt.scale[service] = 1;
    const auto& svc = project.services.at(service);
    if (svc.image.empty()) throw Error("service " + service + ": no image (berth cannot build images yet)", 0, 1);
    try {
      dopt.image_ids[service] = reconciler::resolve_image(g.root, svc.image).id;
    } catch (const Error& e) {
      std::cerr << "Error service " << service << ": " << e.what() << "\n";
      exit_with(1);
    }
    reconciler::DesiredState desired = reconciler::desired_state(project, dopt);
    const auto& ds = desired.services.at(service);
    if (!f->no_deps && !ds.depends_on.empty()) {
      UpFlags up;
      up.project = pf;
      up.detach = true;
      for (const auto& [dep, _] : ds.depends_on) up.services.push_back(dep);
      run_up(up, g);
    }
    reconciler::ContainerSpec c = ds.containers.at(0);
    std::string slug = runtime::new_container_id();
    c.name = f->name.empty() ? project.name + "-" + service + "-run-" + slug.substr(0, 12) : f->name;
    c.labels[label::oneoff] = "True";
    c.labels["com.docker.compose.slug"] = slug;
    for (const auto& l : f->labels) {
      auto eq = l.find('=');
      c.labels[l.substr(0, eq)] = eq == std::string::npos ? "" : l.substr(eq + 1);
    }
    auto& s = c.service_spec;
    s.container_name.clear();
    s.restart.clear();
    if (s.deploy) s.deploy->restart_policy.reset();
    if (!f->service_ports) s.ports.clear();
    if (rest.size() > 1) s.command = std::vector<std::string>(rest.begin() + 1, rest.end());
    if (!f->entrypoint.empty()) s.entrypoint = std::vector<std::string>{f->entrypoint};
    if (!f->user.empty()) s.user = f->user;
    if (!f->workdir.empty()) s.working_dir = f->workdir;
    for (const auto& e : f->env) {
      auto eq = e.find('=');
      if (eq != std::string::npos) s.environment[e.substr(0, eq)] = e.substr(eq + 1);
      else if (const char* v = std::getenv(e.c_str())) s.environment[e] = std::string(v);
    }
    s.tty = compose_wants_tty(f->no_tty) && !f->detach;
    s.stdin_open = f->interactive && !f->detach;
    reconciler::DriverOptions o;
    o.warn = [](const std::string& w) { std::cerr << "WARN " << w << "\n"; };
    reconciler::RuntimeDriver driver(paths, o);
    std::string id = driver.create(c);
    runtime::Runtime rt(paths);
    runtime::Attach attach;
    attach.attach = !f->detach;
    attach.stdin = f->interactive && !f->detach;
    bool detached = false;
    attach.detached = &detached;
    int code = 0;
    try {
      std::unique_ptr<RawTerminal> raw;
      if (attach.stdin && s.tty) raw = std::make_unique<RawTerminal>();
      code = rt.start(id, attach);
    } catch (const Error&) {
      if (f->rm) {
        try {
          driver.remove(id);
        } catch (const Error&) {
        }
      }
      throw;
    }
    if (f->detach) {
      std::cout << c.name << "\n";
      return;
    }
    if (detached) exit_with(0);  // ctrl-p ctrl-q: the container goes on
    if (f->rm) driver.remove(id);
    exit_with(code);
  });
}

// stdout of a fixed command line (no shell).
std::string run_capture(const std::vector<std::string>& argv) {
  std::string cmd;
  for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + std::string("'") + a + "'";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
  }
  return out;
}

// The processes of a running container: every process in its init's cgroup.
std::vector<pid_t> container_pids(const runtime::Container& c) {
  std::vector<pid_t> out;
  if (c.state.pid <= 0) return out;
  std::string init_cg;
  if (!read_file_if_exists("/proc/" + std::to_string(c.state.pid) + "/cgroup", init_cg) || init_cg.empty()) return out;
  if (DIR* d = ::opendir("/proc")) {
    while (auto* e = ::readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      std::string cg;
      try {
        if (!read_file_if_exists(std::string("/proc/") + e->d_name + "/cgroup", cg)) continue;
      } catch (const Error&) {
        continue;
      }
      if (cg == init_cg) out.push_back(static_cast<pid_t>(std::atoi(e->d_name)));
    }
    ::closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct TopFlags {
  ProjectFlags project;
  std::vector<std::string> services;
};

// `compose top`: per running container, its name and then its processes
// (docker top's default `ps -ef` columns).
void add_top(CLI::App& compose, const GlobalOptions& g, const std::shared_ptr<ProjectFlags>& outer) {
  auto f = std::make_shared<TopFlags>();
  auto* cmd = add_command(compose, "top", "Display the running processes");
  cmd->add_option("services", f->services, "Services (default: all)");
  cmd->callback([f, outer, &g] {
    ProjectFlags pf = outer ? merged(*outer, f->project) : f->project;
    std::string project = project_name(pf);
    runtime::Runtime rt(paths_of(g));
    auto containers = project_containers(rt, project, f->services);
    std::sort(containers.begin(), containers.end(), [](const auto& a, const auto& b) { return a.spec.name < b.spec.name; });
    bool first = true;
    for (const auto& c : containers) {
      if (c.state.status != runtime::Status::Running && c.state.status != runtime::Status::Paused) continue;
      auto pids = container_pids(c);
      if (pids.empty()) continue;
      std::string list;
      for (pid_t p : pids) list += (list.empty() ? "" : ",") + std::to_string(p);
      auto r = run_capture({"ps", "-o", "user=,pid=,ppid=,c=,stime=,tty=,time=,args=", "-p", list});
      std::vector<std::vector<std::string>> rows{{"UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"}};
      std::istringstream in(r);
      for (std::string line; std::getline(in, line);) {
        std::istringstream fields(line);
        std::vector<std::string> row;
        std::string w;
        for (int i = 0; i < 7 && fields >> w; ++i) row.push_back(w);
        if (row.size() < 7) continue;
        std::string args;
        std::getline(fields, args);
        auto start = args.find_first_not_of(' ');
        row.push_back(start == std::string::npos ? "" : args.substr(start));
        rows.push_back(std::move(row));
      }
      if (!first) std::cout << "\n";
      first = false;
      std::cout << c.spec.name << "\n";
      print_table(rows);
    }
  });
}

// Go's units.HumanSize as docker prints image sizes: 3 significant digits, decimal units.
std::string image_size(double size) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int i = 0;
  while (size >= 1000 && i < 4) {
    size /= 1000;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g%s", size, units[i]);
  return buf;
}

struct ImagesFlags {
  ProjectFlags project;
  std::vector<std::string> services;
  bool quiet = false;
  std::string format = "table";
};

// `compose images`: the image of each of the project's containers.
void add_images(CLI::App& compose, const GlobalOptions& g, const std::shared_ptr<ProjectFlags>& outer) {
  auto f = std::make_shared<ImagesFlags>();
  auto* cmd = add_command(compose, "images", "List images used by the created containers");
  cmd->add_option("services", f->services, "Services (default: all)");
  cmd->add_flag("-q,--quiet", f->quiet, "Only display IDs");
  cmd->add_option("--format", f->format, "Format the output: table or json");
  cmd->callback([f, outer, &g] {
    if (f->format != "table" && f->format != "json") throw UsageError("--format: want table or json, got \"" + f->format + "\"");
    ProjectFlags pf = outer ? merged(*outer, f->project) : f->project;
    std::string project = project_name(pf);
    runtime::Runtime rt(paths_of(g));
    auto containers = project_containers(rt, project, f->services);
    std::sort(containers.begin(), containers.end(), [](const auto& a, const auto& b) { return a.spec.name < b.spec.name; });
    std::optional<images::Store> store;
    if (is_directory(g.root)) store.emplace(g.root);
    std::vector<std::vector<std::string>> rows{{"CONTAINER", "REPOSITORY", "TAG", "IMAGE ID", "SIZE"}};
    json arr = json::array();
    std::set<std::string> ids;
    for (const auto& c : containers) {
      std::string id;
      auto a = c.spec.annotations.find(reconciler::kImageIdAnnotation);
      if (a != c.spec.annotations.end()) id = a->second;
      uint64_t size = 0;
      if (store && !id.empty()) {
        try {
          size = store->summary(id).size;
        } catch (const Error&) {
        }
      }
      std::string repo = c.spec.image, tag = "latest";
      auto slash = repo.rfind('/');
      auto colon = repo.rfind(':');
      if (colon != std::string::npos && (slash == std::string::npos || colon > slash)) {
        tag = repo.substr(colon + 1);
        repo = repo.substr(0, colon);
      }
      std::string hex = id.rfind("sha256:", 0) == 0 ? id.substr(7) : id;
      ids.insert(id);
      rows.push_back({c.spec.name, repo, tag, hex.substr(0, 12), image_size(static_cast<double>(size))});
      arr.push_back({{"ID", id}, {"ContainerName", c.spec.name}, {"Repository", repo}, {"Tag", tag}, {"Size", size}});
    }
    if (f->quiet) {
      for (const auto& id : ids) std::cout << id << "\n";
    } else if (f->format == "json") {
      std::cout << arr.dump() << "\n";
    } else {
      print_table(rows);
    }
  });
}

struct LsFlags {
  bool all = false, quiet = false;
  std::string format = "table";
};

void add_ls(CLI::App& parent, const GlobalOptions& g) {
  auto f = std::make_shared<LsFlags>();
  auto* cmd = add_command(parent, "ls", "List running compose projects");
  cmd->add_flag("-a,--all", f->all, "Show all stopped projects too");
  cmd->add_flag("-q,--quiet", f->quiet, "Only display project names");
  cmd->add_option("--format", f->format, "Format the output: table or json");
  cmd->callback([f, &g] {
    struct Project {
      std::map<std::string, int> states;
      std::string config_files;
      std::string last_error;  // of serve --watch's last apply
      bool watched = false;
      std::string watch_state;
    };
    std::map<std::string, Project> projects;
    // A running `berth serve` answers for the projects it knows (and for
    // the apply status of those it watches); without one, read the disk.
    // ls never starts a daemon.
    std::optional<json> answer;
    runtime::Paths paths = paths_of(g);
    if (path_exists(supervisor::socket_path(paths))) {
      try {
        auto r = supervisor::http_request(supervisor::socket_path(paths), "GET", "/projects", {},
                                          std::chrono::seconds(5));
        if (r.status == 200) answer = json::parse(r.body, nullptr, false);
        if (answer && !answer->is_array()) answer.reset();
      } catch (const Error&) {
      }
    }
    if (answer) {
      for (const auto& e : *answer) {
        auto& p = projects[e.value("Name", "")];
        if (e.contains("States") && e["States"].is_object())
          for (auto& [state, n] : e["States"].items()) p.states[state] = n.get<int>();
        p.config_files = e.value("ConfigFiles", "");
        p.last_error = e.value("LastError", "");
        p.watched = e.contains("Watch");
        // Not running anything yet: what serve --watch is doing with it.
        if (p.watched && p.states.empty()) p.watch_state = e["Watch"].value("State", "");
      }
      projects.erase("");
    } else if (is_directory(g.root)) {
      runtime::Runtime rt(paths_of(g));
      for (const auto& c : rt.list()) {
        std::string name = label_of(c, label::project);
        if (name.empty()) continue;
        auto& p = projects[name];
        p.states[state_word(c)]++;
        if (p.config_files.empty()) p.config_files = label_of(c, label::config_files);
      }
    }
    auto status_of = [](const Project& p) {
      if (p.states.empty()) return p.watch_state;
      std::string s;
      for (const auto& [state, n] : p.states) s += (s.empty() ? "" : ", ") + state + "(" + std::to_string(n) + ")";
      return s;
    };
    std::vector<std::string> names;
    for (const auto& [name, p] : projects)
      if (f->all || p.states.count("running") || p.states.count("paused") || p.states.count("restarting") ||
          (p.watched && p.states.empty()))
        names.push_back(name);
    if (f->quiet) {
      for (const auto& n : names) std::cout << n << "\n";
      return;
    }
    if (f->format == "json") {
      json arr = json::array();
      for (const auto& n : names) {
        json e = {{"Name", n}, {"Status", status_of(projects[n])}, {"ConfigFiles", projects[n].config_files}};
        if (!projects[n].last_error.empty()) e["LastError"] = projects[n].last_error;
        arr.push_back(std::move(e));
      }
      std::cout << arr.dump() << "\n";
      return;
    }
    if (f->format != "table") throw UsageError("--format: want table or json, got \"" + f->format + "\"");
    std::vector<std::vector<std::string>> rows{{"NAME", "STATUS", "CONFIG FILES"}};
    for (const auto& n : names) {
      std::string status = status_of(projects[n]);
      if (!projects[n].last_error.empty())
        status = status.empty() || status == "failed" ? "apply failed" : status + ", apply failed";
      rows.push_back({n, status, projects[n].config_files});
    }
    print_table(rows);
  });
}

}  // namespace

static void register_compose(CLI::App& app, GlobalOptions& global) {
  add_up(app, global, nullptr);
  add_down(app, global, nullptr);
  add_ls(app, global);

  auto outer = std::make_shared<ProjectFlags>();
  auto* compose = add_command(app, "compose", "Compose project commands (up, down, ps, logs, exec, ...)");
  add_project_flags(compose, *outer);
  compose->require_subcommand(1);
  add_up(*compose, global, outer);
  add_down(*compose, global, outer);
  add_ps(*compose, global, outer);
  add_logs(*compose, global, outer);
  add_exec(*compose, global, outer);
  add_verbs(*compose, global, outer);
  add_run(*compose, global, outer);
  add_top(*compose, global, outer);
  add_images(*compose, global, outer);
  add_compose_pull(*compose, global, outer);
  add_compose_push(*compose, global, outer);
  add_config_command(*compose, outer);
  add_ls(*compose, global);
}

BERTH_REGISTER_COMMANDS(200, register_compose, "up", "down", "ls", "compose");

}  // namespace berth::cli
