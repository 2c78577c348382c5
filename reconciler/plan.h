// The plan: a pure value, a DAG of atomic operations computed from the
// desired and the observed state. Planning makes no calls to the outside.
//
// Recreating a container is: StopContainer (when up) -> RemoveContainer ->
// CreateContainer -> StartContainer. berth does not rename the old container
// to "<id>_<name>" first as compose does: that keeps a second, oddly named
// container of the service around when the create fails, which the next
// plan would then have to recognise and clean up. Stop+remove first keeps
// "one container per number" true at every step. RenameContainer exists for
// the Driver and executor, but `plan` does not emit it yet.
#pragma once

#include <optional>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "reconciler/state.h"

namespace berth::reconciler {

enum class OpKind {
  CreateNetwork,
  RemoveNetwork,
  CreateVolume,
  RemoveVolume,
  CreateContainer,
  StartContainer,
  StopContainer,
  RemoveContainer,
  RenameContainer,
};
std::string to_string(OpKind kind);

// An edge: `op` must finish first. When `required` is false the dependent
// still runs if `op` fails (depends_on ... required: false).
struct Dependency {
  int op = 0;
  bool required = true;
  bool operator==(const Dependency&) const = default;
};

// Before a StartContainer, the executor waits for each dependency service
// to reach its depends_on condition (service_started, service_healthy,
// service_completed_successfully).
struct WaitFor {
  std::string service;
  std::string condition;
  bool required = true;
  std::vector<std::string> containers;  // the names of the service's containers
  bool operator==(const WaitFor&) const = default;
};

struct Operation {
  int id = 0;  // 1-based; ids follow the topological, deterministic order
  OpKind kind = OpKind::CreateContainer;
  std::string resource;  // "service:web:1", "network:default", "volume:data"
  std::string cause;     // "no existing container", "config hash changed", ...
  std::vector<Dependency> after;
  std::string service;   // for container operations
  std::string name;      // the real name of the container, network or volume
  std::string container_id;  // an existing container (start/stop/remove/rename); "" = by name
  std::string new_name;      // RenameContainer
  std::optional<ContainerSpec> container;  // CreateContainer
  std::optional<NetworkSpec> network;      // CreateNetwork
  std::optional<VolumeSpec> volume;        // CreateVolume
  std::vector<WaitFor> waits;              // StartContainer
  bool operator==(const Operation&) const = default;
};

struct Plan {
  std::vector<Operation> operations;  // in topological order, op.id == index + 1
  std::vector<std::string> warnings;  // e.g. orphans left in place
  bool empty() const { return operations.empty(); }
  bool operator==(const Plan&) const = default;
};

struct UpOptions {
  bool force_recreate = false;  // recreate the selected services' containers (all when none selected)
  bool no_recreate = false;     // never recreate; only create missing and start stopped
  bool remove_orphans = false;
  bool no_deps = false;                // with services: do not pull in their dependencies
  std::vector<std::string> services;  // empty = all
};

struct DownOptions {
  std::string project;
  // The project's services when the compose file is known; containers of
  // other services are orphans. nullopt (down by -p only): all are removed.
  std::optional<std::set<std::string>> services;
  bool remove_volumes = false;  // -v: named volumes of the project
  bool remove_orphans = false;
};

// Throws berth::Error for unknown selected services or contradictory options.
Plan plan(const DesiredState& desired, const ObservedState& observed, const UpOptions& options = {});
Plan plan_down(const ObservedState& observed, const DownOptions& options);

// One line per operation, in plan order, then one "warning: ..." line per
// warning. The line format is
//   [<deps>] -> #<id> <resource>, <Kind> <name>, <cause>
// where <deps> lists the ids this op waits for, comma-separated, a "?"
// suffix marking a dependency that may fail (required: false); and a
// StartContainer that waits for depends_on conditions appends
// " (waits for db:service_healthy, cache:service_started?)".
// An empty plan renders as "" (no operations, no warnings).
std::string render(const Plan& plan);
std::string render(const Operation& op);

std::ostream& operator<<(std::ostream& os, const Operation& op);
std::ostream& operator<<(std::ostream& os, const Plan& plan);

}  // namespace berth::reconciler
