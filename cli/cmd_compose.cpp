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
#include <signal.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <memory>
#include <set>
#include <sstream>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "cli/cli.h"
#include "cli/project_flags.h"
#include "net/ports.h"
#include "reconciler/container_network.h"
#include "reconciler/driver.h"
#include "reconciler/image_rootfs.h"
#include "reconciler/observe.h"
#include "reconciler/reconciler.h"
#include "runtime/logfile.h"

namespace berth::cli {

namespace {

namespace label = reconciler::label;
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

std::string human_duration(double seconds) {
  long s = static_cast<long>(seconds);
  if (s < 1) return "Less than a second";
  if (s == 1) return "1 second";
  if (s < 60) return std::to_string(s) + " seconds";
  long m = s / 60;
  if (m == 1) return "About a minute";
  if (m < 60) return std::to_string(m) + " minutes";
  long h = s / 3600;
  if (h == 1) return "About an hour";
  if (h < 48) return std::to_string(h) + " hours";
  long d = h / 24;
  if (d < 14) return std::to_string(d) + " days";
  if (d < 60) return std::to_string(d / 7) + " weeks";
  if (d < 730) return std::to_string(d / 30) + " months";
  return std::to_string(d / 365) + " years";
}

double parse_time(const std::string& t) {
  if (t.empty()) return 0;
  struct tm tm {};
  const char* rest = ::strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) return 0;
  double frac = *rest == '.' ? std::strtod(rest, nullptr) : 0;
  return static_cast<double>(::timegm(&tm)) + frac;
}

double now_seconds() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
}

std::string ago(const std::string& t) { return human_duration(now_seconds() - parse_time(t)) + " ago"; }

// compose's STATUS column: "Up 3 seconds (healthy)", "Exited (0) 2 seconds ago".
std::string status_text(const runtime::Container& c) {
  const auto& st = c.state;
  std::string health = st.health.status.empty() ? "" : " (" + (st.health.status == "starting" ? std::string("health: starting") : st.health.status) + ")";
  switch (st.status) {
    case runtime::Status::Created: return "Created";
    case runtime::Status::Running: return "Up " + human_duration(now_seconds() - parse_time(st.started_at)) + health;
    case runtime::Status::Paused: return "Up " + human_duration(now_seconds() - parse_time(st.started_at)) + " (Paused)";
    case runtime::Status::Restarting: return "Restarting (" + std::to_string(st.exit_code) + ")";
    case runtime::Status::Exited:
      return "Exited (" + std::to_string(st.exit_code) + ") " + ago(st.finished_at);
    case runtime::Status::Dead: return "Dead";
  }
  return "";
}

std::string state_word(const runtime::Container& c) { return runtime::to_string(c.state.status); }

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

std::string ports_text(const runtime::Runtime& rt, const runtime::Container& c) {
  std::string out;
  if (c.state.status != runtime::Status::Running && c.state.status != runtime::Status::Paused) return out;
  try {
    for (const auto& j : reconciler::container_endpoints(rt, c))
      for (const auto& p : j.endpoint.ports)
        out += (out.empty() ? "" : ", ") +
               net::format_port(p.host_ip.empty() ? "0.0.0.0" : p.host_ip, p.host_port, p.container_port, p.protocol);
  } catch (const Error&) {
  }
  return out;
}

void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width;
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 3, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    std::cout << line << "\n";
  }
}

// ------------------------------------------------------------------ logs

std::atomic<bool> g_interrupted{false};
extern "C" void on_interrupt(int) { g_interrupted = true; }

struct InterruptGuard {
  struct sigaction old_int {}, old_term {};
  InterruptGuard() {
    g_interrupted = false;
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

struct LogOptions {
  bool follow = false;
  bool timestamps = false;
  bool no_prefix = false;
  std::string tail = "all";
};

// Follows the logs of a set of containers (picked again every round, so a
// follow sees containers created later), prefixing "web-1  | ", merged in
// time order. Returns when not following, on ctrl-c, or when `until` says so.
void stream_logs(const runtime::Runtime& rt, const std::string& project, const std::vector<std::string>& services,
                 const LogOptions& o, const std::function<bool()>& until = {}) {
  struct Source {
    std::string prefix;
    std::string path;
    std::size_t offset = 0;
  };
  std::map<std::string, Source> sources;  // by container id
  std::size_t width = 0;
  auto prefix_of = [&](const std::string& name) {
    std::string p = name;
    if (p.size() < width) p += std::string(width - p.size(), ' ');
    return p + "  | ";
  };
  auto print = [&](std::vector<std::pair<runtime::LogEntry, std::string>>& lines) {
    std::stable_sort(lines.begin(), lines.end(),
                     [](const auto& a, const auto& b) { return a.first.time < b.first.time; });
    for (auto& [e, name] : lines) {
      std::string text = e.log;
      if (!text.empty() && text.back() != '\n') text += '\n';
      std::string out = (o.no_prefix ? "" : prefix_of(name)) + (o.timestamps ? e.time + " " : "") + text;
      std::cout << out;
    }
    std::cout.flush();
  };
  bool first = true;
  for (;;) {
    std::vector<std::pair<runtime::LogEntry, std::string>> lines;
    auto containers = project_containers(rt, project, services);
    for (const auto& c : containers) width = std::max(width, short_name(c).size());
    for (const auto& c : containers) {
      if (c.spec.log.driver == "none") continue;
      auto [it, added] = sources.emplace(c.id, Source{short_name(c), rt.log_path(c)});
      Source& s = it->second;
      if (added) {
        std::size_t end = 0;
        auto entries = runtime::read_json_log(s.path, c.spec.log.max_file, &end);
        s.offset = end;
        std::size_t from = 0;
        if (first && o.tail != "all") {
          long n = std::strtol(o.tail.c_str(), nullptr, 10);
          if (n >= 0 && static_cast<std::size_t>(n) < entries.size()) from = entries.size() - static_cast<std::size_t>(n);
        }
        for (std::size_t i = from; i < entries.size(); ++i) lines.emplace_back(entries[i], s.prefix);
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
        if (runtime::parse_log_line(line, e)) lines.emplace_back(e, s.prefix);
      }
      s.offset = end + 1;
    }
    print(lines);
    first = false;
    if (!o.follow || g_interrupted) return;
    if (until && until()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
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
};

struct DownFlags {
  ProjectFlags project;
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

void run_up(const UpFlags& f, const GlobalOptions& g) {
  if (f.force_recreate && f.no_recreate) throw UsageError("--force-recreate and --no-recreate are incompatible");
  auto scale = parse_scale(f.scale);
  spec::Project project = load_project_or_exit(f.project, f.services);
  runtime::Paths paths = paths_of(g);
  reconciler::DesiredOptions desired_options;
  desired_options.scale = scale;
  // Resolve each service's image once (so that a retagged image recreates
  // its containers); why one is missing is kept for the error below.
  std::map<std::string, std::string> image_errors;
  for (const auto& [name, s] : project.services) {
    if (s.image.empty()) {
      image_errors[name] = "no image (berth cannot build images yet)";
      continue;
    }
    try {
      desired_options.image_ids[name] = reconciler::resolve_image(g.root, s.image).id;
    } catch (const Error& e) {
      image_errors[name] = e.what();
    }
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
  reconciler::ExecutorOptions eopts;
  eopts.max_parallel = 1;  // the driver blocks; one at a time keeps progress readable
  eopts.stop_timeout = std::chrono::seconds(f.timeout >= 0 ? f.timeout : 10);
  eopts.on_event = print_event;
  // TODO(supervisor): once supervisor::ensure_daemon() lands, call it here
  // so that `berth serve` enforces restart policies and runs healthchecks.
  auto result = reconciler::run_plan(plan, driver, eopts);
  if (!result.ok()) {
    for (const auto& e : result.errors) std::cerr << "Error " << e << "\n";
    exit_with(1);
  }
  std::vector<std::string> selected = f.services;
  if (f.wait) wait_running(paths, project.name, selected, f.wait_timeout);
  if (f.detach || f.wait) return;
  // Attached: stream the logs until ctrl-c (which stops the app, as
  // compose does) or until every container has exited.
  InterruptGuard guard;
  runtime::Runtime rt(paths);
  LogOptions lo;
  lo.follow = true;
  stream_logs(rt, project.name, selected, lo, [&] {
    for (const auto& c : project_containers(rt, project.name, selected))
      if (c.state.status == runtime::Status::Running || c.state.status == runtime::Status::Paused ||
          c.state.status == runtime::Status::Restarting)
        return false;
    return true;
  });
  if (g_interrupted) {
    std::cerr << "Gracefully stopping... (press Ctrl+C again to force)\n";
    stop_project(paths, project.name, selected, given(f.timeout));
  }
}

void run_down(const DownFlags& f, const GlobalOptions& g) {
  reconciler::DownOptions options;
  if (!f.project.project_name.empty() && f.project.files.empty()) {
    // -p alone: the project need not have a compose file here.
    options.project = f.project.project_name;
    try {
      spec::Project project = load_project_or_exit(f.project);
      options.services.emplace();
      for (const auto& [name, _] : project.services) options.services->insert(name);
    } catch (const Error&) {
    }
  } else {
    spec::Project project = load_project_or_exit(f.project);
    options.project = project.name;
    options.services.emplace();
    for (const auto& [name, _] : project.services) options.services->insert(name);
  }
  options.remove_volumes = f.volumes;
  options.remove_orphans = f.remove_orphans;
  runtime::Paths paths = paths_of(g);
  reconciler::ObservedState observed =
      is_directory(g.root) ? reconciler::observe(paths, options.project) : reconciler::ObservedState{};
  reconciler::Plan plan = reconciler::plan_down(observed, options);
  if (f.dry_run) {
    std::cout << reconciler::render(plan);
    return;
  }
  for (const auto& w : plan.warnings) std::cerr << "WARN " << w << "\n";
  reconciler::DriverOptions dopts;
  dopts.stop_timeout = given(f.timeout);
  dopts.remove_anonymous_volumes = f.volumes;
  reconciler::RuntimeDriver driver(paths, dopts);
  reconciler::ExecutorOptions eopts;
  eopts.max_parallel = 1;
  eopts.stop_timeout = std::chrono::seconds(f.timeout >= 0 ? f.timeout : 10);
  eopts.on_event = print_event;
  auto result = reconciler::run_plan(plan, driver, eopts);
  if (!result.ok()) {
    for (const auto& e : result.errors) std::cerr << "Error " << e << "\n";
    exit_with(1);
  }
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
  cmd->callback([up, outer, &g] {
    UpFlags f = *up;
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
  cmd->callback([down, outer, &g] {
    DownFlags f = *down;
    if (outer) f.project = merged(*outer, f.project);
    run_down(f, g);
  });
}

// ------------------------------------------------------------------ verbs

void stop_project(const runtime::Paths& paths, const std::string& project, const std::vector<std::string>& services,
                  std::optional<int> timeout) {
  runtime::Runtime rt(paths);
  reconciler::DriverOptions o;
  o.stop_timeout = timeout;
  reconciler::RuntimeDriver driver(paths, o);
  auto containers = project_containers(rt, project, services);
  std::reverse(containers.begin(), containers.end());  // dependents (created later) first
  for (const auto& c : containers) {
    if (c.state.status != runtime::Status::Running && c.state.status != runtime::Status::Paused) continue;
    std::cerr << "Container " << c.spec.name << "  Stopping\n";
    driver.stop(c.id, std::nullopt);
    std::cerr << "Container " << c.spec.name << "  Stopped\n";
  }
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
                       {"Publishers", ports_text(rt, c)},
                       {"Labels", c.spec.labels}});
      }
      std::cout << arr.dump() << "\n";
      return;
    }
    if (f->format != "table") throw UsageError("--format: want table or json, got \"" + f->format + "\"");
    std::vector<std::vector<std::string>> rows{{"NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"}};
    for (const auto& c : shown)
      rows.push_back({c.spec.name, c.spec.image, command_of(c), label_of(c, label::service), ago(c.state.created_at),
                      status_text(c), ports_text(rt, c)});
    print_table(rows);
  });
}

struct LogsFlags {
  ProjectFlags project;
  std::vector<std::string> services;
  LogOptions options;
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
  cmd->callback([f, outer, &g] {
    ProjectFlags pf = outer ? merged(*outer, f->project) : f->project;
    std::string project = project_name(pf);
    runtime::Runtime rt(paths_of(g));
    InterruptGuard guard;
    stream_logs(rt, project, f->services, f->options);
  });
}

struct ExecFlags {
  ProjectFlags project;
  int index = 1;
  bool detach = false, no_tty = false, interactive = true;
  std::string user, workdir;
  std::vector<std::string> env;
};

void add_exec(CLI::App& compose, const GlobalOptions& g, const std::shared_ptr<ProjectFlags>& outer) {
  auto f = std::make_shared<ExecFlags>();
  auto* cmd = add_command(compose, "exec", "Execute a command in a running service container");
  // -f/-p/... belong to `compose` (docker compose), not to this subcommand.
  cmd->add_option("--index", f->index, "Index of the container if the service has several replicas")->capture_default_str();
  cmd->add_flag("-d,--detach", f->detach, "Detached mode: run the command in the background");
  cmd->add_flag("-T,--no-TTY", f->no_tty, "Disable pseudo-TTY allocation");
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
    for (const auto& e : f->env) {
      if (e.find('=') != std::string::npos) p.env.push_back(e);
      else if (const char* v = std::getenv(e.c_str())) p.env.push_back(e + "=" + v);
    }
    exit_with(rt.exec(target->id, p, f->detach));
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
    };
    std::map<std::string, Project> projects;
    if (is_directory(g.root)) {
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
      std::string s;
      for (const auto& [state, n] : p.states) s += (s.empty() ? "" : ", ") + state + "(" + std::to_string(n) + ")";
      return s;
    };
    std::vector<std::string> names;
    for (const auto& [name, p] : projects)
      if (f->all || p.states.count("running") || p.states.count("paused") || p.states.count("restarting"))
        names.push_back(name);
    if (f->quiet) {
      for (const auto& n : names) std::cout << n << "\n";
      return;
    }
    if (f->format == "json") {
      json arr = json::array();
      for (const auto& n : names)
        arr.push_back({{"Name", n}, {"Status", status_of(projects[n])}, {"ConfigFiles", projects[n].config_files}});
      std::cout << arr.dump() << "\n";
      return;
    }
    if (f->format != "table") throw UsageError("--format: want table or json, got \"" + f->format + "\"");
    std::vector<std::vector<std::string>> rows{{"NAME", "STATUS", "CONFIG FILES"}};
    for (const auto& n : names) rows.push_back({n, status_of(projects[n]), projects[n].config_files});
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
  add_ls(*compose, global);
}

BERTH_REGISTER_COMMANDS(200, register_compose);

}  // namespace berth::cli
