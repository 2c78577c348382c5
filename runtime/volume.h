// Volumes of the `local` driver, as docker keeps them: one directory per
// volume under <root>/volumes/<name>/ holding the data (_data, the
// mountpoint) and a small JSON record (volume.json). Anonymous volumes get a
// 64-hex random name and docker's com.docker.volume.anonymous label.
//
// Safe for concurrent berth processes: every change happens under an flock
// on <root>/volumes/.lock. Runtime::create takes the same lock while it
// resolves a container's volume mounts, so a volume can never be removed
// between "the container uses it" and "the container is recorded".
//
// Containers refer to volumes by name in their MountSpec (Type::Volume,
// source = name; an empty source asks Runtime::create for a new anonymous
// volume). The "in use" check is over every container under the same root,
// whatever its state, as docker's.
//
// For the reconciler: create(VolumeCreate{name, "local", labels}) is
// idempotent (an existing volume is returned, as `docker volume create`
// does); list()/find() give the labels back; users() is the in-use check;
// remove() refuses a used volume (exit code 1, docker's message).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/fs.h"
#include "runtime/runtime.h"

namespace berth::runtime {

// docker's label on anonymous volumes (docker 23+ prune keys on it).
inline constexpr const char* kAnonymousVolumeLabel = "com.docker.volume.anonymous";

struct Volume {
  std::string name;
  std::string driver = "local";
  std::map<std::string, std::string> labels;
  // Driver options as given (-o / compose driver_opts): type, device, o.
  std::map<std::string, std::string> options;
  std::string created_at;  // RFC 3339, docker's CreatedAt
  std::string mountpoint;  // <root>/volumes/<name>/_data
  bool anonymous = false;
};

struct VolumeCreate {
  std::string name;  // empty = a random 64-hex name
  // Made for one container (-v /dst, an image's Volumes): labelled
  // com.docker.volume.anonymous, removed by rm -v and run --rm, and the
  // only kind `volume prune` removes without -a.
  bool anonymous = false;
  std::string driver = "local";
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> options;
};

// Throws Error (exit code 1) unless name follows docker's rule
// [a-zA-Z0-9][a-zA-Z0-9_.-]+, with docker's message.
void validate_volume_name(const std::string& name);

// docker's `-v`/`--volume` syntax to a mount:
//   /host/path:/dst[:opts]  bind mount (the source made absolute against cwd)
//   NAME:/dst[:opts]        named volume (created on first use by Runtime::create)
//   /dst                    anonymous volume
// opts: ro, rw, nocopy, z/Z and the propagation words (accepted). Throws
// UsageError-like Error (exit code 125) naming the spec.
MountSpec parse_volume_flag(const std::string& spec);

// docker's `--mount` syntax: comma-separated key=value, keys type
// (volume|bind|tmpfs, default volume), source|src, target|destination|dst,
// readonly|ro[=true|false], volume-nocopy, tmpfs-size, tmpfs-mode,
// bind-propagation and consistency (accepted). A bind source must exist.
// Throws Error (exit code 125) naming the spec.
MountSpec parse_mount_flag(const std::string& spec);

class VolumeStore {
 public:
  // Holds the store's flock until destroyed.
  class Lock {
   public:
    explicit Lock(const std::string& dir);

   private:
    UniqueFd fd_;
  };

  explicit VolumeStore(Paths paths);

  Lock lock() const { return Lock(dir_); }

  // Creates the volume, or returns the existing one of that name (docker's
  // behaviour; an existing volume of another driver is an error). Bad name,
  // unknown driver or bad options: Error with exit code 1, nothing made.
  Volume create(const VolumeCreate& req);
  Volume create(const VolumeCreate& req, const Lock& held);

  std::optional<Volume> find(const std::string& name) const;
  // "get NAME: no such volume" (exit code 1) when missing.
  Volume get(const std::string& name) const;
  std::vector<Volume> list() const;  // sorted by name

  // Ids of the containers (any state) that mount the volume.
  std::vector<std::string> users(const std::string& name) const;

  // Refused while a container uses it ("remove NAME: volume is in use - [ids]").
  void remove(const std::string& name);
  void remove(const std::string& name, const Lock& held);

  struct PruneResult {
    std::vector<std::string> removed;
    uint64_t reclaimed_bytes = 0;
  };
  // Unused volumes: anonymous ones only unless all (docker 23+); label
  // filters "k" or "k=v" (all must match), "label!=..." negated.
  PruneResult prune(bool all, const std::vector<std::string>& label_filters = {});

  // Bytes under the volume's mountpoint (for prune's report).
  static uint64_t disk_usage(const Volume& v);

  const std::string& dir() const { return dir_; }

 private:
  std::optional<Volume> load(const std::string& name) const;

  Paths paths_;
  std::string dir_;  // <root>/volumes
};

// docker's rm -v and run --rm: removes the anonymous volumes the (already
// removed) container mounted, unless another container uses them. Named
// volumes are never removed. Best effort: failures are only logged.
void remove_anonymous_volumes(const Paths& paths, const std::vector<std::string>& volume_names) noexcept;
// The names of the volumes a spec mounts (Type::Volume sources).
std::vector<std::string> volume_names(const ContainerSpec& spec);

}  // namespace berth::runtime
