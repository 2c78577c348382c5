// berth serve: see serve.h.
#include <fcntl.h>
#include <http_parser.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>
#include <uv.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"
#include "base/human.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/time.h"
#include "images/images.h"
#include "net/dns.h"
#include "net/network.h"
#include "net/store.h"
#include "runtime/runtime.h"
#include "runtime/state.h"
#include "supervisor/client.h"
#include "supervisor/commands.h"
#include "supervisor/gitops.h"
#include "supervisor/spawn.h"
#include "supervisor/policy.h"
#include "supervisor/serve.h"

namespace berth::supervisor {

using json = nlohmann::json;
using runtime::Container;
using runtime::Status;

namespace {

bool is_running(Status s) { return s == Status::Running || s == Status::Paused; }

int64_t now_ns() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Closes a heap-allocated libuv handle and frees it once libuv is done.
template <typename T>
void close_and_free(T* h) {
  if (!h) return;
  if (uv_is_closing(reinterpret_cast<uv_handle_t*>(h))) return;
  uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* x) { delete reinterpret_cast<T*>(x); });
}

std::string status_text(const Container& c) {
  int64_t now = now_ns() / 1'000'000'000;
  auto since = [&](const std::string& t) { return human_duration(now - parse_rfc3339_ns(t) / 1'000'000'000); };
  switch (c.state.status) {
    case Status::Created: return "Created";
    case Status::Running:
    case Status::Paused: {
      std::string s = "Up " + since(c.state.started_at);
      if (c.state.status == Status::Paused) s += " (Paused)";
      else if (c.state.health.status == "starting") s += " (health: starting)";
      else if (!c.state.health.status.empty()) s += " (" + c.state.health.status + ")";
      return s;
    }
    case Status::Restarting: return "Restarting (" + std::to_string(c.state.exit_code) + ") " + since(c.state.finished_at) + " ago";
    case Status::Exited: return "Exited (" + std::to_string(c.state.exit_code) + ") " + since(c.state.finished_at) + " ago";
    case Status::Dead: return "Dead";
  }
  return "";
}

std::map<std::string, std::string> query_params(const std::string& query) {
  std::map<std::string, std::string> out;
  auto unescape = [](const std::string& s) {
    std::string r;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '+') r += ' ';
      else if (s[i] == '%' && i + 2 < s.size()) {
        r += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
        i += 2;
      } else r += s[i];
    }
    return r;
  };
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t amp = query.find('&', pos);
    std::string kv = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
    if (!kv.empty()) {
      size_t eq = kv.find('=');
      out[unescape(kv.substr(0, eq))] = eq == std::string::npos ? "" : unescape(kv.substr(eq + 1));
    }
    if (amp == std::string::npos) break;
    pos = amp + 1;
  }
  return out;
}

// docker's events filters: {"type":[..],"container":[..],"event":[..],"network":[..]}.
struct EventFilter {
  std::map<std::string, std::vector<std::string>> by;
  int64_t since_ns = 0;  // replay history from here (0: no replay)
  int64_t until_ns = 0;  // stop after (0: stream forever)

  bool matches(const json& e) const {
    auto any = [&](const std::string& key, auto pred) {
      auto it = by.find(key);
      if (it == by.end() || it->second.empty()) return true;
      return std::any_of(it->second.begin(), it->second.end(), pred);
    };
    std::string type = e.value("Type", ""), action = e.value("Action", "");
    const json& actor = e["Actor"];
    std::string id = actor.value("ID", "");
    std::string name = actor["Attributes"].value("name", "");
    bool ok = any("type", [&](const std::string& v) { return v == type; }) &&
              any("event", [&](const std::string& v) { return action == v || action.rfind(v + ":", 0) == 0; });
    if (ok && by.count("container") && !by.at("container").empty())
      ok = type == "container" && any("container", [&](const std::string& v) {
             return v == name || (!v.empty() && id.rfind(v, 0) == 0);
           });
    if (ok && by.count("network") && !by.at("network").empty())
      ok = type == "network" && any("network", [&](const std::string& v) {
             return v == name || (!v.empty() && id.rfind(v, 0) == 0);
           });
    if (ok && by.count("label") && !by.at("label").empty())
      ok = any("label", [&](const std::string& v) {
        auto& attrs = actor["Attributes"];
        size_t eq = v.find('=');
        std::string k = v.substr(0, eq);
        if (!attrs.contains(k)) return false;
        return eq == std::string::npos || attrs[k] == v.substr(eq + 1);
      });
    return ok;
  }
};

int64_t parse_time_param(const std::string& v) {
  if (v.empty()) return 0;
  if (v.find('T') != std::string::npos) return parse_rfc3339_ns(v);
  return static_cast<int64_t>(std::stod(v) * 1e9);
}

class Daemon;

struct CommandRun;

struct Connection {
  uv_pipe_t pipe;
  Daemon* daemon;
  http_parser parser;
  std::string url, body;
  std::string method;
  bool streaming = false;
  bool closing = false;
  EventFilter filter;
  uv_timer_t* until_timer = nullptr;  // ends an /events stream at `until`
  CommandRun* command = nullptr;      // POST /commands: the command it waits for
};

// A client's command (POST /commands) running as serve's child.
struct CommandRun {
  uv_process_t process;
  Daemon* daemon;
  Connection* conn = nullptr;  // null once the client has gone
  pid_t pid = 0;
};

// One chunk of a chunked response body.
std::string chunk(const std::string& data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + data + "\r\n";
}

// Closes a command's process handle and frees the command with it.
void close_run(CommandRun* run) {
  uv_close(reinterpret_cast<uv_handle_t*>(&run->process), [](uv_handle_t* h) { delete static_cast<CommandRun*>(h->data); });
}

struct Probe {
  uv_process_t process;
  uv_pipe_t out;
  uv_timer_t* timeout = nullptr;
  std::string id;
  Daemon* daemon;
  std::string output;
  std::string start;
  bool exited = false, eof = false, timed_out = false, abandoned = false;
  int64_t exit_code = 0;
  int64_t timeout_ms = 0;
  int open_handles = 2;  // process + pipe
};

struct Tracked {
  std::string id;
  std::optional<Container> last;
  // Running: a pidfd on the container's monitor, polled by the loop.
  uv_poll_t* poll = nullptr;
  UniqueFd pidfd;
  pid_t watched_monitor = 0;
  uv_fs_event_t* dir_watch = nullptr;
  // Backoff: the timer that starts it again, and the child doing it.
  uv_timer_t* restart_timer = nullptr;
  bool restart_in_flight = false;
  bool restart_even_if_stopped = false;  // `always` at daemon start
  Backoff backoff;
  // Healthcheck.
  uv_timer_t* health_timer = nullptr;
  Probe* probe = nullptr;
  std::string health_run;  // started_at of the run the health belongs to
  int64_t run_started_mono_ms = 0;
};

struct TimerCtx {
  Daemon* daemon;
  std::string id;
};

// Stops and frees a timer whose data is a TimerCtx.
void close_timer(uv_timer_t*& t) {
  if (!t) return;
  delete static_cast<TimerCtx*>(t->data);
  t->data = nullptr;
  uv_timer_stop(t);
  close_and_free(t);
  t = nullptr;
}

void probe_timer_cb(uv_timer_t* h);

class Daemon {
 public:
  explicit Daemon(const ServeOptions& options) : opt_(options), rt_(options.paths) {}

  void run();

  // libuv callbacks go through these.
  void on_connection();
  void on_request(Connection* c);
  void close_connection(Connection* c);
  void send(Connection* c, const std::string& data);
  void schedule_resync(int delay_ms = 20);
  void resync();
  void on_restart_timer(std::string id);
  void on_restart_exit(const std::string& id, int64_t status);
  // `berth rm -f -v ID` as a child (a --rm container whose monitor died).
  void remove_container(const std::string& id);
  void on_health_timer(std::string id);
  void on_probe_done(Probe* p);
  void on_command_exit(CommandRun* run, int64_t status, int term_signal);
  void shutdown();

 private:
  void observe(Tracked& t, const Container& c, bool initial);
  void watch_monitor(Tracked& t, const Container& c);
  void unwatch_monitor(Tracked& t);
  void stop_health(Tracked& t);
  void arm_health(Tracked& t, const Container& c);
  void forget(const std::string& id);
  void sync_network(bool initial);
  void emit(const std::string& type, const std::string& action, const std::string& id, json attributes,
            const std::string& from = {});
  void emit_container(const Container& c, const std::string& action, json extra = json::object());
  void respond(Connection* c, int status, const std::string& body, const std::string& type = "application/json");
  // A JSON error reply: {"message": ...}.
  void fail(Connection* c, int status, const std::string& message);
  json containers_json(bool all);
  json projects_json();
  void start_command(Connection* c);
  void signal_command(Connection* c, const std::string& path, std::map<std::string, std::string>& params);

  ServeOptions opt_;
  runtime::Runtime rt_;
  std::string exe_;
  uv_loop_t loop_{};
  UniqueFd lock_fd_;
  std::string socket_, pid_file_;
  uv_pipe_t server_{};
  uv_signal_t sigterm_{}, sigint_{};
  uv_timer_t resync_timer_{}, debounce_timer_{};
  // Settling layers a pull left unsynced (a syncfs: off the loop).
  uv_work_t settle_work_{};
  bool settling_ = false;
  void settle_images();
  uv_fs_event_t containers_watch_{}, network_watch_{};
  bool network_watched_ = false;
  std::map<std::string, std::unique_ptr<Tracked>> tracked_;
  std::set<Connection*> connections_;
  std::map<pid_t, CommandRun*> commands_;
  // The last 1024 events, as the lines sent (a parsed json per event costs
  // several times the text; only a replay with a filter parses them again).
  struct Past {
    int64_t time_ns;
    std::string line;
  };
  std::deque<Past> history_;
  bool stopping_ = false;
  bool scanned_ = false;  // the first resync adopts silently (no events)
  // DNS
  std::unique_ptr<net::DnsServer> dns_;
  struct Attached {
    int listener;
    std::vector<std::string> networks;
  };
  std::map<std::string, Attached> attached_;  // by netns path
  std::map<std::string, net::NetworkRecord> networks_;  // last seen, by id
  std::unique_ptr<GitOps> gitops_;
};

// ---------------------------------------------------------------------------
// Events

void Daemon::emit(const std::string& type, const std::string& action, const std::string& id, json attributes,
                  const std::string& from) {
  int64_t t = now_ns();
  json e = {{"Type", type},
            {"Action", action},
            {"Actor", {{"ID", id}, {"Attributes", std::move(attributes)}}},
            {"scope", "local"},
            {"time", t / 1'000'000'000},
            {"timeNano", t}};
  if (type == "container") {
    e["status"] = action;
    e["id"] = id;
    e["from"] = from;
  }
  spdlog::info("event {} {} {}", type, action, id.substr(0, 12));
  std::string line = e.dump() + "\n";
  history_.push_back({t, line});
  while (history_.size() > 1024) history_.pop_front();
  for (Connection* c : std::vector<Connection*>(connections_.begin(), connections_.end())) {
    if (!c->streaming || c->closing || c->command || !c->filter.matches(e)) continue;
    send(c, chunk(line));
  }
}

void Daemon::emit_container(const Container& c, const std::string& action, json extra) {
  json attrs = json::object();
  for (auto& [k, v] : c.spec.labels) attrs[k] = v;
  attrs["name"] = c.spec.name;
  attrs["image"] = c.spec.image;
  for (auto& [k, v] : extra.items()) attrs[k] = v;
  emit("container", action, c.id, attrs, c.spec.image);
}

// ---------------------------------------------------------------------------
// HTTP

void Daemon::send(Connection* c, const std::string& data) {
  auto* req = new uv_write_t;
  auto* copy = new std::string(data);
  req->data = copy;
  uv_buf_t buf = uv_buf_init(copy->data(), static_cast<unsigned>(copy->size()));
  int rc = uv_write(req, reinterpret_cast<uv_stream_t*>(&c->pipe), &buf, 1, [](uv_write_t* r, int) {
    delete static_cast<std::string*>(r->data);
    delete r;
  });
  if (rc != 0) {
    delete copy;
    delete req;
  }
}

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
  }
}

void Daemon::fail(Connection* c, int status, const std::string& message) {
  respond(c, status, json{{"message", message}}.dump() + "\n");
}

void Daemon::respond(Connection* c, int status, const std::string& body, const std::string& type) {
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason(status) + "\r\nContent-Type: " + type +
                     "\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\nApi-Version: 1.43\r\nServer: berth\r\nConnection: close\r\n\r\n";
  send(c, head + body);
  close_connection(c);
}

void Daemon::close_connection(Connection* c) {
  if (c->closing) return;
  c->closing = true;
  connections_.erase(c);
  if (c->command) {
    // The client died before its command ended (it closes only by exiting,
    // after the exit status, or of a signal it has passed on first): the
    // command dies with it, as it would have in the client's own process.
    // What it started lives on: monitors are in sessions of their own.
    // When serve itself is stopping, the command runs on.
    CommandRun* run = std::exchange(c->command, nullptr);
    run->conn = nullptr;
    if (!stopping_) ::kill(-run->pid, SIGKILL);
  }
  if (c->until_timer) {
    uv_timer_stop(c->until_timer);
    close_and_free(c->until_timer);
    c->until_timer = nullptr;
  }
  // Shut down after the queued writes, then close.
  auto* req = new uv_shutdown_t;
  req->data = c;
  int rc = uv_shutdown(req, reinterpret_cast<uv_stream_t*>(&c->pipe), [](uv_shutdown_t* r, int) {
    auto* conn = static_cast<Connection*>(r->data);
    delete r;
    uv_close(reinterpret_cast<uv_handle_t*>(&conn->pipe),
             [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
  });
  if (rc != 0) {
    delete req;
    uv_close(reinterpret_cast<uv_handle_t*>(&c->pipe), [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
  }
}

http_parser_settings request_settings() {
  http_parser_settings s;
  http_parser_settings_init(&s);
  s.on_url = [](http_parser* p, const char* at, size_t len) {
    static_cast<Connection*>(p->data)->url.append(at, len);
    return 0;
  };
  s.on_body = [](http_parser* p, const char* at, size_t len) {
    auto* c = static_cast<Connection*>(p->data);
    if (c->body.size() + len > (1 << 20)) return 1;
    c->body.append(at, len);
    return 0;
  };
  s.on_message_complete = [](http_parser* p) {
    auto* c = static_cast<Connection*>(p->data);
    c->method = http_method_str(static_cast<http_method>(p->method));
    c->daemon->on_request(c);
    return 1;  // one request per connection: stop parsing
  };
  return s;
}

void Daemon::on_connection() {
  auto* c = new Connection;
  c->daemon = this;
  uv_pipe_init(&loop_, &c->pipe, 0);
  c->pipe.data = c;
  if (uv_accept(reinterpret_cast<uv_stream_t*>(&server_), reinterpret_cast<uv_stream_t*>(&c->pipe)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&c->pipe), [](uv_handle_t* h) { delete static_cast<Connection*>(h->data); });
    return;
  }
  connections_.insert(c);
  http_parser_init(&c->parser, HTTP_REQUEST);
  c->parser.data = c;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&c->pipe),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = new char[suggested];
        buf->len = suggested;
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        std::unique_ptr<char[]> data(buf->base);
        auto* c = static_cast<Connection*>(s->data);
        if (c->closing) return;
        if (n < 0) {
          c->daemon->close_connection(c);
          return;
        }
        if (c->streaming || c->method.size()) return;  // requests after the first are ignored
        static const http_parser_settings settings = request_settings();
        http_parser_execute(&c->parser, &settings, buf->base, static_cast<size_t>(n));
        if (!c->closing && c->method.empty() && HTTP_PARSER_ERRNO(&c->parser) != HPE_OK)
          c->daemon->respond(c, 400, json{{"message", "bad request"}}.dump() + "\n");
      });
}

json Daemon::containers_json(bool all) {
  json out = json::array();
  for (auto& c : rt_.list()) {
    if (!all && !is_running(c.state.status)) continue;
    std::string cmd;
    for (auto& a : c.spec.process.args) cmd += (cmd.empty() ? "" : " ") + a;
    std::string state = runtime::to_string(c.state.status);
    json entry = {{"Id", c.id},
                  {"Names", {"/" + c.spec.name}},
                  {"Image", c.spec.image},
                  {"Command", cmd},
                  {"Created", parse_rfc3339_ns(c.state.created_at) / 1'000'000'000},
                  {"State", state},
                  {"Status", status_text(c)},
                  {"Labels", c.spec.labels},
                  {"Ports", json::array()},
                  {"Mounts", json::array()},
                  {"RestartCount", c.state.restart_count},
                  {"HostConfig", {{"NetworkMode", c.spec.network == runtime::NetworkMode::Host ? "host" : "default"}}}};
    if (!c.state.health.status.empty()) entry["Health"] = {{"Status", c.state.health.status}, {"FailingStreak", c.state.health.failing_streak}};
    out.push_back(entry);
  }
  return out;
}

// docker compose ls: one entry per project, its container states counted.
json Daemon::projects_json() {
  std::map<std::string, std::map<std::string, int>> states;
  std::map<std::string, std::set<std::string>> files;
  for (auto& c : rt_.list()) {
    auto it = c.spec.labels.find("com.docker.compose.project");
    if (it == c.spec.labels.end()) continue;
    states[it->second][runtime::to_string(c.state.status)]++;
    if (auto f = c.spec.labels.find("com.docker.compose.project.config_files"); f != c.spec.labels.end())
      files[it->second].insert(f->second);
  }
  // Watched projects (serve --watch) are listed even before they have
  // containers, with their apply status.
  std::map<std::string, WatchStatus> watched;
  if (gitops_)
    for (auto& w : gitops_->status()) {
      states[w.name];
      watched[w.name] = w;
    }
  json out = json::array();
  for (auto& [name, counts] : states) {
    std::string status, cfg;
    for (auto& [s, n] : counts) status += (status.empty() ? "" : ", ") + s + "(" + std::to_string(n) + ")";
    for (auto& f : files[name]) cfg += (cfg.empty() ? "" : ",") + f;
    json entry = {{"Name", name}, {"Status", status}, {"ConfigFiles", cfg}, {"States", counts}};
    if (auto w = watched.find(name); w != watched.end()) {
      if (cfg.empty()) entry["ConfigFiles"] = w->second.file;
      if (!w->second.last_error.empty()) entry["LastError"] = w->second.last_error;
      entry["Watch"] = to_json(w->second);
    }
    out.push_back(std::move(entry));
  }
  return out;
}

void Daemon::on_request(Connection* c) {
  std::string path = c->url, query;
  if (auto q = path.find('?'); q != std::string::npos) {
    query = path.substr(q + 1);
    path.resize(q);
  }
  // docker clients prefix a version: /v1.43/containers/json
  if (path.size() > 3 && path.rfind("/v1.", 0) == 0) {
    auto slash = path.find('/', 1);
    if (slash != std::string::npos) path = path.substr(slash);
  }
  auto params = query_params(query);
  try {
    if (c->method == "POST" && path == "/commands") return start_command(c);
    if (c->method == "POST" && path.rfind("/commands/", 0) == 0) return signal_command(c, path, params);
    if (c->method != "GET" && c->method != "HEAD")
      return fail(c, 405, c->method + " " + path + ": only GET is supported (and POST on /commands)");
    if (path == "/_ping") return respond(c, 200, "OK", "text/plain; charset=utf-8");
    if (path == "/version") {
      struct utsname u {};
      ::uname(&u);
      return respond(c, 200,
                     json{{"Version", opt_.version},
                          {"ApiVersion", "1.43"},
                          {"MinAPIVersion", "1.24"},
                          {"GitCommit", opt_.git_commit},
                          {"Os", "linux"},
                          {"Arch", u.machine},
                          {"KernelVersion", u.release},
                          {"Components", json::array({{{"Name", "berth"}, {"Version", opt_.version}}})}}
                             .dump() +
                         "\n");
    }
    if (path == "/containers/json") {
      bool all = params.count("all") && (params["all"] == "1" || params["all"] == "true");
      return respond(c, 200, containers_json(all).dump() + "\n");
    }
    if (path == "/projects") return respond(c, 200, projects_json().dump() + "\n");
    if (path == "/events") {
      EventFilter f;
      if (params.count("filters") && !params["filters"].empty()) {
        json fj = json::parse(params["filters"], nullptr, false);
        if (!fj.is_object()) return fail(c, 400, "invalid filters: " + params["filters"]);
        for (auto& [k, v] : fj.items()) {
          if (v.is_array()) {
            for (auto& x : v)
              if (x.is_string()) f.by[k].push_back(x.get<std::string>());
          } else if (v.is_object()) {  // the older {"key":{"value":true}} form
            for (auto& [x, on] : v.items())
              if (on == true) f.by[k].push_back(x);
          }
        }
      }
      try {
        f.since_ns = parse_time_param(params["since"]);
        f.until_ns = parse_time_param(params["until"]);
      } catch (const std::exception&) {
        return fail(c, 400, "invalid since/until");
      }
      c->filter = f;
      c->streaming = true;
      send(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nApi-Version: "
              "1.43\r\nServer: berth\r\n\r\n");
      std::string replay;
      if (f.since_ns > 0)
        for (auto& past : history_) {
          if (past.time_ns < f.since_ns || (f.until_ns != 0 && past.time_ns > f.until_ns)) continue;
          if (!f.by.empty() && !f.matches(json::parse(past.line, nullptr, false))) continue;
          replay += chunk(past.line);
        }
      if (!replay.empty()) send(c, replay);
      if (f.until_ns > 0 && f.until_ns <= now_ns()) {
        send(c, "0\r\n\r\n");
        close_connection(c);
      } else if (f.until_ns > 0) {
        c->until_timer = new uv_timer_t;
        uv_timer_init(&loop_, c->until_timer);
        c->until_timer->data = c;
        uv_timer_start(
            c->until_timer,
            [](uv_timer_t* h) {
              auto* conn = static_cast<Connection*>(h->data);
              conn->daemon->send(conn, "0\r\n\r\n");
              conn->daemon->close_connection(conn);
            },
            static_cast<uint64_t>((f.until_ns - now_ns()) / 1'000'000 + 1), 0);
      }
      return;
    }
    return fail(c, 404, "page not found");
  } catch (const std::exception& e) {
    return fail(c, 500, e.what());
  }
}

// ---------------------------------------------------------------------------
// Clients' commands (supervisor/commands.h)

void Daemon::start_command(Connection* c) {
  if (stopping_) return fail(c, 503, "berth serve is stopping");
  CommandRequest req;
  ClientProcess client;
  try {
    req = parse_command_request(c->body);
  } catch (const std::exception& e) {
    return fail(c, 400, std::string("invalid command request: ") + e.what());
  }
  // A process serve started (whatever the variable's value) does its work
  // itself: handing it back would start another, and so on without end.
  std::string in_serve = std::string(kInServeEnv) + "=";
  for (auto& e : req.env)
    if (e.rfind(in_serve, 0) == 0)
      return fail(c, 400, "this process runs in berth serve already: it does its work itself");
  uv_os_fd_t sock = -1;
  uv_fileno(reinterpret_cast<uv_handle_t*>(&c->pipe), &sock);
  // A client that gave up waiting (serve was stopped, say) has hung up and
  // runs nothing: neither may serve.
  pollfd hup{sock, POLLRDHUP, 0};
  if (::poll(&hup, 1, 0) > 0 && (hup.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
    spdlog::info("a client hung up before its command started: not running it");
    return close_connection(c);
  }
  try {
    client = take_client_process(sock);
  } catch (const std::exception& e) {
    return fail(c, 403, e.what());
  }
  auto* run = new CommandRun;
  run->daemon = this;
  run->process.data = run;
  SpawnOptions so;
  so.file = client.exe;  // the client's own binary (/proc/PID/exe), so client and command are one version
  so.argv = {"berth"};
  so.argv.insert(so.argv.end(), req.args.begin(), req.args.end());
  so.cwd = client.cwd;
  so.stdin_fd = client.stdio[0].get();
  so.stdout_fd = client.stdio[1].get();
  so.stderr_fd = client.stdio[2].get();
  so.detached = true;  // a signal to serve's group is not the command's
  so.env = std::move(req.env);
  so.env.push_back(std::string(kInServeEnv) + "=" + std::to_string(::getpid()));
  mode_t old = ::umask(req.umask);
  int rc = spawn_child(&loop_, &run->process, so, [](uv_process_t* p, int64_t status, int sig) {
    auto* r = static_cast<CommandRun*>(p->data);
    r->daemon->on_command_exit(r, status, sig);
  });
  ::umask(old);
  if (rc != 0) {
    close_run(run);
    return fail(c, 500, std::string("cannot run the command: ") + uv_strerror(rc));
  }
  run->pid = run->process.pid;
  run->conn = c;
  c->command = run;
  c->streaming = true;
  commands_[run->pid] = run;
  spdlog::debug("command {} (client pid {}): {}", run->pid, client.pid, json(req.args).dump());
  std::string line = json{{"Pid", run->pid}}.dump() + "\n";
  send(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nApi-Version: "
          "1.43\r\nServer: berth\r\n\r\n" + chunk(line));
}

void Daemon::signal_command(Connection* c, const std::string& path, std::map<std::string, std::string>& params) {
  // /commands/PID/signal?signal=N
  std::string rest = path.substr(std::strlen("/commands/"));
  auto slash = rest.find('/');
  if (slash == std::string::npos || rest.substr(slash) != "/signal") return fail(c, 404, "page not found");
  char* end = nullptr;
  long pid = std::strtol(rest.c_str(), &end, 10);
  if (end != rest.c_str() + slash || pid <= 0) return fail(c, 400, "invalid command pid: " + rest.substr(0, slash));
  long sig = std::strtol(params["signal"].c_str(), &end, 10);
  if (params["signal"].empty() || *end != '\0' || sig <= 0 || sig >= 65)
    return fail(c, 400, "invalid signal: \"" + params["signal"] + "\" (a number from 1 to 64)");
  auto it = commands_.find(static_cast<pid_t>(pid));
  if (it == commands_.end()) return fail(c, 404, "no such command: " + rest.substr(0, slash));
  // To its process group, as a terminal signals its foreground group (an
  // `exec -t` relays the window size from a process of its own). The
  // command leads a session of its own, and it is not reaped yet, so the
  // group is still its.
  if (::kill(-static_cast<pid_t>(pid), static_cast<int>(sig)) != 0)
    return fail(c, 500, std::string("cannot signal the command: ") + std::strerror(errno));
  respond(c, 200, "{}\n");
}

void Daemon::on_command_exit(CommandRun* run, int64_t status, int term_signal) {
  commands_.erase(run->pid);
  if (Connection* c = std::exchange(run->conn, nullptr)) {
    c->command = nullptr;
    std::string line = (term_signal ? json{{"Signal", term_signal}} : json{{"ExitCode", status}}).dump() + "\n";
    send(c, chunk(line) + "0\r\n\r\n");
    close_connection(c);
  }
  close_run(run);
}

// ---------------------------------------------------------------------------
// Watching containers

void Daemon::schedule_resync(int delay_ms) {
  if (stopping_) return;
  if (uv_is_active(reinterpret_cast<uv_handle_t*>(&debounce_timer_))) return;
  uv_timer_start(&debounce_timer_, [](uv_timer_t* t) { static_cast<Daemon*>(t->data)->resync(); }, delay_ms, 0);
}

// Layers pulls left unsynced are settled (one syncfs, on libuv's thread
// pool) once the kernel has had time to write them back: the next boot
// then need not rebuild them.
void Daemon::settle_images() {
  if (settling_ || stopping_ || !images::has_unsynced_layers(opt_.paths.root)) return;
  settling_ = true;
  settle_work_.data = this;
  uv_queue_work(
      &loop_, &settle_work_,
      [](uv_work_t* w) {
        auto* d = static_cast<Daemon*>(w->data);
        try {
          images::recover_unsynced_layers(d->opt_.paths.root, images::Settle::Old);
        } catch (const std::exception& e) {
          spdlog::warn("cannot settle the image store: {}", e.what());
        }
      },
      [](uv_work_t* w, int) { static_cast<Daemon*>(w->data)->settling_ = false; });
}

void Daemon::resync() {
  if (stopping_) return;
  settle_images();
  std::vector<Container> all;
  try {
    all = rt_.list();
  } catch (const std::exception& e) {
    spdlog::warn("cannot list containers: {}", e.what());
    return;
  }
  // Our root was removed (a test's scratch directory, say): nothing is
  // left to supervise.
  if (!is_directory(opt_.paths.root + "/containers")) {
    spdlog::info("{} is gone: stopping", opt_.paths.root + "/containers");
    shutdown();
    return;
  }
  bool initial = !scanned_;
  scanned_ = true;
  std::set<std::string> seen;
  for (auto& c : all) {
    seen.insert(c.id);
    auto& slot = tracked_[c.id];
    bool is_new = !slot;
    if (is_new) {
      slot = std::make_unique<Tracked>();
      slot->id = c.id;
      // Its state.json is replaced on every change (rename): watch its directory.
      auto* w = new uv_fs_event_t;
      uv_fs_event_init(&loop_, w);
      w->data = this;
      if (uv_fs_event_start(
              w, [](uv_fs_event_t* h, const char*, int, int) { static_cast<Daemon*>(h->data)->schedule_resync(); },
              c.dir.c_str(), 0) == 0) {
        slot->dir_watch = w;
      } else {
        close_and_free(w);
      }
      if (!initial) emit_container(c, "create");
    }
    try {
      observe(*slot, c, initial && is_new);
    } catch (const std::exception& e) {
      spdlog::warn("container {}: {}", c.id.substr(0, 12), e.what());
    }
  }
  for (auto it = tracked_.begin(); it != tracked_.end();) {
    if (seen.count(it->first)) {
      ++it;
      continue;
    }
    std::string id = it->first;
    if (it->second->last) emit_container(*it->second->last, "destroy");
    ++it;
    forget(id);
  }
  if (opt_.dns) sync_network(initial);
  // A resync reads every container's state (a burst of allocations freed
  // right after): give the freed pages back instead of keeping them.
  ::malloc_trim(0);
}

void Daemon::forget(const std::string& id) {
  auto it = tracked_.find(id);
  if (it == tracked_.end()) return;
  Tracked& t = *it->second;
  unwatch_monitor(t);
  stop_health(t);
  close_timer(t.restart_timer);
  close_and_free(t.dir_watch);
  tracked_.erase(it);
}

void Daemon::watch_monitor(Tracked& t, const Container& c) {
  auto rec = runtime::state::load_runtime(runtime::state::runtime_dir(opt_.paths, c.id));
  if (!rec) return;
  if (t.poll && t.watched_monitor == rec->monitor_pid) return;
  unwatch_monitor(t);
  UniqueFd fd(static_cast<int>(::syscall(SYS_pidfd_open, rec->monitor_pid, 0)));
  // Opened first, checked second: the pidfd then pins the right process.
  if (!fd || !runtime::state::process_matches(rec->monitor_pid, rec->monitor_start)) {
    schedule_resync(50);
    return;
  }
  auto* p = new uv_poll_t;
  if (uv_poll_init(&loop_, p, fd.get()) != 0) {
    delete p;
    return;
  }
  p->data = this;
  uv_poll_start(p, UV_READABLE, [](uv_poll_t* h, int, int) {
    // The monitor exited: it recorded how the container ended first.
    uv_poll_stop(h);
    static_cast<Daemon*>(h->data)->schedule_resync(1);
  });
  t.poll = p;
  t.pidfd = std::move(fd);
  t.watched_monitor = rec->monitor_pid;
}

void Daemon::unwatch_monitor(Tracked& t) {
  if (t.poll) {
    uv_poll_stop(t.poll);
    close_and_free(t.poll);
    t.poll = nullptr;
  }
  t.pidfd.reset();
  t.watched_monitor = 0;
}

void Daemon::observe(Tracked& t, const Container& c, bool initial) {
  if (c.state.status == Status::Dead) {
    // Its monitor died (killed by hand, or by the OOM killer): what runs on
    // is unlogged and its exit would go unseen. End it as the monitor would
    // have; then its restart policy decides (a --rm container goes), as
    // docker's daemon does when a containerd shim dies.
    std::optional<Container> ended;
    try {
      if (rt_.end_unmonitored(c.id)) ended = rt_.get(c.id);
    } catch (const std::exception& e) {
      spdlog::warn("container {}: its monitor died, and ending what it left failed: {}", c.id.substr(0, 12), e.what());
    }
    if (ended) {
      spdlog::warn("container {}: its monitor died; its processes were killed", c.id.substr(0, 12));
      if (ended->spec.auto_remove) remove_container(ended->id);
      observe(t, *ended, initial);
      return;
    }
  }
  std::optional<Container> prev = std::move(t.last);
  if (!prev && !initial) {
    // Made after we started: it was "created" a moment ago, so a run it
    // already had (or finished) gets its start (and die) events.
    prev = c;
    prev->state.status = Status::Created;
    prev->state.started_at.clear();
  }
  t.last = c;
  bool running = is_running(c.state.status);
  bool was_running = prev && is_running(prev->state.status);
  bool new_run = prev && !c.state.started_at.empty() && c.state.started_at != prev->state.started_at;
  if (new_run || (prev && running && !was_running)) emit_container(c, "start");
  if (prev && !running && (was_running || new_run)) {
    emit_container(c, "die", {{"exitCode", std::to_string(c.state.exit_code)}});
    if (c.state.manually_stopped) emit_container(c, "stop");
  }

  if (running) {
    watch_monitor(t, c);
    close_timer(t.restart_timer);
    if (c.spec.healthcheck.enabled() && c.state.status == Status::Running) {
      if (t.health_run != c.state.started_at) {
        stop_health(t);
        t.health_run = c.state.started_at;
        int64_t started_ns = parse_rfc3339_ns(c.state.started_at);
        int64_t ran_ms = std::max<int64_t>(0, (now_ns() - started_ns) / 1'000'000);
        t.run_started_mono_ms = static_cast<int64_t>(uv_now(&loop_)) - ran_ms;
        // Re-adopting a run a previous daemon probed: keep its record.
        // Otherwise health starts over (the probe log is kept, as docker).
        const runtime::HealthState& old = c.state.health;
        bool adopt = initial && !old.status.empty() && !old.log.empty() &&
                     parse_rfc3339_ns(old.log.back().start) >= started_ns;
        if (!adopt) {
          runtime::HealthState h = old;
          h.status = "starting";
          h.failing_streak = 0;
          rt_.set_health(c.id, h);
          t.last->state.health = h;
        }
      }
      if (!t.health_timer && !t.probe) arm_health(t, *t.last);
    } else if (!c.spec.healthcheck.enabled()) {
      stop_health(t);
    }
    return;
  }

  unwatch_monitor(t);
  stop_health(t);
  t.health_run.clear();
  if (c.state.status != Status::Exited && c.state.status != Status::Restarting) return;
  if (t.restart_timer || t.restart_in_flight) return;
  RestartPolicy policy;
  try {
    policy = parse_restart_policy(c.spec.restart_policy);
  } catch (const Error&) {
  }
  // As docker's daemon at start: `always` brings back even a container the
  // user stopped (unless-stopped does not).
  bool stopped = c.state.manually_stopped && !(initial && policy.kind == RestartPolicy::Kind::Always);
  if (!should_restart(policy, c.state.exit_code, stopped, c.state.restart_count)) {
    if (c.state.status == Status::Restarting) {
      // Nothing will restart it (the policy or the user said no): not "restarting" any more.
      runtime::ContainerState st = runtime::state::load_state(c.dir);
      if (st.status == Status::Restarting) {
        st.status = Status::Exited;
        runtime::state::save_state(c.dir, st, false);
      }
    }
    return;
  }
  int64_t ran_ms = 0;
  int64_t started = parse_rfc3339_ns(c.state.started_at), finished = parse_rfc3339_ns(c.state.finished_at);
  if (started > 0 && finished > started) ran_ms = (finished - started) / 1'000'000;
  int64_t delay = t.backoff.next(ran_ms);
  t.restart_even_if_stopped = c.state.manually_stopped;
  if (c.state.status == Status::Exited) {
    runtime::ContainerState st = runtime::state::load_state(c.dir);
    if (st.status == Status::Exited && !st.manually_stopped) {
      st.status = Status::Restarting;
      runtime::state::save_state(c.dir, st, false);
      t.last->state.status = Status::Restarting;
    }
  }
  spdlog::info("container {} exited ({}): restarting in {} ms by policy {}", c.id.substr(0, 12), c.state.exit_code,
               delay, c.spec.restart_policy);
  auto* timer = new uv_timer_t;
  uv_timer_init(&loop_, timer);
  timer->data = new TimerCtx{this, c.id};
  t.restart_timer = timer;
  uv_timer_start(
      timer,
      [](uv_timer_t* h) {
        auto* ctx = static_cast<TimerCtx*>(h->data);
        ctx->daemon->on_restart_timer(ctx->id);
      },
      static_cast<uint64_t>(delay), 0);
}

struct SpawnCtx {
  Daemon* daemon;
  std::string id;
};

void Daemon::on_restart_timer(std::string id) {
  auto it = tracked_.find(id);
  if (it == tracked_.end()) return;
  Tracked& t = *it->second;
  close_timer(t.restart_timer);
  int count = t.last ? t.last->state.restart_count + 1 : 1;
  std::string n = std::to_string(count);
  SpawnOptions so;
  so.argv = {exe_, "--root", opt_.paths.root, "--run-root", opt_.paths.run_root, "__restart", id, n};
  if (t.restart_even_if_stopped) so.argv.push_back("--even-if-stopped");
  so.stdout_fd = 1;  // serve's own log
  so.stderr_fd = 2;
  auto* proc = new uv_process_t;
  proc->data = new SpawnCtx{this, id};
  auto exit_cb = [](uv_process_t* p, int64_t status, int) {
    auto* ctx = static_cast<SpawnCtx*>(p->data);
    ctx->daemon->on_restart_exit(ctx->id, status);
    delete ctx;
    close_and_free(p);
  };
  int rc = spawn_child(&loop_, proc, so, exit_cb);
  if (rc != 0) {
    spdlog::error("cannot restart container {}: {}", id.substr(0, 12), uv_strerror(rc));
    delete static_cast<SpawnCtx*>(proc->data);
    close_and_free(proc);
    schedule_resync(1000);
    return;
  }
  t.restart_in_flight = true;
}

void Daemon::remove_container(const std::string& id) {
  SpawnOptions so;
  so.argv = {exe_, "--root", opt_.paths.root, "--run-root", opt_.paths.run_root, "rm", "-f", "-v", id};
  so.stdout_fd = -1;
  so.stderr_fd = 2;  // serve's own log
  auto* proc = new uv_process_t;
  proc->data = new SpawnCtx{this, id};
  auto exit_cb = [](uv_process_t* p, int64_t status, int) {
    auto* ctx = static_cast<SpawnCtx*>(p->data);
    if (status != 0) spdlog::warn("removing container {} failed (exit {})", ctx->id.substr(0, 12), status);
    ctx->daemon->schedule_resync(1);
    delete ctx;
    close_and_free(p);
  };
  if (int rc = spawn_child(&loop_, proc, so, exit_cb)) {
    spdlog::error("cannot remove container {}: {}", id.substr(0, 12), uv_strerror(rc));
    delete static_cast<SpawnCtx*>(proc->data);
    close_and_free(proc);
  }
}

void Daemon::on_restart_exit(const std::string& id, int64_t status) {
  auto it = tracked_.find(id);
  if (it == tracked_.end()) return;
  it->second->restart_in_flight = false;
  if (status == 0 && it->second->last) {
    emit_container(*it->second->last, "restart");
  } else if (status != 0) {
    spdlog::warn("restarting container {} failed (exit {})", id.substr(0, 12), status);
  }
  schedule_resync(1);
}

// ---------------------------------------------------------------------------
// Healthchecks

void Daemon::stop_health(Tracked& t) {
  close_timer(t.health_timer);
  if (t.probe) {
    t.probe->abandoned = true;
    if (!t.probe->exited) ::kill(-t.probe->process.pid, SIGKILL);
    t.probe = nullptr;
  }
}

void Daemon::arm_health(Tracked& t, const Container& c) {
  HealthTiming timing = health_timing(c.spec.healthcheck);
  int64_t elapsed = static_cast<int64_t>(uv_now(&loop_)) - t.run_started_mono_ms;
  bool in_start = elapsed < timing.start_period_ms && c.state.health.status == "starting";
  int64_t delay = in_start ? timing.start_interval_ms : timing.interval_ms;
  auto* timer = new uv_timer_t;
  uv_timer_init(&loop_, timer);
  timer->data = new TimerCtx{this, c.id};
  t.health_timer = timer;
  uv_timer_start(
      timer,
      [](uv_timer_t* h) {
        auto* ctx = static_cast<TimerCtx*>(h->data);
        ctx->daemon->on_health_timer(ctx->id);
      },
      static_cast<uint64_t>(delay), 0);
}

// The probe's timeout (kill its process group), or the grace after its
// exit for the output to end.
void probe_timer_cb(uv_timer_t* h) {
  auto* p = static_cast<Probe*>(h->data);
  if (!p) return;
  if (!p->exited) {
    p->timed_out = true;
    ::kill(-p->process.pid, SIGKILL);
    return;
  }
  if (!p->eof) {
    p->eof = true;
    uv_close(reinterpret_cast<uv_handle_t*>(&p->out), [](uv_handle_t* x) {
      auto* p = static_cast<Probe*>(x->data);
      if (--p->open_handles == 0) delete p;
    });
    p->daemon->on_probe_done(p);
  }
}

void Daemon::on_health_timer(std::string id) {
  auto it = tracked_.find(id);
  if (it == tracked_.end() || !it->second->last) return;
  Tracked& t = *it->second;
  close_timer(t.health_timer);
  const Container& c = *t.last;
  if (c.state.status != Status::Running) return;
  std::vector<std::string> cmd = probe_command(c.spec.healthcheck);
  if (cmd.empty()) return;
  std::vector<std::string> argv{exe_, "--root", opt_.paths.root, "--run-root", opt_.paths.run_root, "exec", id};
  argv.insert(argv.end(), cmd.begin(), cmd.end());

  auto* p = new Probe;
  p->id = id;
  p->daemon = this;
  p->start = now_rfc3339_nano();
  p->timeout_ms = health_timing(c.spec.healthcheck).timeout_ms;
  uv_pipe_init(&loop_, &p->out, 0);
  p->out.data = p;
  p->process.data = p;
  // stdout and stderr both go to one pipe, as docker records a probe's output.
  uv_file fds[2] = {-1, -1};
  if (int prc = uv_pipe(fds, 0, 0); prc != 0) {
    spdlog::warn("healthcheck pipe: {}", uv_strerror(prc));
    p->open_handles = 1;
    uv_close(reinterpret_cast<uv_handle_t*>(&p->out), [](uv_handle_t* h) { delete static_cast<Probe*>(h->data); });
    arm_health(t, c);
    return;
  }
  uv_pipe_open(&p->out, fds[0]);
  // Its own process group: a timeout kills the probe and what it started.
  SpawnOptions so;
  so.argv = std::move(argv);
  so.stdout_fd = so.stderr_fd = fds[1];
  so.detached = true;
  auto exit_cb = [](uv_process_t* proc, int64_t status, int sig) {
    auto* p = static_cast<Probe*>(proc->data);
    p->exited = true;
    p->exit_code = sig ? 128 + sig : status;
    uv_close(reinterpret_cast<uv_handle_t*>(proc), [](uv_handle_t* h) {
      auto* p = static_cast<Probe*>(h->data);
      if (--p->open_handles == 0) delete p;
    });
    if (p->eof) p->daemon->on_probe_done(p);
    // Something the probe left in the background may hold the pipe: its
    // output is what arrived within a moment of the exit.
    else if (p->timeout) uv_timer_start(p->timeout, probe_timer_cb, 200, 0);
  };
  auto free_probe = [](uv_handle_t* h) {
    auto* p = static_cast<Probe*>(h->data);
    if (--p->open_handles == 0) delete p;
  };
  int rc = spawn_child(&loop_, &p->process, so, exit_cb);
  ::close(fds[1]);
  if (rc != 0) {
    spdlog::warn("cannot run the healthcheck of {}: {}", id.substr(0, 12), uv_strerror(rc));
    uv_close(reinterpret_cast<uv_handle_t*>(&p->process), free_probe);
    uv_close(reinterpret_cast<uv_handle_t*>(&p->out), free_probe);
    arm_health(t, c);
    return;
  }
  t.probe = p;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&p->out),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = new char[suggested];
        buf->len = suggested;
      },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        std::unique_ptr<char[]> data(buf->base);
        auto* p = static_cast<Probe*>(s->data);
        if (n > 0) {
          if (p->output.size() < 4096) p->output.append(buf->base, std::min<size_t>(n, 4096 - p->output.size()));
          return;
        }
        if (n == 0) return;
        p->eof = true;
        uv_close(reinterpret_cast<uv_handle_t*>(s), [](uv_handle_t* h) {
          auto* p = static_cast<Probe*>(h->data);
          if (--p->open_handles == 0) delete p;
        });
        if (p->exited) p->daemon->on_probe_done(p);
      });
  p->timeout = new uv_timer_t;
  uv_timer_init(&loop_, p->timeout);
  p->timeout->data = p;
  uv_timer_start(p->timeout, probe_timer_cb, static_cast<uint64_t>(p->timeout_ms), 0);
}

void Daemon::on_probe_done(Probe* p) {
  // Called once, when both the process exited and its output ended.
  if (p->timeout) {
    p->timeout->data = nullptr;
    close_and_free(p->timeout);
    p->timeout = nullptr;
  }
  if (p->abandoned || stopping_) return;
  auto it = tracked_.find(p->id);
  if (it == tracked_.end() || it->second->probe != p) return;
  Tracked& t = *it->second;
  t.probe = nullptr;
  if (!t.last || t.last->state.status != Status::Running) return;
  Container& c = *t.last;
  HealthTiming timing = health_timing(c.spec.healthcheck);
  runtime::HealthProbe probe;
  probe.start = p->start;
  probe.end = now_rfc3339_nano();
  probe.exit_code = static_cast<int>(p->exit_code);
  probe.output = p->output;
  if (p->timed_out) {
    probe.exit_code = -1;
    probe.output = "Health check exceeded timeout (" + std::to_string(timing.timeout_ms / 1000.0).substr(0, 4) + "s)";
  }
  int64_t elapsed = static_cast<int64_t>(uv_now(&loop_)) - t.run_started_mono_ms;
  bool in_start = elapsed < timing.start_period_ms;
  runtime::HealthState h = c.state.health;
  bool changed = apply_probe(h, probe, timing.retries, in_start);
  try {
    rt_.set_health(c.id, h);
  } catch (const std::exception& e) {
    spdlog::warn("cannot record the health of {}: {}", c.id.substr(0, 12), e.what());
    return;
  }
  c.state.health = h;
  if (changed) emit_container(c, "health_status: " + h.status);
  arm_health(t, c);
}

// ---------------------------------------------------------------------------
// Networks and the embedded DNS

void Daemon::sync_network(bool initial) {
  std::vector<net::NetworkRecord> nets;
  try {
    nets = net::NetworkStore(opt_.paths.root).list();
  } catch (const std::exception& e) {
    spdlog::warn("cannot read the network store: {}", e.what());
    return;
  }
  if (!network_watched_) {
    std::string dir = opt_.paths.root + "/network/networks";
    if (is_directory(dir)) {
      uv_fs_event_init(&loop_, &network_watch_);
      network_watch_.data = this;
      if (uv_fs_event_start(
              &network_watch_,
              [](uv_fs_event_t* h, const char*, int, int) { static_cast<Daemon*>(h->data)->schedule_resync(); },
              dir.c_str(), 0) == 0)
        network_watched_ = true;
    }
  }
  // Events: networks created/removed, endpoints connected/disconnected.
  std::map<std::string, net::NetworkRecord> now;
  for (auto& n : nets) now[n.id] = n;
  if (!initial) {
    for (auto& [id, n] : now) {
      auto old = networks_.find(id);
      if (old == networks_.end()) emit("network", "create", id, {{"name", n.name}, {"type", n.driver}});
      for (auto& [eid, ep] : n.endpoints)
        if (old == networks_.end() || !old->second.endpoints.count(eid))
          emit("network", "connect", id, {{"name", n.name}, {"type", n.driver}, {"container", ep.name}});
      if (old != networks_.end())
        for (auto& [eid, ep] : old->second.endpoints)
          if (!n.endpoints.count(eid))
            emit("network", "disconnect", id, {{"name", n.name}, {"type", n.driver}, {"container", ep.name}});
    }
    for (auto& [id, n] : networks_)
      if (!now.count(id)) emit("network", "destroy", id, {{"name", n.name}, {"type", n.driver}});
  }
  networks_ = std::move(now);
  if (!dns_) return;
  net::sync_names(dns_->names(), nets);
  // One listener per container netns, serving the networks it is on.
  struct Want {
    std::vector<std::string> networks, upstreams;
  };
  std::map<std::string, Want> want;
  for (auto& n : nets)
    for (auto& [eid, ep] : n.endpoints) {
      if (ep.netns.empty() || !path_exists(ep.netns)) continue;
      auto& w = want[ep.netns];
      w.networks.push_back(n.id);
      if (w.upstreams.empty()) w.upstreams = ep.dns;
    }
  for (auto it = attached_.begin(); it != attached_.end();) {
    if (want.count(it->first)) {
      ++it;
      continue;
    }
    dns_->detach(it->second.listener);
    it = attached_.erase(it);
  }
  for (auto& [path, w] : want) {
    std::sort(w.networks.begin(), w.networks.end());
    auto it = attached_.find(path);
    if (it != attached_.end()) {
      if (it->second.networks != w.networks) {
        dns_->set_networks(it->second.listener, w.networks);
        it->second.networks = w.networks;
      }
      continue;
    }
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) continue;
    try {
      int id = dns_->attach_netns(fd.get(), w.networks, w.upstreams);
      attached_[path] = {id, w.networks};
      spdlog::info("dns: serving 127.0.0.11 in {}", path);
    } catch (const std::exception& e) {
      spdlog::warn("dns: cannot serve in {}: {}", path, e.what());
    }
  }
}

// ---------------------------------------------------------------------------

void Daemon::shutdown() {
  if (stopping_) return;
  stopping_ = true;
  spdlog::info("shutting down (containers keep running)");
  for (auto& [id, t] : tracked_) {
    unwatch_monitor(*t);
    stop_health(*t);
    close_timer(t->restart_timer);
    close_and_free(t->dir_watch);
    t->dir_watch = nullptr;
  }
  for (Connection* c : std::vector<Connection*>(connections_.begin(), connections_.end())) {
    if (c->streaming && !c->command) send(c, "0\r\n\r\n");
    close_connection(c);
  }
  // Clients' commands run on in sessions of their own; their clients wait
  // for them to end.
  for (auto& [pid, run] : commands_) close_run(run);
  commands_.clear();
  if (gitops_) gitops_->stop();
  for (auto& [path, a] : attached_) dns_->detach(a.listener);
  attached_.clear();
  dns_.reset();
  ::unlink(socket_.c_str());
  ::unlink(pid_file_.c_str());
  uv_close(reinterpret_cast<uv_handle_t*>(&server_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&resync_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&debounce_timer_), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&containers_watch_), nullptr);
  if (network_watched_) uv_close(reinterpret_cast<uv_handle_t*>(&network_watch_), nullptr);
}

void Daemon::run() {
  // One malloc arena: the short-lived helper threads (DNS listeners enter
  // a container's netns on one) would otherwise each leave an arena of
  // their own behind, ~700 KiB resident with 50 containers.
  ::mallopt(M_ARENA_MAX, 1);
  auto& paths = opt_.paths;
  exe_ = paths.self_exe;
  if (exe_.empty()) {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) throw_errno("readlink /proc/self/exe");
    exe_.assign(buf, static_cast<size_t>(n));
  }
  make_dirs(paths.run_root, 0700);
  make_dirs(paths.root + "/containers", 0700);
  socket_ = socket_path(paths);
  pid_file_ = pid_path(paths);

  // One daemon per run root: an flock on the pid file, held for life.
  // A serve that stops unlinks the file before it lets go of the lock, so a
  // lock won on a file no longer at that path is tried again.
  auto lock_here = [&] {
    lock_fd_.reset(::open(pid_file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    if (!lock_fd_) throw_errno("cannot open " + pid_file_);
    if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) return false;
    struct stat held {}, here {};
    return ::fstat(lock_fd_.get(), &held) == 0 && ::stat(pid_file_.c_str(), &here) == 0 && held.st_ino == here.st_ino &&
           held.st_dev == here.st_dev;
  };
  if (!lock_here()) {
    std::string other;
    read_file_if_exists(pid_file_, other);
    pid_t other_pid = static_cast<pid_t>(std::atoi(other.c_str()));
    bool by_cli = other.find("\nstarted-by-cli") != std::string::npos;
    bool taken = false;
    if (by_cli && !opt_.started_by_cli && other_pid > 1) {
      spdlog::info("taking over from the berth serve the CLI started (pid {})", other_pid);
      ::kill(other_pid, SIGTERM);
      for (int waited = 0; waited < 10'000 && !taken; waited += 20) {
        ::usleep(20'000);
        taken = lock_here();
      }
    }
    if (!taken)
      throw Error("another berth serve (pid " + (other_pid > 0 ? std::to_string(other_pid) : std::string("?")) +
                      ") is running for " + paths.run_root,
                  0, 1);
  }
  // A serve the CLI started leaves the cgroups of the shell session, CI job
  // or service that ran that command: its restarts and probes go on when
  // they end. A serve the user (or an init system) starts stays where put.
  if (opt_.started_by_cli) {
    std::string stuck = runtime::leave_starter_cgroups();
    if (!stuck.empty()) spdlog::warn("cannot leave the cgroups of the command that started serve: {}", stuck);
  }
  // What serve starts (restarts, probes, GitOps applies, clients' commands)
  // does its work itself rather than handing it back to serve.
  ::setenv(kInServeEnv, "1", 1);
  std::string pid = std::to_string(::getpid()) + "\n" + (opt_.started_by_cli ? "started-by-cli\n" : "");
  if (::ftruncate(lock_fd_.get(), 0) != 0 || ::pwrite(lock_fd_.get(), pid.data(), pid.size(), 0) < 0)
    throw_errno("cannot write " + pid_file_);

  uv_loop_init(&loop_);
  // A socket left by a daemon that was killed: we hold the lock, so it is stale.
  ::unlink(socket_.c_str());
  uv_pipe_init(&loop_, &server_, 0);
  server_.data = this;
  mode_t old = ::umask(0117);
  int rc = uv_pipe_bind(&server_, socket_.c_str());
  ::umask(old);
  if (rc != 0) throw Error("cannot bind " + socket_ + ": " + uv_strerror(rc), 0, 1);
  ::chmod(socket_.c_str(), 0660);
  rc = uv_listen(reinterpret_cast<uv_stream_t*>(&server_), 64,
                 [](uv_stream_t* s, int status) {
                   if (status == 0) static_cast<Daemon*>(s->data)->on_connection();
                 });
  if (rc != 0) throw Error("cannot listen on " + socket_ + ": " + uv_strerror(rc), 0, 1);

  for (auto* sig : {&sigterm_, &sigint_}) {
    uv_signal_init(&loop_, sig);
    sig->data = this;
  }
  auto on_signal = [](uv_signal_t* s, int) { static_cast<Daemon*>(s->data)->shutdown(); };
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  uv_signal_start(&sigint_, on_signal, SIGINT);
  ::signal(SIGPIPE, SIG_IGN);

  uv_timer_init(&loop_, &debounce_timer_);
  debounce_timer_.data = this;
  uv_timer_init(&loop_, &resync_timer_);
  resync_timer_.data = this;
  uv_timer_start(&resync_timer_, [](uv_timer_t* t) { static_cast<Daemon*>(t->data)->resync(); },
                 static_cast<uint64_t>(opt_.resync_interval_ms), static_cast<uint64_t>(opt_.resync_interval_ms));
  uv_fs_event_init(&loop_, &containers_watch_);
  containers_watch_.data = this;
  std::string cdir = paths.root + "/containers";
  rc = uv_fs_event_start(
      &containers_watch_, [](uv_fs_event_t* h, const char*, int, int) { static_cast<Daemon*>(h->data)->schedule_resync(); },
      cdir.c_str(), 0);
  if (rc != 0) spdlog::warn("cannot watch {}: {} (the periodic resync still runs)", cdir, uv_strerror(rc));

  if (opt_.dns) {
    try {
      dns_ = std::make_unique<net::DnsServer>(&loop_, net::DnsServerOptions{});
    } catch (const std::exception& e) {
      spdlog::warn("embedded DNS disabled: {}", e.what());
    }
  }

  spdlog::info("berth serve {} listening on {} (root {})", opt_.version, socket_, paths.root);
  resync();  // adopt what runs, restart what the policies say should run
  if (!opt_.watch_dir.empty()) {
    GitOps::Options go;
    go.dir = opt_.watch_dir;
    go.exe = exe_;
    go.paths = paths;
    go.rescan_ms = opt_.watch_rescan_ms;
    go.debounce_ms = opt_.watch_debounce_ms;
    go.retry_ms = opt_.watch_retry_ms;
    go.resync_ms = opt_.watch_resync_ms;
    gitops_ = std::make_unique<GitOps>(
        &loop_, go,
        [this](const std::string& action, const std::string& project, json attrs) {
          emit("reconcile", action, project, std::move(attrs));
        },
        [this] {
          std::map<std::string, GitOps::ProjectSeen> out;
          for (auto& [id, t] : tracked_) {
            if (!t->last) continue;
            auto& labels = t->last->spec.labels;
            auto p = labels.find("com.docker.compose.project");
            auto f = labels.find("com.docker.compose.project.config_files");
            if (p == labels.end() || f == labels.end()) continue;
            auto& seen = out[p->second];
            seen.config_files = f->second;
            auto oneoff = labels.find("com.docker.compose.oneoff");
            if (oneoff == labels.end() || oneoff->second != "True") seen.containers.insert(t->last->spec.name);
          }
          return out;
        });
    gitops_->start();
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  // Let every close callback run.
  uv_run(&loop_, UV_RUN_NOWAIT);
  if (uv_loop_close(&loop_) != 0) spdlog::debug("loop closed with handles left");
  // Often the machine is shutting down: layers pulled not long ago are
  // flushed now (one syncfs), so that the next boot need not rebuild them.
  try {
    images::recover_unsynced_layers(opt_.paths.root, images::Settle::All);
  } catch (const std::exception& e) {
    spdlog::warn("cannot settle the image store: {}", e.what());
  }
  spdlog::info("berth serve stopped");
}

}  // namespace

void serve(const ServeOptions& options) {
  Daemon d(options);
  d.run();
}

void restart_by_policy(const runtime::Paths& paths, const std::string& id, int restart_count, bool even_if_stopped) {
  runtime::Runtime rt(paths);
  Container c = rt.get(id);
  if (is_running(c.state.status) || (c.state.manually_stopped && !even_if_stopped)) return;
  // Recorded before the start, so the monitor's "running" record keeps it
  // (nothing else writes state.json while the container is not running).
  runtime::ContainerState st = runtime::state::load_state(c.dir);
  st.restart_count = restart_count;
  runtime::state::save_state(c.dir, st, false);
  runtime::Attach by_policy;
  by_policy.by_restart_policy = true;
  rt.start(c.id, by_policy);
}

}  // namespace berth::supervisor
