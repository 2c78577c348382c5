// GitOps directory watch: see gitops.h.
#include "supervisor/gitops.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <set>
#include <sstream>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/time.h"
#include "spec/spec.h"
#include "supervisor/spawn.h"

namespace berth::supervisor {

using json = nlohmann::json;

namespace {

// compose's discovery order, then berth's own name.
const char* const kComposeFiles[] = {"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml",
                                     "berth.yaml"};

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<std::string> sorted_entries(const std::string& dir) {
  std::vector<std::string> names;
  DIR* d = ::opendir(dir.c_str());
  if (!d) throw_errno("cannot read " + dir);
  while (auto* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.empty() || n[0] == '.' || n.back() == '~') continue;
    names.push_back(std::move(n));
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

bool is_regular(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

std::string hex(const unsigned char* p, unsigned n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) out += {digits[p[i] >> 4], digits[p[i] & 15]};
  return out;
}

}  // namespace

std::map<std::string, WatchSource> discover_projects(const std::string& dir, std::vector<std::string>* problems) {
  std::map<std::string, WatchSource> out;
  std::string root = path_absolute(dir);
  auto claim = [&](WatchSource s, const std::string& entry) {
    if (s.name.empty()) {
      if (problems) problems->push_back(path_join(root, entry) + ": cannot name a project after \"" + entry + "\"");
      return;
    }
    auto it = out.find(s.name);
    if (it != out.end()) {
      if (problems)
        problems->push_back(path_join(root, entry) + ": project \"" + s.name + "\" is already defined by " +
                            (it->second.is_subdirectory ? it->second.directory : it->second.file));
      return;
    }
    out.emplace(s.name, std::move(s));
  };
  for (const auto& entry : sorted_entries(root)) {
    std::string path = path_join(root, entry);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) continue;  // a dangling link, or gone meanwhile
    if (S_ISREG(st.st_mode)) {
      std::string stem;
      if (ends_with(entry, ".yaml")) stem = entry.substr(0, entry.size() - 5);
      else if (ends_with(entry, ".yml")) stem = entry.substr(0, entry.size() - 4);
      else continue;
      claim({spec::normalize_project_name(stem), path, root, false}, entry);
    } else if (S_ISDIR(st.st_mode)) {
      for (const char* f : kComposeFiles) {
        std::string file = path_join(path, f);
        if (!is_regular(file)) continue;
        claim({spec::normalize_project_name(entry), file, path, true}, entry);
        break;
      }
    }
  }
  return out;
}

std::string source_hash(const WatchSource& source) {
  std::vector<std::string> files;
  if (source.is_subdirectory) {
    for (const auto& entry : sorted_entries(source.directory))
      if (is_regular(path_join(source.directory, entry))) files.push_back(entry);
    if (is_regular(path_join(source.directory, ".env"))) files.push_back(".env");
  } else {
    files = {path_basename(source.file), ".env"};
  }
  std::string stream;
  for (const auto& f : files) {
    std::string data;
    if (!read_file_if_exists(path_join(source.directory, f), data)) continue;
    stream += f + '\0' + std::to_string(data.size()) + '\0' + data;
  }
  uint64_t h = std::hash<std::string>{}(stream);
  unsigned char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<unsigned char>(h >> (56 - 8 * i));
  return "content:" + hex(bytes, 8);
}

std::string apply_error_text(const std::string& output) {
  std::istringstream in(output);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line.rfind("WARN", 0) == 0) continue;
    // Progress: "Container app-web-1  Started", "Network app_default  Created".
    bool progress = false;
    for (const char* object : {"Container ", "Network ", "Volume ", "Image "}) {
      std::string o = object;
      if (line.rfind(o, 0) == 0) {
        auto two = line.find("  ", o.size());
        progress = two != std::string::npos && line.find(' ', o.size()) == two && line.find("Error") == std::string::npos;
      }
    }
    if (progress) continue;
    out += (out.empty() ? "" : "\n") + line;
    if (out.size() > 4096) {
      out.resize(4096);
      break;
    }
  }
  return out;
}

json to_json(const WatchStatus& s) {
  return {{"Name", s.name},          {"File", s.file},           {"State", s.state},
          {"ConfigHash", s.config_hash}, {"AppliedAt", s.applied_at}, {"LastError", s.last_error},
          {"ErrorAt", s.error_at},   {"Failures", s.failures},   {"Cause", s.cause}};
}

// ---------------------------------------------------------------------------

struct GitOps::Entry {
  WatchSource source;
  bool present = false;      // in DIR at the last scan
  bool managed = false;      // applied (or tried) by us, or its containers point into DIR
  std::string disk_hash;     // at the last scan
  std::string attempted;     // the hash of the last apply, whatever its outcome
  bool busy = false, queued = false;
  // The last attempt failed (status.failures > 0): whether it was a down,
  // and when (uv_now) the same attempt is due again.
  bool failed_down = false;
  uint64_t retry_at = 0;
  uint64_t finished_at = 0;  // uv_now when the last attempt ended
  // resync: why the project must be applied again though its file did not
  // change; and that it was, so a project that has no containers even
  // when applied is not applied again at every resync.
  std::string drift;
  bool drift_applied = false;
  // The service containers the project had once the last apply settled
  // (taken at the first resync after it): one of them gone means drift.
  std::set<std::string> expected;
  bool expect_pending = false;
  WatchStatus status;
};

struct GitOps::Child {
  uv_process_t process;
  GitOps* self;
  std::string name, hash, log, cause;
  bool down;
};

GitOps::GitOps(uv_loop_t* loop, Options options, EmitFn emit, ProjectsFn projects)
    : loop_(loop), opt_(std::move(options)), emit_(std::move(emit)), projects_(std::move(projects)) {
  opt_.dir = path_absolute(opt_.dir);
  while (opt_.dir.size() > 1 && opt_.dir.back() == '/') opt_.dir.pop_back();
}

GitOps::~GitOps() { stop(); }

namespace {

template <typename T>
void close_free(T* h) {
  if (!h || uv_is_closing(reinterpret_cast<uv_handle_t*>(h))) return;
  uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* x) { delete reinterpret_cast<T*>(x); });
}

uv_fs_event_t* watch_path(uv_loop_t* loop, const std::string& path, void* data) {
  auto* w = new uv_fs_event_t;
  uv_fs_event_init(loop, w);
  w->data = data;
  int rc = uv_fs_event_start(
      w, [](uv_fs_event_t* h, const char*, int, int) { static_cast<GitOps*>(h->data)->start_debounce(); },
      path.c_str(), 0);
  if (rc != 0) {
    spdlog::warn("gitops: cannot watch {}: {} (the rescan still sees changes)", path, uv_strerror(rc));
    close_free(w);
    return nullptr;
  }
  return w;
}

}  // namespace

void GitOps::start() {
  if (!is_directory(opt_.dir)) throw Error("serve --watch: " + opt_.dir + " is not a directory", 0, 1);
  make_dirs(opt_.paths.run_root + "/gitops", 0700);
  debounce_ = new uv_timer_t;
  uv_timer_init(loop_, debounce_);
  debounce_->data = this;
  rescan_ = new uv_timer_t;
  uv_timer_init(loop_, rescan_);
  rescan_->data = this;
  uv_timer_start(rescan_, [](uv_timer_t* t) { static_cast<GitOps*>(t->data)->scan(); },
                 static_cast<uint64_t>(opt_.rescan_ms), static_cast<uint64_t>(opt_.rescan_ms));
  retry_ = new uv_timer_t;
  uv_timer_init(loop_, retry_);
  retry_->data = this;
  resync_ = new uv_timer_t;
  uv_timer_init(loop_, resync_);
  resync_->data = this;
  uv_timer_start(resync_, [](uv_timer_t* t) { static_cast<GitOps*>(t->data)->resync(); },
                 static_cast<uint64_t>(opt_.resync_ms), static_cast<uint64_t>(opt_.resync_ms));
  dir_watch_ = watch_path(loop_, opt_.dir, this);
  spdlog::info("gitops: watching {}", opt_.dir);
  scan();
}

void GitOps::start_debounce() {
  if (stopped_ || !debounce_) return;
  // Every event pushes the scan back: a burst (git pull) applies once.
  uv_timer_start(debounce_, [](uv_timer_t* t) { static_cast<GitOps*>(t->data)->scan(); },
                 static_cast<uint64_t>(opt_.debounce_ms), 0);
}

void GitOps::stop() {
  if (stopped_) return;
  stopped_ = true;
  close_free(debounce_);
  close_free(rescan_);
  close_free(retry_);
  close_free(resync_);
  close_free(dir_watch_);
  debounce_ = rescan_ = retry_ = resync_ = nullptr;
  dir_watch_ = nullptr;
  for (auto& [path, w] : sub_watches_) close_free(w);
  sub_watches_.clear();
  // A running apply goes on by itself (its output goes to a file, not to
  // us): closing the handle only forgets it.
  for (Child* c : children_) {
    c->self = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->process),
             [](uv_handle_t* h) { delete static_cast<Child*>(h->data); });
  }
  children_.clear();
}

void GitOps::watch_subdirectories() {
  std::set<std::string> want;
  try {
    for (const auto& entry : sorted_entries(opt_.dir)) {
      std::string path = path_join(opt_.dir, entry);
      if (is_directory(path) && want.size() < 512) want.insert(path);
    }
  } catch (const Error&) {
  }
  for (auto it = sub_watches_.begin(); it != sub_watches_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    close_free(it->second);
    it = sub_watches_.erase(it);
  }
  for (const auto& path : want)
    if (!sub_watches_.count(path))
      if (auto* w = watch_path(loop_, path, this)) sub_watches_[path] = w;
}

void GitOps::scan() {
  if (stopped_) return;
  std::vector<std::string> problems;
  std::map<std::string, WatchSource> found;
  try {
    found = discover_projects(opt_.dir, &problems);
  } catch (const Error& e) {
    // DIR gone or unreadable: take nothing down on that account.
    spdlog::warn("gitops: {}", e.what());
    return;
  }
  if (!dir_watch_ && is_directory(opt_.dir)) dir_watch_ = watch_path(loop_, opt_.dir, this);
  watch_subdirectories();
  std::string joined;
  for (const auto& p : problems) joined += p + "\n";
  if (joined != problems_) {
    for (const auto& p : problems) spdlog::error("gitops: {}", p);
    problems_ = joined;
  }
  for (auto& [name, e] : entries_) e->present = false;
  for (auto& [name, src] : found) {
    auto& slot = entries_[name];
    if (!slot) slot = std::make_unique<Entry>();
    Entry& e = *slot;
    e.source = src;
    e.present = true;
    e.status.name = name;
    e.status.file = src.file;
    try {
      e.disk_hash = source_hash(src);
    } catch (const Error& err) {
      spdlog::warn("gitops: {}: {}", src.file, err.what());
    }
  }
  // Projects whose containers say they came from DIR, and whose file is
  // gone (deleted while no serve ran): ours to take down.
  if (projects_) {
    for (auto& [name, seen] : projects_()) {
      const std::string& files = seen.config_files;
      if (entries_.count(name) || files.empty()) continue;
      std::string first = files.substr(0, files.find(','));
      std::string parent = path_dirname(first);
      if (parent != opt_.dir && path_dirname(parent) != opt_.dir) continue;
      auto e = std::make_unique<Entry>();
      e->managed = true;
      e->source = {name, first, parent, parent != opt_.dir};
      e->status.name = name;
      e->status.file = first;
      entries_[name] = std::move(e);
    }
  }
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& e = *it->second;
    if (!e.present && !e.managed && !e.busy && !e.queued) {
      it = entries_.erase(it);
      continue;
    }
    evaluate(e);
    ++it;
  }
  pump();
}

// The periodic enforcement: an applied project none of whose containers is
// left (taken down by hand), or one of whose service containers is gone
// since the apply settled, is applied again, with the cause in a
// `reconcile` event. Only the containers' existence is checked; a stopped
// or exited one is its restart policy's business, as it would be without
// GitOps.
void GitOps::resync() {
  if (stopped_ || !projects_) return;
  auto have = projects_();
  uint64_t now = uv_now(loop_);
  for (auto& [name, ep] : entries_) {
    Entry& e = *ep;
    // Serve learns of new containers through inotify: a project applied a
    // moment ago may not show yet.
    bool settled = e.present && !e.busy && !e.queued && e.status.state == "applied" && now - e.finished_at >= 2000;
    auto seen = have.find(name);
    if (seen != have.end()) {
      e.drift_applied = false;
      if (!settled) continue;
      if (e.expect_pending) {
        e.expected = seen->second.containers;
        e.expect_pending = false;
        continue;
      }
      std::string gone;
      for (auto& c : e.expected)
        if (!seen->second.containers.count(c)) gone += (gone.empty() ? "" : ", ") + c;
      if (gone.empty()) continue;
      e.drift = "container " + gone + " removed outside --watch";
    } else {
      if (!settled || e.drift_applied) continue;
      e.drift = "the project has no containers (taken down outside --watch)";
    }
    spdlog::info("gitops: resync {}: {}", name, e.drift);
    emit_("resync", name, {{"name", name}, {"file", e.source.file}, {"cause", e.drift}});
    evaluate(e);
  }
  pump();
}

GitOps::Due GitOps::due(const Entry& e) const {
  Due want = Due::nothing;
  if (e.present && !e.disk_hash.empty()) {
    if (e.disk_hash != e.attempted || e.status.failures > 0 || !e.drift.empty()) want = Due::up;
  } else if (!e.present && e.managed) {
    want = Due::down;
  }
  // The same attempt on the same content failed: not before its backoff.
  bool same = e.status.failures > 0 && e.failed_down == (want == Due::down) &&
              (want == Due::down || e.disk_hash == e.attempted);
  if (want != Due::nothing && same && uv_now(loop_) < e.retry_at) return Due::nothing;
  return want;
}

void GitOps::evaluate(Entry& e) {
  if (e.busy || e.queued || due(e) == Due::nothing) return;
  e.queued = true;
  queue_.push_back(e.status.name);
}

void GitOps::arm_retry() {
  if (stopped_ || !retry_) return;
  uint64_t soonest = 0;
  for (const auto& [name, e] : entries_)
    if (e->status.failures > 0 && !e->busy && (soonest == 0 || e->retry_at < soonest)) soonest = e->retry_at;
  if (soonest == 0) {
    uv_timer_stop(retry_);
    return;
  }
  uint64_t now = uv_now(loop_);
  uv_timer_start(retry_, [](uv_timer_t* t) { static_cast<GitOps*>(t->data)->scan(); },
                 soonest > now ? soonest - now : 0, 0);
}

void GitOps::pump() {
  while (!stopped_ && running_ < std::max<std::size_t>(1, opt_.max_parallel) && !queue_.empty()) {
    std::string name = queue_.front();
    queue_.erase(queue_.begin());
    auto it = entries_.find(name);
    if (it == entries_.end()) continue;
    Entry& e = *it->second;
    e.queued = false;
    Due d = due(e);
    if (d != Due::nothing) spawn(e, d == Due::down);
  }
}

void GitOps::spawn(Entry& e, bool down) {
  const std::string& name = e.status.name;
  std::vector<std::string> argv{opt_.exe, "--root", opt_.paths.root, "--run-root", opt_.paths.run_root};
  std::string cwd;
  if (down) {
    // -p alone: the project's file is gone. The working directory must not
    // hold a compose file either (down would narrow to its services).
    cwd = opt_.paths.run_root + "/gitops";
    argv.insert(argv.end(), {"down", "-p", name, "--project-directory", cwd});
  } else {
    argv.insert(argv.end(), {"up", "-d", "--remove-orphans", "-p", name});
    // A file: -f it (its project directory is DIR). A subdirectory: found
    // there as `berth up` finds it (overrides and .env included).
    if (!e.source.is_subdirectory) argv.insert(argv.end(), {"-f", e.source.file});
    cwd = e.source.directory;
  }
  // Why it runs, for the status and the events.
  bool retry = e.status.failures > 0 && e.failed_down == down && (down || e.disk_hash == e.attempted);
  std::string cause = retry        ? "retry " + std::to_string(e.status.failures) + " after a failure"
                      : down       ? "file removed"
                      : !e.drift.empty() ? "resync: " + e.drift
                      : e.attempted.empty() ? "file found"
                                            : "file changed";
  auto* child = new Child;
  child->self = this;
  child->name = name;
  child->cause = cause;
  child->down = down;
  child->hash = down ? std::string() : e.disk_hash;
  child->log = opt_.paths.run_root + "/gitops/" + name + ".log";
  child->process.data = child;
  int out = ::open(child->log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  // Its own session: a signal to serve's process group does not cut an
  // apply short, and it runs to its end even if serve dies meanwhile.
  SpawnOptions so;
  so.argv = std::move(argv);
  so.cwd = cwd;
  so.stdout_fd = so.stderr_fd = out;
  so.detached = true;
  auto exit_cb = [](uv_process_t* p, int64_t status, int sig) {
    auto* c = static_cast<Child*>(p->data);
    GitOps* self = c->self;
    if (self) {
      self->children_.erase(c);
      self->finished(*c, sig ? 128 + sig : status);
    }
    uv_close(reinterpret_cast<uv_handle_t*>(p), [](uv_handle_t* h) { delete static_cast<Child*>(h->data); });
  };
  int rc = spawn_child(loop_, &child->process, so, exit_cb);
  if (out >= 0) ::close(out);
  if (rc != 0) {
    spdlog::error("gitops: cannot run {}: {}", opt_.exe, uv_strerror(rc));
    uv_close(reinterpret_cast<uv_handle_t*>(&child->process),
             [](uv_handle_t* h) { delete static_cast<Child*>(h->data); });
    e.status.last_error = std::string("cannot run berth: ") + uv_strerror(rc);
    e.status.state = "failed";
    return;
  }
  children_.insert(child);
  ++running_;
  e.busy = true;
  e.status.cause = cause;
  if (!down && !e.drift.empty()) {
    e.drift.clear();
    e.drift_applied = true;
  }
  if (!down) e.managed = true;  // whatever it made before failing is ours to remove
  e.status.state = down ? "removing" : "applying";
  spdlog::info("gitops: {} {} ({}; {})", down ? "taking down" : "applying", name, e.source.file, cause);
}

void GitOps::finished(const Child& c, int64_t exit_status) {
  const std::string& name = c.name;
  bool down = c.down;
  if (running_ > 0) --running_;
  auto it = entries_.find(name);
  if (it != entries_.end()) {
    Entry& e = *it->second;
    e.busy = false;
    e.finished_at = uv_now(loop_);
    std::string output;
    read_file_if_exists(c.log, output);
    std::string previous = e.attempted;
    if (!down) e.attempted = c.hash;
    if (exit_status == 0) {
      e.status.last_error.clear();
      e.status.error_at.clear();
      e.status.failures = 0;
      if (down) {
        e.managed = false;
        e.status.state = "removed";
        spdlog::info("gitops: took {} down", name);
        emit_("remove", name, {{"name", name}, {"file", e.source.file}, {"cause", c.cause}});
      } else {
        e.status.state = "applied";
        e.expect_pending = true;
        e.expected.clear();
        e.status.config_hash = c.hash;
        e.status.applied_at = now_rfc3339_nano();
        spdlog::info("gitops: applied {} ({})", name, c.hash.substr(0, 19));
        emit_("apply", name, {{"name", name}, {"file", e.source.file}, {"hash", c.hash}, {"cause", c.cause}});
      }
    } else {
      std::string err = apply_error_text(output);
      if (err.empty()) err = (down ? "down" : "up") + std::string(" exited with status ") + std::to_string(exit_status);
      // Tried again with backoff: 1 s, 2 s, 4 s, ... (Options), whatever
      // failed (a missing image may be loaded, a port freed meanwhile).
      bool again = e.status.failures > 0 && e.failed_down == down && (down || previous == c.hash);
      e.status.failures = again ? e.status.failures + 1 : 1;
      e.failed_down = down;
      int64_t delay = opt_.retry_ms;
      for (int i = 1; i < e.status.failures && delay < opt_.retry_max_ms; ++i) delay *= 2;
      delay = std::min<int64_t>(delay, opt_.retry_max_ms);
      e.retry_at = e.finished_at + static_cast<uint64_t>(delay);
      // A failure like the previous one is not news: one log line, no event.
      bool news = !again || err != e.status.last_error;
      e.status.last_error = err;
      e.status.error_at = now_rfc3339_nano();
      e.status.state = "failed";
      const char* what = down ? "down" : "apply";
      if (news) {
        std::istringstream in(err);
        for (std::string line; std::getline(in, line);) spdlog::error("gitops: {} {}: {}", what, name, line);
        emit_("error", name, {{"name", name}, {"file", e.source.file}, {"error", err}, {"cause", c.cause}});
      } else {
        spdlog::warn("gitops: {} {} failed again ({} in a row)", what, name, e.status.failures);
      }
      spdlog::info("gitops: next try of {} in {} ms", name, delay);
    }
    if (!e.present && !e.managed && !e.queued) entries_.erase(it);
    else evaluate(e);
  }
  arm_retry();
  pump();
}

std::vector<WatchStatus> GitOps::status() const {
  std::vector<WatchStatus> out;
  for (const auto& [name, e] : entries_)
    if (e->present || e->busy || !e->status.last_error.empty()) out.push_back(e->status);
  return out;
}

}  // namespace berth::supervisor
