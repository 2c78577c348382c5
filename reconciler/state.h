// Desired state (computed from a spec::Project) and observed state (a plain
// snapshot the caller fills from the runtime, net and images libraries).
// Both are plain values: copyable, comparable with ==, printable.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "spec/model.h"

namespace berth::reconciler {

using StringMap = std::map<std::string, std::string>;

// The labels berth puts on everything it creates. They mirror docker
// compose's, so that tools reading compose labels understand berth's
// containers, and so that observing needs nothing but labels.
namespace label {
inline constexpr const char* project = "com.docker.compose.project";
inline constexpr const char* service = "com.docker.compose.service";
inline constexpr const char* container_number = "com.docker.compose.container-number";
inline constexpr const char* config_hash = "com.docker.compose.config-hash";
inline constexpr const char* image = "com.docker.compose.image";  // image digest, when known
inline constexpr const char* oneoff = "com.docker.compose.oneoff";  // "True" for `run` containers
inline constexpr const char* working_dir = "com.docker.compose.project.working_dir";
inline constexpr const char* config_files = "com.docker.compose.project.config_files";
// "dep:condition:restart,..." as compose writes it; lets `down` stop
// dependents before their dependencies without reading the compose file.
inline constexpr const char* depends_on = "com.docker.compose.depends_on";
inline constexpr const char* network = "com.docker.compose.network";  // the key under `networks:`
inline constexpr const char* volume = "com.docker.compose.volume";    // the key under `volumes:`
}  // namespace label

// ------------------------------------------------------------------ desired

struct NetworkSpec {
  std::string key;   // "default", as under `networks:`
  std::string name;  // "app_default"
  bool external = false;
  StringMap labels;
  spec::Network network;
  bool operator==(const NetworkSpec&) const = default;
};

struct VolumeSpec {
  std::string key;   // "data"
  std::string name;  // "app_data"
  bool external = false;
  StringMap labels;
  spec::Volume volume;
  bool operator==(const VolumeSpec&) const = default;
};

// Everything a Driver needs to create one container of a service: the
// normalized service model (never YAML), its name, labels and the real
// names of the networks and named volumes it uses.
struct ContainerSpec {
  std::string project;
  std::string service;
  int number = 1;
  std::string name;         // "<project>-<service>-<n>" or container_name
  std::string config_hash;  // spec::service_config_hash
  std::string image_id;     // digest of the image to run, "" when not known yet
  StringMap labels;
  std::vector<std::string> networks;  // real network names, sorted by key
  std::vector<std::string> volumes;   // real named-volume names, sorted by key
  std::vector<std::string> external_volumes;  // those of `volumes` declared external: they must exist
  spec::Service service_spec;
  bool operator==(const ContainerSpec&) const = default;
};

struct DesiredService {
  std::string name;
  std::int64_t replicas = 1;
  std::string config_hash;
  std::string image_id;  // "" when not known
  // depends_on plus the dependencies compose implies: `network_mode:
  // service:X` (restart: true, since the shared network namespace goes away
  // with X), `volumes_from: [X]` and `links: [X]` (service_started).
  std::map<std::string, spec::DependsOn> depends_on;
  std::string network_mode_service;  // X of `network_mode: service:X`: create after X started
  std::vector<std::string> network_keys;  // keys under `networks:`
  std::vector<std::string> volume_keys;   // named volumes it mounts
  std::vector<ContainerSpec> containers;  // numbers 1..replicas
  bool operator==(const DesiredService&) const = default;
};

struct DesiredState {
  std::string project;
  std::map<std::string, DesiredService> services;
  std::vector<std::string> service_order;  // dependencies (also implied ones) first, ties sorted
  std::map<std::string, NetworkSpec> networks;  // by key
  std::map<std::string, VolumeSpec> volumes;    // by key
  bool operator==(const DesiredState&) const = default;
};

struct DesiredOptions {
  std::map<std::string, std::int64_t> scale;     // --scale svc=N, overrides replicas
  std::map<std::string, std::string> image_ids;  // service -> image digest, when resolved
};

// Throws berth::Error for a --scale of an unknown service, a negative scale,
// or a container_name service scaled above 1.
DesiredState desired_state(const spec::Project& project, const DesiredOptions& options = {});

// "<project>-<service>-<n>", or container_name when the service sets one.
std::string container_name(const std::string& project, const spec::Service& service, int number);

// ------------------------------------------------------------------ observed

enum class ContainerState { created, running, paused, restarting, exited, dead };
enum class Health { none, starting, healthy, unhealthy };

std::string to_string(ContainerState state);
std::string to_string(Health health);
// Throw berth::Error on an unknown word.
ContainerState container_state_from_string(const std::string& word);
Health health_from_string(const std::string& word);

struct ObservedContainer {
  std::string id;
  std::string name;
  StringMap labels;
  ContainerState state = ContainerState::created;
  int exit_code = 0;
  Health health = Health::none;
  std::string image_id;

  // Label accessors ("" / 0 when the label is absent or malformed).
  std::string label(const std::string& key) const;
  std::string service() const { return label(label::service); }
  int number() const;
  bool oneoff() const { return label(label::oneoff) == "True"; }
  // Running for the purpose of `up`: paused and restarting containers are
  // left alone, as compose does.
  bool is_up() const;
  bool operator==(const ObservedContainer&) const = default;
};

struct ObservedNetwork {
  std::string id;
  std::string name;
  StringMap labels;
  bool operator==(const ObservedNetwork&) const = default;
};

struct ObservedVolume {
  std::string name;
  StringMap labels;
  bool operator==(const ObservedVolume&) const = default;
};

// One snapshot of the world, taken once before planning. The caller may put
// in everything it sees; the planner selects by project label.
struct ObservedState {
  std::vector<ObservedContainer> containers;
  std::vector<ObservedNetwork> networks;
  std::vector<ObservedVolume> volumes;
  bool operator==(const ObservedState&) const = default;
};

// JSON form (golden tests, `--format json` later). Missing fields take their
// defaults; unknown states throw berth::Error.
nlohmann::json to_json(const ObservedState& observed);
ObservedState observed_from_json(const nlohmann::json& json);

std::ostream& operator<<(std::ostream& os, const ObservedState& observed);
std::ostream& operator<<(std::ostream& os, const ObservedContainer& container);
std::ostream& operator<<(std::ostream& os, const ContainerSpec& container);
std::ostream& operator<<(std::ostream& os, const DesiredState& desired);

}  // namespace berth::reconciler
