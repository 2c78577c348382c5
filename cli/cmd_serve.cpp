// `berth serve` (the supervisor daemon), `berth events`, and the hidden
// `__restart` the daemon runs to start a container by its restart policy.
#include <time.h>

#include <iostream>
#include <set>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/fs.h"
#include "base/time.h"
#include "cli/cli.h"
#include "cli/version.h"
#include "supervisor/client.h"
#include "supervisor/policy.h"
#include "supervisor/serve.h"

namespace berth::cli {

namespace {

runtime::Paths paths_for(const GlobalOptions& g) { return runtime::Paths{g.root, g.run_root, {}}; }

// --since/--until: a unix time ("1700000000.5"), RFC 3339, or a duration
// before now ("10m", "1h30m"), as docker accepts them. Returns "" for "".
std::string time_param(const std::string& v, const char* flag) {
  if (v.empty()) return v;
  if (v.find('T') != std::string::npos) {
    if (supervisor::parse_rfc3339_ns(v) == 0) throw UsageError(std::string("invalid ") + flag + " time " + v);
    return v;
  }
  char* end = nullptr;
  double num = std::strtod(v.c_str(), &end);
  if (end != v.c_str() && *end == '\0') return v;
  // A Go-style duration: sum of <number><unit>.
  double seconds = 0;
  const char* p = v.c_str();
  while (*p) {
    double n = std::strtod(p, &end);
    if (end == p) throw UsageError(std::string("invalid ") + flag + " value " + v);
    p = end;
    double unit = 0;
    if (*p == 'h') unit = 3600;
    else if (*p == 'm' && p[1] == 's') unit = 0.001, ++p;
    else if (*p == 'm') unit = 60;
    else if (*p == 's') unit = 1;
    else throw UsageError(std::string("invalid ") + flag + " value " + v);
    ++p;
    seconds += n * unit;
  }
  (void)num;
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  double now = static_cast<double>(ts.tv_sec) + ts.tv_nsec / 1e9;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9f", now - seconds);
  return buf;
}

std::string url_escape(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') out += static_cast<char>(c);
    else out += {'%', hex[c >> 4], hex[c & 15]};
  }
  return out;
}

// docker's plain events line: TIME TYPE ACTION ID (k=v, ...)
std::string human_event(const nlohmann::json& e) {
  int64_t ns = e.value("timeNano", int64_t{0});
  struct timespec ts {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  std::string line = format_rfc3339_nano(ts) + " " + e.value("Type", "") + " " + e.value("Action", "") + " " +
                     e["Actor"].value("ID", "");
  std::string attrs;
  for (auto& [k, v] : e["Actor"]["Attributes"].items())
    attrs += (attrs.empty() ? "" : ", ") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  if (!attrs.empty()) line += " (" + attrs + ")";
  return line;
}

}  // namespace

static void register_serve_commands(CLI::App& app, GlobalOptions& global) {
  auto* serve = add_command(app, "serve", "Run the supervisor: API socket, restart policies, healthchecks, DNS");
  auto resync_ms = std::make_shared<int>(5000);
  auto no_dns = std::make_shared<bool>(false);
  serve->add_option("--resync-interval", *resync_ms, "Milliseconds between full resyncs (the safety net)")
      ->capture_default_str()
      ->check(CLI::Range(100, 3'600'000));
  serve->add_flag("--no-dns", *no_dns, "Do not host the embedded DNS server");
  auto watch = std::make_shared<std::string>();
  auto watch_ms = std::make_shared<int>(10'000);
  serve->add_option("--watch", *watch,
                    "GitOps: keep every compose file in DIR applied (DIR/NAME.yaml or DIR/NAME/compose.yaml is "
                    "project NAME; deleting it takes the project down)");
  serve->add_option("--watch-interval", *watch_ms, "Milliseconds between rescans of the --watch directory (the safety net)")
      ->capture_default_str()
      ->check(CLI::Range(100, 3'600'000));
  auto retry_ms = std::make_shared<int>(1000);
  serve->add_option("--watch-retry", *retry_ms,
                    "Milliseconds before a failed --watch apply is tried again (doubling after each failure, up to "
                    "a minute)")
      ->capture_default_str()
      ->check(CLI::Range(100, 60'000));
  auto enforce_ms = std::make_shared<int>(30'000);
  serve->add_option("--watch-resync", *enforce_ms,
                    "Milliseconds between checks that the --watch projects still exist (one taken down by hand is "
                    "applied again)")
      ->capture_default_str()
      ->check(CLI::Range(100, 3'600'000));
  // Hidden: a serve the CLI started (ensure_daemon); a `berth serve` the
  // user starts takes over from it.
  auto started_by_cli = std::make_shared<bool>(false);
  serve->add_flag("--started-by-cli", *started_by_cli, "")->group("");
  serve->callback([resync_ms, no_dns, watch, watch_ms, retry_ms, enforce_ms, started_by_cli, &global] {
    supervisor::ServeOptions o;
    o.paths = paths_for(global);
    o.version = kVersion;
    o.git_commit = kGitCommit;
    o.resync_interval_ms = *resync_ms;
    o.dns = !*no_dns;
    if (!watch->empty() && !is_directory(*watch)) throw UsageError("--watch: " + *watch + " is not a directory");
    o.watch_dir = *watch;
    o.watch_rescan_ms = *watch_ms;
    o.watch_retry_ms = *retry_ms;
    o.watch_resync_ms = *enforce_ms;
    o.started_by_cli = *started_by_cli;
    supervisor::serve(o);
  });

  auto* events = add_command(app, "events", "Get real time events from the berth daemon");
  auto filters = std::make_shared<std::vector<std::string>>();
  auto since = std::make_shared<std::string>();
  auto until = std::make_shared<std::string>();
  auto as_json = std::make_shared<bool>(false);
  auto format = std::make_shared<std::string>();
  events->add_option("-f,--filter", *filters, "Filter output (type=, container=, event=, network=, label=)");
  events->add_option("--since", *since, "Show events created since timestamp or duration (e.g. 10m)");
  events->add_option("--until", *until, "Stream events until this timestamp or duration");
  events->add_flag("--json", *as_json, "One JSON object per line");
  events->add_option("--format", *format, "'json' for one JSON object per line");
  events->callback([filters, since, until, as_json, format, &global] {
    nlohmann::json f = nlohmann::json::object();
    for (auto& kv : *filters) {
      auto eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) throw UsageError("bad format of filter (expected name=value): " + kv);
      std::string key = kv.substr(0, eq);
      static const std::set<std::string> known{"type", "container", "event", "network", "label"};
      if (!known.count(key)) throw UsageError("invalid filter '" + key + "'");
      f[key].push_back(kv.substr(eq + 1));
    }
    if (!format->empty() && *format != "json" && *format != "{{json .}}")
      throw UsageError("only --format json is supported");
    bool json_out = *as_json || !format->empty();
    std::string target = "/events?";
    if (!f.empty()) target += "filters=" + url_escape(f.dump()) + "&";
    if (!since->empty()) target += "since=" + url_escape(time_param(*since, "--since")) + "&";
    if (!until->empty()) target += "until=" + url_escape(time_param(*until, "--until")) + "&";
    target.pop_back();
    runtime::Paths paths = paths_for(global);
    std::string sock = supervisor::socket_path(paths);
    if (!supervisor::daemon_answers(paths))
      throw Error("Cannot connect to the berth daemon at unix://" + sock + ". Is 'berth serve' running?", 0, 1);
    supervisor::http_stream_lines(sock, target, [&](const std::string& line) {
      if (line.empty()) return true;
      if (json_out) {
        std::cout << line << "\n";
      } else {
        auto e = nlohmann::json::parse(line, nullptr, false);
        if (e.is_object()) std::cout << human_event(e) << "\n";
      }
      std::cout.flush();
      return true;
    });
  });

  // Hidden: the daemon's way to start a container by its restart policy.
  auto* restart = app.add_subcommand("__restart", "");
  restart->group("");
  auto id = std::make_shared<std::string>();
  auto count = std::make_shared<int>(0);
  restart->add_option("ID", *id)->required();
  restart->add_option("COUNT", *count)->required();
  auto even_if_stopped = std::make_shared<bool>(false);
  restart->add_flag("--even-if-stopped", *even_if_stopped, "");
  restart->callback([id, count, even_if_stopped, &global] {
    supervisor::restart_by_policy(paths_for(global), *id, *count, *even_if_stopped);
  });
}

BERTH_REGISTER_COMMANDS(600, register_serve_commands, "serve", "events", "__restart");

}  // namespace berth::cli
