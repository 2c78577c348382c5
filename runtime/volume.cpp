#include "runtime/volume.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "base/error.h"
#include "base/log.h"
#include "runtime/state.h"

namespace berth::runtime {

using nlohmann::json;

namespace {

std::string now_rfc3339_seconds() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm {};
  ::gmtime_r(&ts.tv_sec, &tm);
  char buf[32];
  ::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The keys docker's local driver accepts.
void validate_options(const std::string& name, const std::map<std::string, std::string>& options) {
  for (auto& [k, v] : options)
    if (k != "type" && k != "device" && k != "o")
      throw Error("create " + name + ": invalid option: \"" + k + "\"", 0, 1);
  bool has_type = options.count("type") > 0, has_device = options.count("device") > 0;
  if (!options.empty() && (!has_type || !has_device))
    throw Error("create " + name + ": missing required option: \"" + std::string(has_type ? "device" : "type") + "\"",
                0, 1);
}

json to_json(const Volume& v) {
  return {{"name", v.name},         {"driver", v.driver},         {"labels", v.labels},
          {"options", v.options},   {"created_at", v.created_at}, {"anonymous", v.anonymous}};
}

}  // namespace

void validate_volume_name(const std::string& name) {
  static const std::regex re("^[a-zA-Z0-9][a-zA-Z0-9_.-]+$");
  if (name.size() == 1)
    throw Error("create " + name + ": volume name is too short, names should be at least two alphanumeric characters",
                0, 1);
  if (!std::regex_match(name, re))
    throw Error("create " + name + ": \"" + name +
                    "\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are "
                    "allowed. If you intended to pass a host directory, use absolute path",
                0, 1);
}

MountSpec parse_volume_flag(const std::string& spec) {
  auto bad = [&](const std::string& why) -> Error {
    return Error("invalid volume specification: '" + spec + "'" + (why.empty() ? "" : ": " + why), 0, 125);
  };
  std::vector<std::string> parts;
  std::istringstream in(spec);
  for (std::string p; std::getline(in, p, ':');) parts.push_back(p);
  if (!spec.empty() && spec.back() == ':') parts.push_back("");
  for (auto& p : parts)
    if (p.empty()) throw Error("invalid spec: " + spec + ": empty section between colons", 0, 125);
  if (parts.empty() || parts.size() > 3) throw bad("");
  MountSpec m;
  std::string opts;
  if (parts.size() == 1) {
    // "/dst": an anonymous volume.
    m.type = MountSpec::Type::Volume;
    m.destination = parts[0];
  } else if (parts.size() == 2 && !parts[0].empty() && parts[0][0] == '/' && !parts[1].empty() &&
             parts[1][0] != '/') {
    // "/dst:ro": an anonymous volume with options.
    m.type = MountSpec::Type::Volume;
    m.destination = parts[0];
    opts = parts[1];
  } else {
    m.destination = parts[1];
    if (parts.size() == 3) opts = parts[2];
    if (parts[0][0] == '/') {
      m.type = MountSpec::Type::Bind;
      m.source = path_absolute(parts[0]);
    } else {
      m.type = MountSpec::Type::Volume;
      m.source = parts[0];
      try {
        validate_volume_name(m.source);
      } catch (const Error& e) {
        throw Error(e.what(), 0, 125);
      }
    }
  }
  const char* type = m.type == MountSpec::Type::Bind ? "bind" : "volume";
  if (m.destination.empty() || m.destination[0] != '/')
    throw bad("invalid mount config for type \"" + std::string(type) + "\": invalid mount path: '" + m.destination +
              "' mount path must be absolute");
  if (path_absolute(m.destination) == "/")
    throw bad("invalid mount config for type \"" + std::string(type) + "\": invalid specification: destination can't be '/'");
  std::istringstream os(opts);
  for (std::string o; std::getline(os, o, ',');) {
    if (o == "ro") m.read_only = true;
    else if (o == "nocopy" && m.type == MountSpec::Type::Volume) m.no_copy = true;
    else if (o == "rw" || o == "z" || o == "Z" || o == "rprivate" || o == "private" || o == "rslave" ||
             o == "slave" || o == "rshared" || o == "shared")
      continue;
    else
      throw Error("invalid mode: " + o, 0, 125);
  }
  return m;
}

MountSpec parse_mount_flag(const std::string& spec) {
  auto bad = [&](const std::string& why) -> Error {
    return Error("invalid argument \"" + spec + "\" for \"--mount\" flag: " + why, 0, 125);
  };
  MountSpec m;
  m.type = MountSpec::Type::Volume;
  std::string tmpfs_size, tmpfs_mode;
  std::istringstream in(spec);
  for (std::string field; std::getline(in, field, ',');) {
    auto eq = field.find('=');
    std::string key = field.substr(0, eq), value = eq == std::string::npos ? "" : field.substr(eq + 1);
    auto flag = [&]() {
      if (eq == std::string::npos || value == "true" || value == "1") return true;
      if (value == "false" || value == "0") return false;
      throw bad("invalid value for " + key + ": " + value);
    };
    if (key == "type") {
      if (value == "volume") m.type = MountSpec::Type::Volume;
      else if (value == "bind") m.type = MountSpec::Type::Bind;
      else if (value == "tmpfs") m.type = MountSpec::Type::Tmpfs;
      else throw Error("invalid mount config for type \"" + value + "\": mount type unknown", 0, 125);
    } else if (key == "source" || key == "src") {
      m.source = value;
    } else if (key == "target" || key == "destination" || key == "dst") {
      m.destination = value;
    } else if (key == "readonly" || key == "ro") {
      m.read_only = flag();
    } else if (key == "volume-nocopy") {
      m.no_copy = flag();
    } else if (key == "tmpfs-size") {
      tmpfs_size = value;
    } else if (key == "tmpfs-mode") {
      tmpfs_mode = value;
    } else if (key == "bind-propagation" || key == "consistency") {
      continue;
    } else {
      throw bad("unexpected key '" + key + "' in '" + field + "'");
    }
  }
  const char* type = m.type == MountSpec::Type::Bind ? "bind" : m.type == MountSpec::Type::Tmpfs ? "tmpfs" : "volume";
  if (m.destination.empty()) throw bad("target is required");
  if (m.destination[0] != '/')
    throw Error("invalid mount config for type \"" + std::string(type) + "\": invalid mount path: '" + m.destination +
                    "' mount path must be absolute",
                0, 125);
  if (path_absolute(m.destination) == "/")
    throw Error("invalid mount config for type \"" + std::string(type) +
                    "\": invalid specification: destination can't be '/'",
                0, 125);
  switch (m.type) {
    case MountSpec::Type::Bind:
      if (m.source.empty()) throw bad("source is required when specifying bind mount");
      m.source = path_absolute(m.source);
      if (!path_exists(m.source))
        throw Error("invalid mount config for type \"bind\": bind source path does not exist: " + m.source, 0, 125);
      break;
    case MountSpec::Type::Volume:
      if (!m.source.empty()) try {
          validate_volume_name(m.source);
        } catch (const Error& e) {
          throw Error(e.what(), 0, 125);
        }
      break;
    case MountSpec::Type::Tmpfs:
      if (!m.source.empty()) throw bad("source is not supported for tmpfs mounts");
      if (!tmpfs_size.empty()) m.options = "size=" + tmpfs_size;
      if (!tmpfs_mode.empty()) m.options += (m.options.empty() ? "" : ",") + std::string("mode=") + tmpfs_mode;
      break;
  }
  if (m.type != MountSpec::Type::Tmpfs && (!tmpfs_size.empty() || !tmpfs_mode.empty()))
    throw bad("tmpfs options are only valid for type=tmpfs");
  if (m.type != MountSpec::Type::Volume && m.no_copy) throw bad("volume-nocopy is only valid for type=volume");
  return m;
}

VolumeStore::Lock::Lock(const std::string& dir) {
  make_dirs(dir, 0700);
  fd_.reset(::open((dir + "/.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd_) throw_errno("cannot open " + dir + "/.lock");
  while (::flock(fd_.get(), LOCK_EX) != 0)
    if (errno != EINTR) throw_errno("flock " + dir + "/.lock");
}

VolumeStore::VolumeStore(Paths paths) : paths_(std::move(paths)), dir_(paths_.root + "/volumes") {}

Volume VolumeStore::create(const VolumeCreate& req) {
  Lock held = lock();
  return create(req, held);
}

Volume VolumeStore::create(const VolumeCreate& req, const Lock&) {
  Volume v;
  v.anonymous = req.anonymous;
  v.name = req.name.empty() ? state::new_id() : req.name;
  validate_volume_name(v.name);
  v.driver = req.driver.empty() ? "local" : req.driver;
  if (v.driver != "local")
    throw Error("create " + v.name + ": error looking up volume plugin " + v.driver + ": plugin \"" + v.driver +
                    "\" not found",
                0, 1);
  validate_options(v.name, req.options);
  if (auto existing = load(v.name)) {
    // docker: creating an existing volume returns it.
    return *existing;
  }
  v.labels = req.labels;
  if (v.anonymous) v.labels[kAnonymousVolumeLabel] = "";
  v.options = req.options;
  v.created_at = now_rfc3339_seconds();
  v.mountpoint = dir_ + "/" + v.name + "/_data";
  // Built under a temporary name and renamed into place: a volume
  // directory always has its record.
  std::string building = dir_ + "/.creating-" + std::to_string(::getpid()) + "-" + v.name;
  std::error_code ec;
  std::filesystem::remove_all(building, ec);
  try {
    make_dirs(building + "/_data", 0755);
    ::chmod((building + "/_data").c_str(), 0755);
    write_file_atomic(building + "/volume.json", to_json(v).dump(2), 0600);
    if (::rename(building.c_str(), (dir_ + "/" + v.name).c_str()) != 0)
      throw_errno("cannot create volume " + v.name);
  } catch (...) {
    std::filesystem::remove_all(building, ec);
    throw;
  }
  return v;
}

std::optional<Volume> VolumeStore::load(const std::string& name) const {
  if (name.empty() || name[0] == '.' || name.find('/') != std::string::npos) return std::nullopt;
  std::string text;
  if (!read_file_if_exists(dir_ + "/" + name + "/volume.json", text)) return std::nullopt;
  Volume v;
  try {
    json j = json::parse(text);
    v.name = j.value("name", name);
    v.driver = j.value("driver", "local");
    v.labels = j.value("labels", std::map<std::string, std::string>{});
    v.options = j.value("options", std::map<std::string, std::string>{});
    v.created_at = j.value("created_at", "");
    v.anonymous = j.value("anonymous", false);
  } catch (const json::exception& e) {
    throw Error("corrupt volume record " + dir_ + "/" + name + "/volume.json: " + e.what());
  }
  v.mountpoint = dir_ + "/" + name + "/_data";
  return v;
}

std::optional<Volume> VolumeStore::find(const std::string& name) const { return load(name); }

Volume VolumeStore::get(const std::string& name) const {
  auto v = load(name);
  if (!v) throw Error("get " + name + ": no such volume", 0, 1);
  return *v;
}

std::vector<Volume> VolumeStore::list() const {
  std::vector<Volume> out;
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    std::string n = e.path().filename();
    if (n.empty() || n[0] == '.') continue;
    try {
      if (auto v = load(n)) out.push_back(*v);
    } catch (const Error&) {
      // A corrupt record is skipped by ls, as a corrupt container is.
    }
  }
  std::sort(out.begin(), out.end(), [](const Volume& a, const Volume& b) { return a.name < b.name; });
  return out;
}

std::vector<std::string> VolumeStore::users(const std::string& name) const {
  std::vector<std::string> out;
  for (auto& id : state::list_ids(paths_)) {
    ContainerSpec spec;
    try {
      spec = state::load_spec(state::container_dir(paths_, id));
    } catch (const Error&) {
      continue;
    }
    for (auto& m : spec.mounts)
      if (m.type == MountSpec::Type::Volume && m.source == name) {
        out.push_back(id);
        break;
      }
  }
  std::sort(out.begin(), out.end());
  return out;
}

void VolumeStore::remove(const std::string& name) {
  Lock held = lock();
  remove(name, held);
}

void VolumeStore::remove(const std::string& name, const Lock&) {
  get(name);
  auto used = users(name);
  if (!used.empty()) {
    std::string ids;
    for (auto& id : used) ids += (ids.empty() ? "" : " ") + id;
    throw Error("remove " + name + ": volume is in use - [" + ids + "]", 0, 1);
  }
  // Renamed first so a half-removed volume never looks like a volume.
  std::string doomed = dir_ + "/.removing-" + std::to_string(::getpid()) + "-" + name;
  if (::rename((dir_ + "/" + name).c_str(), doomed.c_str()) != 0) throw_errno("cannot remove volume " + name);
  std::error_code ec;
  std::filesystem::remove_all(doomed, ec);
  if (ec) throw Error("cannot remove volume " + name + ": " + ec.message());
}

uint64_t VolumeStore::disk_usage(const Volume& v) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           v.mountpoint, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) total += static_cast<uint64_t>(st.st_size);
  }
  return total;
}

VolumeStore::PruneResult VolumeStore::prune(bool all, const std::vector<std::string>& label_filters) {
  Lock held = lock();
  // Leftovers of a create or remove cut short.
  std::error_code ec;
  for (auto& e : std::filesystem::directory_iterator(dir_, ec)) {
    std::string n = e.path().filename();
    if (n.rfind(".creating-", 0) != 0 && n.rfind(".removing-", 0) != 0) continue;
    pid_t pid = std::atoi(n.c_str() + 10);
    if (pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM)) continue;
    std::error_code ignored;
    std::filesystem::remove_all(e.path(), ignored);
  }
  PruneResult result;
  for (auto& v : list()) {
    if (!all && !v.anonymous) continue;
    bool match = true;
    for (auto f : label_filters) {
      bool negate = false;
      if (!f.empty() && f[0] == '!') {
        negate = true;
        f.erase(0, 1);
      }
      auto eq = f.find('=');
      auto it = v.labels.find(f.substr(0, eq));
      bool has = it != v.labels.end() && (eq == std::string::npos || it->second == f.substr(eq + 1));
      if (has == negate) match = false;
    }
    if (!match || !users(v.name).empty()) continue;
    uint64_t size = disk_usage(v);
    remove(v.name, held);
    result.removed.push_back(v.name);
    result.reclaimed_bytes += size;
  }
  return result;
}

std::vector<std::string> volume_names(const ContainerSpec& spec) {
  std::vector<std::string> out;
  for (auto& m : spec.mounts)
    if (m.type == MountSpec::Type::Volume && !m.source.empty()) out.push_back(m.source);
  return out;
}

void remove_anonymous_volumes(const Paths& paths, const std::vector<std::string>& names) noexcept {
  try {
    VolumeStore store(paths);
    std::optional<VolumeStore::Lock> held;
    for (auto& name : names) {
      if (!held) held.emplace(store.lock());
      auto v = store.find(name);
      if (!v || !v->anonymous || !store.users(v->name).empty()) continue;
      try {
        store.remove(v->name, *held);
      } catch (const Error& e) {
        spdlog::warn("cannot remove volume {}: {}", v->name, e.what());
      }
    }
  } catch (const std::exception& e) {
    spdlog::warn("cannot remove the container's volumes: {}", e.what());
  }
}

}  // namespace berth::runtime
