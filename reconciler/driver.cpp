#include "reconciler/driver.h"

#include <signal.h>
#include <string.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "net/network.h"
#include "net/ports.h"
#include "runtime/volume.h"

namespace berth::reconciler {

namespace {

using nlohmann::json;

[[noreturn]] void fail(const ContainerSpec& c, const std::string& msg) {
  throw Error("service " + c.service + ": " + msg, 0, 125);
}

std::vector<std::string> json_strings(const json& j) {
  std::vector<std::string> out;
  if (j.is_array())
    for (const auto& v : j)
      if (v.is_string()) out.push_back(v.get<std::string>());
  return out;
}

std::string json_string(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

int64_t json_int(const json& j, const char* key) {
  return j.contains(key) && j[key].is_number_integer() ? j[key].get<int64_t>() : 0;
}

// KEY=VALUE entries, a later key replacing an earlier one in place.
void set_env(std::vector<std::string>& env, const std::string& key, const std::string& value) {
  std::string prefix = key + "=";
  for (auto& e : env)
    if (e.compare(0, prefix.size(), prefix) == 0) {
      e = prefix + value;
      return;
    }
  env.push_back(prefix + value);
}

// docker's units for tmpfs sizes.
std::string tmpfs_options(const spec::ServiceVolume& v) {
  std::vector<std::string> opts;
  if (v.tmpfs && v.tmpfs->size) opts.push_back("size=" + std::to_string(v.tmpfs->size->value));
  if (v.tmpfs && v.tmpfs->mode) {
    char buf[16];
    snprintf(buf, sizeof buf, "%o", static_cast<unsigned>(*v.tmpfs->mode));
    opts.push_back(std::string("mode=") + buf);
  }
  std::string out;
  for (const auto& o : opts) out += (out.empty() ? "" : ",") + o;
  return out;
}

// The real name of each named volume the service mounts: ContainerSpec's
// `volumes` holds them sorted by key, as desired_state() lists the keys.
std::map<std::string, std::string> volume_names(const ContainerSpec& c) {
  std::set<std::string> keys;
  for (const auto& v : c.service_spec.volumes)
    if (v.type == "volume" && !v.source.empty()) keys.insert(v.source);
  std::map<std::string, std::string> out;
  if (keys.size() == c.volumes.size()) {
    std::size_t i = 0;
    for (const auto& k : keys) out[k] = c.volumes[i++];
  }
  return out;
}

void add_mounts(const ContainerSpec& c, runtime::ContainerSpec& s) {
  auto names = volume_names(c);
  for (const auto& v : c.service_spec.volumes) {
    runtime::MountSpec m;
    m.destination = v.target;
    m.read_only = v.read_only;
    if (v.type == "bind") {
      m.type = runtime::MountSpec::Type::Bind;
      m.source = v.source;
      bool create = !v.bind || !v.bind->create_host_path || *v.bind->create_host_path;
      if (!path_exists(m.source)) {
        if (!create) fail(c, "bind source path does not exist: " + m.source);
        make_dirs(m.source);
      }
    } else if (v.type == "volume") {
      m.type = runtime::MountSpec::Type::Volume;
      auto it = names.find(v.source);
      m.source = it != names.end() ? it->second : v.source;  // "" = anonymous
      m.no_copy = v.volume && v.volume->nocopy;
      if (v.volume && !v.volume->subpath.empty()) fail(c, "volume subpath is not supported");
    } else if (v.type == "tmpfs") {
      m.type = runtime::MountSpec::Type::Tmpfs;
      m.options = tmpfs_options(v);
    } else {
      fail(c, "volumes of type " + v.type + " are not supported");
    }
    if (m.destination.empty() || m.destination[0] != '/') fail(c, "mount target must be absolute: " + v.target);
    s.mounts.push_back(std::move(m));
  }
  for (const auto& t : c.service_spec.tmpfs) {
    runtime::MountSpec m;
    m.type = runtime::MountSpec::Type::Tmpfs;
    std::size_t colon = t.find(':');
    m.destination = t.substr(0, colon);
    if (colon != std::string::npos) m.options = t.substr(colon + 1);
    if (m.destination.empty() || m.destination[0] != '/') fail(c, "tmpfs target must be absolute: " + t);
    s.mounts.push_back(std::move(m));
  }
}

void add_security(const ContainerSpec& c, runtime::ContainerSpec& s) {
  const auto& svc = c.service_spec;
  s.security.privileged = svc.privileged;
  s.security.cap_add = svc.cap_add;
  s.security.cap_drop = svc.cap_drop;
  for (const auto& opt : svc.security_opt) {
    std::size_t sep = opt.find_first_of("=:");
    std::string key = opt.substr(0, sep), val = sep == std::string::npos ? "" : opt.substr(sep + 1);
    if (key == "seccomp") {
      if (val == "unconfined") s.security.seccomp_profile = "unconfined";
      else if (val.empty()) fail(c, "invalid security_opt: " + opt);
      else {
        std::string path = path_absolute(val, c.labels.count(label::working_dir) ? c.labels.at(label::working_dir) : "");
        try {
          s.security.seccomp_profile = read_file(path);
        } catch (const Error& e) {
          fail(c, std::string("opening seccomp profile failed: ") + e.what());
        }
      }
    } else if (key == "no-new-privileges") {
      if (val.empty() || val == "true") s.security.no_new_privileges = true;
      else if (val != "false") fail(c, "invalid security_opt: " + opt);
    } else if (key != "label" && key != "apparmor") {
      fail(c, "invalid security_opt: " + opt);
    }
  }
}

void add_limits(const ContainerSpec& c, runtime::ContainerSpec& s) {
  const auto& svc = c.service_spec;
  std::optional<spec::Resource> limits;
  if (svc.deploy && svc.deploy->resources) limits = svc.deploy->resources->limits;
  if (svc.mem_limit) s.limits.memory_bytes = svc.mem_limit->value;
  else if (limits && limits->memory) s.limits.memory_bytes = limits->memory->value;
  if (svc.memswap_limit) s.limits.memory_swap_bytes = svc.memswap_limit->value;
  if (s.limits.memory_bytes > 0 && s.limits.memory_bytes < 6 * 1024 * 1024)
    fail(c, "minimum memory limit allowed is 6MB");
  std::optional<double> cpus = svc.cpus;
  if (!cpus && limits) cpus = limits->cpus;
  if (cpus && *cpus > 0) s.limits.nano_cpus = static_cast<int64_t>(std::llround(*cpus * 1e9));
  if (svc.cpu_shares) s.limits.cpu_shares = *svc.cpu_shares;
  s.limits.cpuset_cpus = svc.cpuset;
  if (svc.pids_limit && *svc.pids_limit > 0) s.limits.pids_limit = *svc.pids_limit;
  else if (limits && limits->pids && *limits->pids > 0) s.limits.pids_limit = *limits->pids;
}

std::string restart_policy(const ContainerSpec& c) {
  const auto& svc = c.service_spec;
  const std::string& r = svc.restart;
  if (!r.empty()) {
    if (r == "no" || r == "always" || r == "unless-stopped" || r == "on-failure" || r.rfind("on-failure:", 0) == 0)
      return r;
    fail(c, "invalid restart policy \"" + r + "\"");
  }
  if (svc.deploy && svc.deploy->restart_policy) {
    const auto& p = *svc.deploy->restart_policy;
    if (p.condition == "none") return "no";
    if (p.condition == "on-failure")
      return p.max_attempts ? "on-failure:" + std::to_string(*p.max_attempts) : "on-failure";
    if (p.condition == "any" || p.condition.empty()) return "always";
    fail(c, "invalid deploy.restart_policy.condition \"" + p.condition + "\"");
  }
  return "no";
}

// The image's HEALTHCHECK, then the service's fields over it (compose:
// a healthcheck without `test` keeps the image's test).
runtime::HealthcheckSpec healthcheck(const ContainerSpec& c, const json& image) {
  runtime::HealthcheckSpec h;
  if (image.contains("Healthcheck") && image["Healthcheck"].is_object()) {
    const json& ih = image["Healthcheck"];
    h.test = json_strings(ih.value("Test", json()));
    h.interval_ns = json_int(ih, "Interval");
    h.timeout_ns = json_int(ih, "Timeout");
    h.start_period_ns = json_int(ih, "StartPeriod");
    h.start_interval_ns = json_int(ih, "StartInterval");
    h.retries = static_cast<int>(json_int(ih, "Retries"));
  }
  if (!c.service_spec.healthcheck) return h;
  const auto& sh = *c.service_spec.healthcheck;
  if (sh.disable) return runtime::HealthcheckSpec{{"NONE"}};
  if (!sh.test.empty()) h.test = sh.test;
  if (sh.interval) h.interval_ns = sh.interval->nanoseconds;
  if (sh.timeout) h.timeout_ns = sh.timeout->nanoseconds;
  if (sh.start_period) h.start_period_ns = sh.start_period->nanoseconds;
  if (sh.start_interval) h.start_interval_ns = sh.start_interval->nanoseconds;
  if (sh.retries) h.retries = static_cast<int>(*sh.retries);
  if (!h.test.empty() && h.test[0] != "CMD" && h.test[0] != "CMD-SHELL" && h.test[0] != "NONE")
    fail(c, "healthcheck test must start with CMD, CMD-SHELL or NONE");
  return h;
}

void warn_ignored(const ContainerSpec& c, std::vector<std::string>* warnings) {
  if (!warnings) return;
  const auto& s = c.service_spec;
  std::vector<std::string> keys;
  if (!s.devices.empty()) keys.push_back("devices");
  if (!s.pid.empty()) keys.push_back("pid");
  if (!s.ipc.empty()) keys.push_back("ipc");
  if (!s.group_add.empty()) keys.push_back("group_add");
  if (!s.cgroup_parent.empty()) keys.push_back("cgroup_parent");
  if (!s.secrets.empty()) keys.push_back("secrets");
  if (!s.configs.empty()) keys.push_back("configs");
  if (!s.volumes_from.empty()) keys.push_back("volumes_from");
  if (s.oom_score_adj) keys.push_back("oom_score_adj");
  for (const auto& k : keys)
    warnings->push_back("service " + c.service + ": " + k + " is not supported by berth yet; ignored");
}

}  // namespace

int signal_number(const std::string& name) {
  if (!name.empty() && std::all_of(name.begin(), name.end(), ::isdigit)) {
    int n = std::atoi(name.c_str());
    if (n > 0 && n < NSIG) return n;
  }
  std::string up;
  for (char ch : name) up += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (up.rfind("SIG", 0) == 0) up = up.substr(3);
  for (int n = 1; n < NSIG; ++n)
    if (const char* abbrev = sigabbrev_np(n); abbrev && up == abbrev) return n;
  throw Error("invalid signal: " + name, 0, 125);
}

runtime::ContainerSpec runtime_spec(const ContainerSpec& c, const ImageRootfs& image, std::vector<std::string>* warnings) {
  const spec::Service& svc = c.service_spec;
  const json& cfg = image.config;
  runtime::ContainerSpec s;
  s.name = c.name;
  s.image = svc.image.empty() ? image.reference : svc.image;
  s.lower_dirs = image.lower_dirs;
  s.annotations[kImageIdAnnotation] = image.id;

  // compose: `entrypoint` replaces the image's and drops its Cmd; `command` replaces Cmd.
  std::vector<std::string> entrypoint, cmd;
  if (svc.entrypoint) {
    entrypoint = *svc.entrypoint;
    if (svc.command) cmd = *svc.command;
  } else {
    entrypoint = json_strings(cfg.value("Entrypoint", json()));
    cmd = svc.command ? *svc.command : json_strings(cfg.value("Cmd", json()));
  }
  s.process.args = entrypoint;
  s.process.args.insert(s.process.args.end(), cmd.begin(), cmd.end());
  if (s.process.args.empty()) fail(c, "no command specified (neither the image nor the service sets one)");

  for (const auto& e : json_strings(cfg.value("Env", json()))) {
    std::size_t eq = e.find('=');
    if (eq != std::string::npos && eq > 0) set_env(s.process.env, e.substr(0, eq), e.substr(eq + 1));
  }
  for (const auto& [k, v] : svc.environment)
    if (v) set_env(s.process.env, k, *v);  // unset variables are left out, as compose does
  std::string workdir = svc.working_dir.empty() ? json_string(cfg, "WorkingDir") : svc.working_dir;
  s.process.cwd = workdir.empty() ? "/" : workdir;
  s.process.user = svc.user.empty() ? json_string(cfg, "User") : svc.user;
  s.process.tty = svc.tty;
  s.process.open_stdin = svc.stdin_open;
  s.hostname = svc.hostname;

  if (cfg.contains("Labels") && cfg["Labels"].is_object())
    for (const auto& [k, v] : cfg["Labels"].items())
      if (v.is_string()) s.labels[k] = v.get<std::string>();
  for (const auto& [k, v] : c.labels) s.labels[k] = v;

  add_mounts(c, s);
  s.read_only_rootfs = svc.read_only;
  add_security(c, s);
  s.init = svc.init.value_or(false);
  s.sysctls = svc.sysctls;  // checked by the runtime's create
  add_limits(c, s);
  if (svc.shm_size) s.shm_size = svc.shm_size->value;
  for (const auto& [name, u] : svc.ulimits) {
    runtime::Rlimit r{name};
    auto value = [](std::int64_t v) { return v < 0 ? ~0ULL : static_cast<uint64_t>(v); };
    if (u.single) r.soft = r.hard = value(*u.single);
    else {
      r.soft = value(u.soft.value_or(0));
      r.hard = value(u.hard.value_or(u.soft.value_or(0)));
    }
    s.rlimits.push_back(r);
  }
  std::string stop_signal = svc.stop_signal.empty() ? json_string(cfg, "StopSignal") : svc.stop_signal;
  if (!stop_signal.empty()) {
    try {
      signal_number(stop_signal);
    } catch (const Error&) {
      fail(c, "invalid stop_signal " + stop_signal);
    }
    s.stop_signal = stop_signal;
  }
  if (svc.stop_grace_period)
    s.annotations[kStopTimeoutAnnotation] = std::to_string((svc.stop_grace_period->nanoseconds + 999999999) / 1000000000);

  if (svc.logging) {
    const auto& l = *svc.logging;
    s.log.driver = l.driver.empty() ? "json-file" : l.driver;
    if (s.log.driver != "json-file" && s.log.driver != "none" && s.log.driver != "local")
      fail(c, "logging driver " + s.log.driver + " is not supported (json-file, local or none)");
    if (s.log.driver == "local") s.log.driver = "json-file";
    for (const auto& [k, v] : l.options) {
      if (k == "max-size") {
        char* end = nullptr;
        double n = std::strtod(v.c_str(), &end);
        std::string unit = end ? end : "";
        for (auto& ch : unit) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (!unit.empty() && unit.back() == 'b') unit.pop_back();
        double mult = unit.empty() ? 1 : unit == "k" ? 1024.0 : unit == "m" ? 1048576.0 : unit == "g" ? 1073741824.0 : -1;
        if (end == v.c_str() || mult < 0 || n < 0) fail(c, "invalid logging max-size " + v);
        s.log.max_size = static_cast<int64_t>(n * mult);
      } else if (k == "max-file") {
        s.log.max_file = std::atoi(v.c_str());
        if (s.log.max_file < 1) fail(c, "logging max-file cannot be less than 1");
      } else {
        fail(c, "unknown log opt '" + k + "' for the " + s.log.driver + " log driver");
      }
    }
  }
  s.restart_policy = restart_policy(c);
  s.healthcheck = healthcheck(c, cfg);
  warn_ignored(c, warnings);

  // docker's merged Config, for inspect and commit (as `berth run` records it).
  json merged = {{"Env", s.process.env},
                 {"WorkingDir", workdir},
                 {"User", s.process.user},
                 {"Labels", s.labels},
                 {"Entrypoint", entrypoint.empty() ? json() : json(entrypoint)},
                 {"Cmd", cmd.empty() ? json() : json(cmd)}};
  if (!stop_signal.empty()) merged["StopSignal"] = s.stop_signal;
  for (const char* key : {"ExposedPorts", "Volumes"})
    if (cfg.contains(key) && cfg[key].is_object() && !cfg[key].empty()) merged[key] = cfg[key];
  for (auto& e : c.service_spec.expose) {
    std::vector<std::string> keys;
    try {
      keys = net::parse_expose_spec(e);
    } catch (const Error& err) {
      fail(c, std::string("expose: ") + err.what());
    }
    for (auto& key : keys) merged["ExposedPorts"][key] = json::object();
  }
  s.annotations[kConfigAnnotation] = merged.dump();
  return s;
}

ContainerNetworkRequest network_request(const ContainerSpec& c, const std::string& service_container) {
  const spec::Service& svc = c.service_spec;
  ContainerNetworkRequest req;
  const std::string& mode = svc.network_mode;
  if (mode == "none" || mode == "host") {
    req.networks.push_back({mode});
  } else if (mode.rfind("container:", 0) == 0) {
    req.networks.push_back({mode});
  } else if (mode.rfind("service:", 0) == 0) {
    if (service_container.empty())
      throw Error("service " + c.service + ": network_mode " + mode + ": no running container of that service", 0, 125);
    req.networks.push_back({"container:" + service_container});
  } else if (!mode.empty() && svc.networks.empty()) {
    req.networks.push_back({mode == "default" ? std::string(net::kDefaultNetworkName) : mode, {c.service}});
  } else {
    // svc.networks is keyed (and sorted) like c.networks holds the real names.
    std::size_t i = 0;
    for (const auto& [key, sn] : svc.networks) {
      NetworkJoin join;
      join.network = i < c.networks.size() ? c.networks[i] : key;
      ++i;
      join.aliases.push_back(c.service);
      if (sn) {
        for (const auto& a : sn->aliases)
          if (std::find(join.aliases.begin(), join.aliases.end(), a) == join.aliases.end()) join.aliases.push_back(a);
        if (!sn->ipv4_address.empty()) join.ipv4_address = sn->ipv4_address;
      }
      req.networks.push_back(std::move(join));
    }
  }
  bool shared = req.networks.size() == 1 &&
                (req.networks[0].network == "host" || req.networks[0].network == "none" ||
                 req.networks[0].network.rfind("container:", 0) == 0);
  if (!shared) {
    for (const auto& p : svc.ports) {
      std::string spec;
      if (!p.host_ip.empty()) spec += p.host_ip + ":";
      if (!p.published.empty()) spec += p.published + ":";
      else if (!p.host_ip.empty()) spec += ":";
      spec += std::to_string(p.target) + "/" + (p.protocol.empty() ? "tcp" : p.protocol);
      req.publish.push_back(spec);
    }
    req.dns = svc.dns;
    req.dns_search = svc.dns_search;
    req.dns_opt = svc.dns_opt;
    for (const auto& [host, ips] : svc.extra_hosts)
      for (const auto& ip : ips) req.extra_hosts.push_back(host + ":" + ip);
  }
  req.hostname = svc.hostname;
  return req;
}

RuntimeDriver::RuntimeDriver(runtime::Paths paths, DriverOptions options)
    : paths_(std::move(paths)), options_(std::move(options)) {}

namespace {

template <typename F>
void complete(const Completion& done, F&& f) {
  std::optional<Error> error;
  try {
    f();
  } catch (const Error& e) {
    error = e;
  } catch (const std::exception& e) {
    error = Error(e.what(), 0, 125);
  }
  done(std::move(error));
}

}  // namespace

void RuntimeDriver::create_network(const NetworkSpec& n, Completion done) {
  complete(done, [&] {
    net::NetworkManager mgr(paths_.root);
    if (n.external) {
      if (!mgr.store().find(n.name))
        throw Error("network " + n.name + " declared as external, but could not be found", 0, 125);
      return;
    }
    if (auto existing = mgr.store().find(n.name)) {
      auto it = existing->labels.find(label::project);
      if (it == existing->labels.end() || it->second != n.labels.at(label::project))
        throw Error("network " + n.name + " exists but was not created by this project", 0, 125);
      return;
    }
    const spec::Network& sn = n.network;
    if (!sn.driver.empty() && sn.driver != "bridge")
      throw Error("network " + n.key + ": driver " + sn.driver + " is not supported (bridge only)", 0, 125);
    net::CreateNetworkOptions o;
    o.name = n.name;
    o.internal = sn.internal;
    o.labels = n.labels;
    if (sn.ipam)
      for (const auto& cfg : sn.ipam->config) {
        if (!cfg.subnet.empty() && cfg.subnet.find(':') == std::string::npos) {
          o.subnet = cfg.subnet;
          if (!cfg.gateway.empty()) o.gateway = cfg.gateway;
          break;
        }
      }
    if (auto mtu = sn.driver_opts.find("com.docker.network.driver.mtu"); mtu != sn.driver_opts.end())
      o.mtu = std::atoi(mtu->second.c_str());
    mgr.create(o);
  });
}

void RuntimeDriver::remove_network(const std::string& name, Completion done) {
  complete(done, [&] {
    net::NetworkManager mgr(paths_.root);
    if (!mgr.store().find(name)) return;
    mgr.remove(name);
  });
}

void RuntimeDriver::create_volume(const VolumeSpec& v, Completion done) {
  complete(done, [&] {
    runtime::VolumeStore store(paths_);
    if (v.external) {
      if (!store.find(v.name))
        throw Error("external volume \"" + v.name + "\" not found", 0, 125);
      return;
    }
    if (auto existing = store.find(v.name)) {
      auto it = existing->labels.find(label::project);
      if (it == existing->labels.end() || it->second != v.labels.at(label::project)) {
        if (options_.warn)
          options_.warn("volume \"" + v.name + "\" already exists but was not created by berth compose; using it");
      }
      return;
    }
    runtime::VolumeCreate req;
    req.name = v.name;
    if (!v.volume.driver.empty()) req.driver = v.volume.driver;
    req.labels = v.labels;
    req.options = v.volume.driver_opts;
    store.create(req);
  });
}

void RuntimeDriver::remove_volume(const std::string& name, Completion done) {
  complete(done, [&] {
    runtime::VolumeStore store(paths_);
    if (!store.find(name)) return;
    store.remove(name);
  });
}

std::string RuntimeDriver::create(const ContainerSpec& c) {
  runtime::Runtime rt(paths_);
  std::string image_ref = c.service_spec.image;
  if (image_ref.empty()) fail(c, "no image (berth cannot build images)");
  ImageRootfs image;
  try {
    image = resolve_image(paths_.root, c.image_id.empty() ? image_ref : c.image_id);
  } catch (const Error& e) {
    fail(c, e.what());
  }
  image.reference = image_ref;
  // compose never creates an external volume: a missing one fails the service.
  runtime::VolumeStore volume_store(paths_);
  for (const auto& v : c.external_volumes)
    if (!volume_store.find(v)) fail(c, "external volume \"" + v + "\" not found");
  std::vector<std::string> warnings;
  runtime::ContainerSpec spec = runtime_spec(c, image, &warnings);
  if (options_.warn)
    for (const auto& w : warnings) options_.warn(w);

  // network_mode service:X joins the netns of X's first running container.
  std::string service_container;
  if (c.service_spec.network_mode.rfind("service:", 0) == 0) {
    std::string other = c.service_spec.network_mode.substr(8);
    for (const auto& rc : rt.list()) {
      auto p = rc.spec.labels.find(label::project);
      auto s = rc.spec.labels.find(label::service);
      if (p != rc.spec.labels.end() && p->second == c.project && s != rc.spec.labels.end() && s->second == other &&
          rc.state.status == runtime::Status::Running) {
        service_container = rc.id;
        break;
      }
    }
  }
  ContainerNetworkRequest request = network_request(c, service_container);
  std::string id = runtime::new_container_id();
  ContainerNetwork network = setup_container_network(rt, id, c.name, request);
  apply_container_network(network, id, request, spec);
  try {
    rt.create(spec, id);
  } catch (...) {
    release_container_network(rt, id);
    throw;
  }
  try {
    hold_image(paths_.root, image.id, id);
  } catch (...) {
    try {
      rt.remove(id, true);
    } catch (const Error&) {
    }
    release_container_network(rt, id);
    throw;
  }
  return id;
}

void RuntimeDriver::create_container(const ContainerSpec& c, Completion done) {
  complete(done, [&] { create(c); });
}

void RuntimeDriver::start_container(const std::string& container, Completion done) {
  complete(done, [&] {
    runtime::Runtime rt(paths_);
    rt.start(container);
  });
}

void RuntimeDriver::stop(const std::string& container, std::optional<int> timeout) {
  runtime::Runtime rt(paths_);
  runtime::Container c = rt.get(container);
  int t = timeout.value_or(10);
  if (options_.stop_timeout) t = *options_.stop_timeout;
  else if (auto it = c.spec.annotations.find(kStopTimeoutAnnotation); it != c.spec.annotations.end())
    t = std::atoi(it->second.c_str());
  int sig = SIGTERM;
  try {
    sig = signal_number(c.spec.stop_signal);
  } catch (const Error&) {
  }
  rt.stop(c.id, t, sig);
}

void RuntimeDriver::stop_container(const std::string& container, std::chrono::seconds timeout, Completion done) {
  complete(done, [&] { stop(container, static_cast<int>(timeout.count())); });
}

void RuntimeDriver::remove(const std::string& container) {
  runtime::Runtime rt(paths_);
  runtime::Container c = rt.get(container);
  rt.remove(c.id, true, options_.remove_anonymous_volumes);
  release_container_network(rt, c.id);
  release_image(paths_.root, c.id);
}

void RuntimeDriver::remove_container(const std::string& container, Completion done) {
  complete(done, [&] { remove(container); });
}

void RuntimeDriver::rename_container(const std::string& container, const std::string& new_name, Completion done) {
  complete(done, [&] { runtime::Runtime(paths_).rename(container, new_name); });
}

void RuntimeDriver::wait(const WaitFor& w) {
  runtime::Runtime rt(paths_);
  auto deadline = std::chrono::steady_clock::now() + options_.wait_timeout;
  for (;;) {
    bool all = true;
    for (const auto& name : w.containers) {
      runtime::Container c = rt.get(name);
      const auto& st = c.state;
      bool running = st.status == runtime::Status::Running;
      if (w.condition == "service_healthy") {
        if (!c.spec.healthcheck.enabled())
          throw Error("container " + name + " has no healthcheck configured", 0, 125);
        if (st.health.status == "unhealthy") throw Error("container " + name + " is unhealthy", 0, 125);
        if (!running && st.status != runtime::Status::Restarting)
          throw Error("container " + name + " exited (" + std::to_string(st.exit_code) + ")", 0, 125);
        if (st.health.status != "healthy") all = false;
      } else if (w.condition == "service_completed_successfully") {
        if (st.status == runtime::Status::Exited || st.status == runtime::Status::Dead) {
          if (st.exit_code != 0)
            throw Error("service \"" + w.service + "\" didn't complete successfully: exit " +
                            std::to_string(st.exit_code),
                        0, 125);
        } else {
          all = false;
        }
      } else {  // service_started
        if (st.status == runtime::Status::Created) all = false;
      }
    }
    if (all) return;
    if (std::chrono::steady_clock::now() >= deadline)
      throw Error("timed out waiting for service " + w.service + " (" + w.condition + ")", 0, 125);
    std::this_thread::sleep_for(options_.poll_interval);
  }
}

void RuntimeDriver::wait_condition(const WaitFor& w, Completion done) {
  complete(done, [&] { wait(w); });
}

}  // namespace berth::reconciler
