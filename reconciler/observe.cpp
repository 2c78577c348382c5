#include "reconciler/observe.h"

#include <algorithm>

#include "net/network.h"
#include "reconciler/image_rootfs.h"
#include "runtime/volume.h"

namespace berth::reconciler {

namespace {

ContainerState state_of(runtime::Status status) {
  switch (status) {
    case runtime::Status::Created: return ContainerState::created;
    case runtime::Status::Running: return ContainerState::running;
    case runtime::Status::Paused: return ContainerState::paused;
    case runtime::Status::Restarting: return ContainerState::restarting;
    case runtime::Status::Exited: return ContainerState::exited;
    case runtime::Status::Dead: return ContainerState::dead;
  }
  return ContainerState::dead;
}

Health health_of(const std::string& status) {
  if (status == "starting") return Health::starting;
  if (status == "healthy") return Health::healthy;
  if (status == "unhealthy") return Health::unhealthy;
  return Health::none;
}

bool selected(const StringMap& labels, const std::string& project) {
  if (project.empty()) return labels.count(label::project) > 0;
  auto it = labels.find(label::project);
  return it != labels.end() && it->second == project;
}

}  // namespace

ObservedContainer observe_container(const runtime::Container& c) {
  ObservedContainer o;
  o.id = c.id;
  o.name = c.spec.name;
  o.labels = c.spec.labels;
  o.state = state_of(c.state.status);
  o.exit_code = c.state.exit_code;
  o.health = health_of(c.state.health.status);
  if (auto it = c.spec.annotations.find(kImageIdAnnotation); it != c.spec.annotations.end()) o.image_id = it->second;
  return o;
}

ObservedState observe(const runtime::Paths& paths, const std::string& project) {
  ObservedState out;
  runtime::Runtime rt(paths);
  for (const auto& c : rt.list())
    if (selected(c.spec.labels, project)) out.containers.push_back(observe_container(c));
  // Oldest first: the planner and `ps` want a stable order.
  std::reverse(out.containers.begin(), out.containers.end());
  for (const auto& n : net::NetworkManager(paths.root).list())
    if (selected(n.labels, project)) out.networks.push_back({n.id, n.name, n.labels});
  for (const auto& v : runtime::VolumeStore(paths).list())
    if (selected(v.labels, project)) out.volumes.push_back({v.name, v.labels});
  return out;
}

}  // namespace berth::reconciler
