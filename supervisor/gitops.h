// GitOps for `berth serve --watch DIR`: every compose file in DIR is one
// project, kept applied. `*.yaml`/`*.yml` files directly in DIR are named
// after the file (without its extension); a subdirectory holding
// compose.yaml, compose.yml, docker-compose.yml, docker-compose.yaml or
// berth.yaml is named after the directory (both normalized as compose
// normalizes project names). A change (libuv fs events on DIR and its
// subdirectories, debounced; plus a slow rescan as a safety net) applies
// the project with `berth up -d --remove-orphans` in a child process, so
// the daemon's loop never blocks; applies are serialized per project. A
// file that does not validate fails its apply before anything changes: the
// running project is left alone and the error is kept, logged and emitted
// as a `reconcile` event. A failed apply (or down) is tried again with
// backoff (an image that shows up later, a port that frees), not only when
// the file changes. A deleted file takes its project down (`berth down`,
// volumes kept), found again after a restart by the config-file label of
// the project's containers. A periodic resync enforces what is watched, as
// a controller: an applied project whose containers are all gone (`berth
// down -p NAME` by hand), or one of whose containers was removed (`berth rm
// -f app-web-1`, a scale-down by hand), is applied again, and says why in a
// `reconcile` event. Containers that exited or were stopped are left to
// their restart policies.
#pragma once

#include <uv.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/runtime.h"

namespace berth::supervisor {

// One project found in the watched directory.
struct WatchSource {
  std::string name;       // normalized project name
  std::string file;       // the compose file (absolute)
  std::string directory;  // the project directory (DIR, or the subdirectory)
  bool is_subdirectory = false;
  bool operator==(const WatchSource&) const = default;
};

// The projects in `dir`, by name. A name claimed twice (app.yaml and app/,
// or app.yml) keeps the first in sorted order; `problems` gets a line for
// the other. Hidden entries (".x") and editor leftovers ("x~") are skipped.
std::map<std::string, WatchSource> discover_projects(const std::string& dir, std::vector<std::string>* problems = nullptr);

// A fingerprint ("content:<16 hex>") of what a project's apply reads: its
// compose file and the .env beside it (a subdirectory project: every
// regular file in it). It only tells "changed since the last apply"; it is
// not a digest anyone verifies, so a 64-bit hash of the bytes does (and
// serve stays clear of OpenSSL's provider set-up, ~2 MiB resident).
std::string source_hash(const WatchSource& source);


// What a failed `up`/`down` printed, without its progress lines
// ("Container app-web-1  Started") and warnings: the error lines.
std::string apply_error_text(const std::string& output);

// What the API reports for one watched project.
struct WatchStatus {
  std::string name, file;
  std::string state;        // applying, applied, failed, removing, removed
  std::string config_hash;  // of the last successful apply
  std::string applied_at;   // RFC 3339, of the last successful apply
  std::string last_error;   // of the last attempt; "" after a success
  std::string error_at;
  int failures = 0;         // failed attempts in a row (each retried with backoff)
  std::string cause;        // why the last apply or down ran
};
nlohmann::json to_json(const WatchStatus& status);

class GitOps {
 public:
  struct Options {
    std::string dir;
    std::string exe;  // the berth binary
    runtime::Paths paths;
    int debounce_ms = 300;
    int rescan_ms = 10'000;
    // After a failed apply or down: the first retry's delay, doubled after
    // each failure in a row, at most retry_max_ms.
    int retry_ms = 1000;
    int retry_max_ms = 60'000;
    int resync_ms = 30'000;  // how often the watched projects are enforced
    std::size_t max_parallel = 2;  // applies running at once (different projects)
  };
  // (action, project, attributes): "apply", "error", "remove", "resync"
  using EmitFn = std::function<void(const std::string&, const std::string&, nlohmann::json)>;
  // What the daemon sees of one project: its config files label and the
  // names of its service containers (one-off `run` containers left out).
  struct ProjectSeen {
    std::string config_files;
    std::set<std::string> containers;
  };
  // Every project that has containers.
  using ProjectsFn = std::function<std::map<std::string, ProjectSeen>()>;

  GitOps(uv_loop_t* loop, Options options, EmitFn emit, ProjectsFn projects);
  ~GitOps();
  GitOps(const GitOps&) = delete;
  GitOps& operator=(const GitOps&) = delete;

  // Watches and applies what is there. Throws berth::Error when DIR is not a directory.
  void start();
  // Closes every handle; running applies go on to their end on their own.
  void stop();

  std::vector<WatchStatus> status() const;
  const std::string& dir() const { return opt_.dir; }

  // An fs event: scan once things are quiet for debounce_ms.
  void start_debounce();

 private:
  struct Entry;
  struct Child;
  enum class Due { nothing, up, down };
  void scan();
  void resync();
  Due due(const Entry& e) const;
  void evaluate(Entry& e);
  void arm_retry();
  void spawn(Entry& e, bool down);
  void finished(const Child& child, int64_t exit_status);
  void watch_subdirectories();
  void pump();

  uv_loop_t* loop_;
  Options opt_;
  EmitFn emit_;
  ProjectsFn projects_;
  uv_fs_event_t* dir_watch_ = nullptr;
  std::map<std::string, uv_fs_event_t*> sub_watches_;  // by subdirectory path
  uv_timer_t* debounce_ = nullptr;
  uv_timer_t* rescan_ = nullptr;
  uv_timer_t* retry_ = nullptr;   // fires at the soonest retry of a failed project
  uv_timer_t* resync_ = nullptr;
  std::map<std::string, std::unique_ptr<Entry>> entries_;
  std::set<Child*> children_;
  std::vector<std::string> queue_;  // projects waiting for a free apply slot
  std::size_t running_ = 0;
  bool stopped_ = false;
  std::string problems_;  // the last scan's naming problems, logged once
};

}  // namespace berth::supervisor
