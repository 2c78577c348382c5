// The planner: (desired, observed) -> DAG of operations. Pure; compose's
// convergence rules. See plan.h for the recreate sequence.
#include "reconciler/plan.h"

#include <algorithm>
#include <functional>
#include <queue>

#include "base/error.h"

namespace berth::reconciler {

namespace {

// Collects operations in generation order, then numbers them in a stable
// topological order: among the ready operations the earliest generated goes
// first, so the same inputs always give the same ids.
class Builder {
 public:
  std::size_t add(Operation op) {
    ops_.push_back(std::move(op));
    edges_.emplace_back();
    return ops_.size() - 1;
  }
  void edge(std::size_t op, std::size_t must_finish_first, bool required = true) {
    for (auto& e : edges_[op])
      if (e.op == static_cast<int>(must_finish_first)) {
        e.required = e.required || required;
        return;
      }
    edges_[op].push_back({static_cast<int>(must_finish_first), required});
  }
  Operation& at(std::size_t index) { return ops_[index]; }

  Plan finish(std::vector<std::string> warnings) {
    std::size_t n = ops_.size();
    std::vector<std::vector<std::size_t>> dependents(n);
    std::vector<std::size_t> missing(n, 0);
    for (std::size_t i = 0; i < n; ++i)
      for (const auto& e : edges_[i]) {
        dependents[e.op].push_back(i);
        ++missing[i];
      }
    std::priority_queue<std::size_t, std::vector<std::size_t>, std::greater<>> ready;
    for (std::size_t i = 0; i < n; ++i)
      if (!missing[i]) ready.push(i);
    std::vector<int> id(n, 0);
    std::vector<std::size_t> order;
    while (!ready.empty()) {
      std::size_t i = ready.top();
      ready.pop();
      order.push_back(i);
      id[i] = static_cast<int>(order.size());
      for (std::size_t d : dependents[i])
        if (--missing[d] == 0) ready.push(d);
    }
    if (order.size() != n) throw Error("reconciler: the plan has a dependency cycle");
    Plan plan;
    plan.warnings = std::move(warnings);
    for (std::size_t i : order) {
      Operation op = std::move(ops_[i]);
      op.id = id[i];
      op.after.clear();
      for (const auto& e : edges_[i]) op.after.push_back({id[e.op], e.required});
      std::sort(op.after.begin(), op.after.end(), [](const Dependency& a, const Dependency& b) { return a.op < b.op; });
      plan.operations.push_back(std::move(op));
    }
    return plan;
  }

 private:
  std::vector<Operation> ops_;
  std::vector<std::vector<Dependency>> edges_;
};

std::string container_resource(const std::string& service, int number) {
  return "service:" + service + ":" + std::to_string(number);
}

std::string observed_resource(const ObservedContainer& c) {
  if (c.service().empty() || c.number() < 1) return "container:" + c.name;
  return container_resource(c.service(), c.number());
}

Operation container_op(OpKind kind, const ObservedContainer& c, const std::string& cause) {
  Operation op;
  op.kind = kind;
  op.resource = observed_resource(c);
  op.cause = cause;
  op.service = c.service();
  op.name = c.name;
  op.container_id = c.id;
  return op;
}

// The project's containers, sorted so that selection is deterministic: by
// service, then number, then the container whose name is the expected one,
// then by name and id.
std::vector<const ObservedContainer*> project_containers(const ObservedState& observed, const std::string& project,
                                                         bool include_oneoff) {
  std::vector<const ObservedContainer*> out;
  for (const auto& c : observed.containers)
    if (c.label(label::project) == project && (include_oneoff || !c.oneoff())) out.push_back(&c);
  auto expected = [&](const ObservedContainer* c) {
    return c->name == project + "-" + c->service() + "-" + std::to_string(c->number());
  };
  std::sort(out.begin(), out.end(), [&](const ObservedContainer* a, const ObservedContainer* b) {
    if (a->service() != b->service()) return a->service() < b->service();
    if (a->number() != b->number()) return a->number() < b->number();
    if (expected(a) != expected(b)) return expected(a);
    if (a->name != b->name) return a->name < b->name;
    return a->id < b->id;
  });
  return out;
}

// The observed network or volume standing for a desired one: the one with
// our project and key labels wins, else one with exactly the real name.
template <typename Observed>
bool exists(const std::vector<Observed>& observed, const std::string& project, const char* key_label,
            const std::string& key, const std::string& name) {
  for (const auto& o : observed) {
    auto p = o.labels.find(label::project);
    auto k = o.labels.find(key_label);
    if (p != o.labels.end() && p->second == project && k != o.labels.end() && k->second == key) return true;
  }
  for (const auto& o : observed)
    if (o.name == name) return true;
  return false;
}

std::set<std::string> selected_services(const DesiredState& desired, const UpOptions& options) {
  std::set<std::string> selected;
  if (options.services.empty()) {
    for (const auto& [name, _] : desired.services) selected.insert(name);
    return selected;
  }
  std::function<void(const std::string&)> add = [&](const std::string& name) {
    if (!selected.insert(name).second) return;
    if (options.no_deps) return;
    for (const auto& [dep, _] : desired.services.at(name).depends_on)
      if (desired.services.count(dep)) add(dep);
  };
  for (const auto& name : options.services) {
    if (!desired.services.count(name)) throw Error("no such service: " + name);
    add(name);
  }
  return selected;
}

std::string orphan_warning(const std::string& project, std::vector<std::string> names) {
  std::sort(names.begin(), names.end());
  std::string list;
  for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
  return "found orphan containers (" + list + ") for project " + project + "; run with --remove-orphans to remove them";
}

// Stopping a service's containers waits for its dependents' containers to
// stop first (the reverse of start order), so no dependent runs against a
// dependency that is going away.
void order_stops(Builder& b, const std::map<std::string, std::vector<std::size_t>>& stops,
                 const std::function<std::vector<std::string>(const std::string&)>& dependents_of) {
  for (const auto& [service, its_stops] : stops)
    for (const auto& dependent : dependents_of(service)) {
      auto dependent_stops = stops.find(dependent);
      if (dependent_stops == stops.end() || dependent == service) continue;
      for (std::size_t stop : its_stops)
        for (std::size_t dependent_stop : dependent_stops->second) b.edge(stop, dependent_stop);
    }
}

}  // namespace

Plan plan(const DesiredState& desired, const ObservedState& observed, const UpOptions& options) {
  if (options.force_recreate && options.no_recreate) throw Error("--force-recreate and --no-recreate are incompatible");
  const std::string& project = desired.project;
  std::set<std::string> selected = selected_services(desired, options);
  // As compose: --force-recreate forces the named services; the dependencies
  // pulled in with them are recreated only when they diverged.
  auto forced = [&](const std::string& service) {
    return options.services.empty() ||
           std::find(options.services.begin(), options.services.end(), service) != options.services.end();
  };
  Builder b;
  std::vector<std::string> warnings;

  // Networks and volumes: all of the project's for a full `up`, those of
  // the selected services otherwise. External ones are only referenced.
  std::set<std::string> network_keys, volume_keys;
  for (const auto& name : selected) {
    const auto& s = desired.services.at(name);
    network_keys.insert(s.network_keys.begin(), s.network_keys.end());
    volume_keys.insert(s.volume_keys.begin(), s.volume_keys.end());
  }
  if (options.services.empty()) {
    for (const auto& [key, _] : desired.networks) network_keys.insert(key);
    for (const auto& [key, _] : desired.volumes) volume_keys.insert(key);
  }
  std::map<std::string, std::size_t> network_ops, volume_ops;
  for (const auto& key : network_keys) {
    auto it = desired.networks.find(key);
    if (it == desired.networks.end() || it->second.external) continue;
    if (exists(observed.networks, project, label::network, key, it->second.name)) continue;
    Operation op;
    op.kind = OpKind::CreateNetwork;
    op.resource = "network:" + key;
    op.cause = "no existing network";
    op.name = it->second.name;
    op.network = it->second;
    network_ops[key] = b.add(std::move(op));
  }
  for (const auto& key : volume_keys) {
    auto it = desired.volumes.find(key);
    if (it == desired.volumes.end() || it->second.external) continue;
    if (exists(observed.volumes, project, label::volume, key, it->second.name)) continue;
    Operation op;
    op.kind = OpKind::CreateVolume;
    op.resource = "volume:" + key;
    op.cause = "no existing volume";
    op.name = it->second.name;
    op.volume = it->second;
    volume_ops[key] = b.add(std::move(op));
  }

  std::map<std::string, std::vector<const ObservedContainer*>> by_service;
  for (const auto* c : project_containers(observed, project, false)) by_service[c->service()].push_back(c);

  std::set<std::string> recreated;
  std::map<std::string, std::vector<std::size_t>> start_ops, stop_ops;

  auto stop_and_remove = [&](const ObservedContainer& c, const std::string& cause) {
    std::optional<std::size_t> stop;
    if (c.is_up()) {
      stop = b.add(container_op(OpKind::StopContainer, c, cause));
      stop_ops[c.service()].push_back(*stop);
    }
    std::size_t remove = b.add(container_op(OpKind::RemoveContainer, c, cause));
    if (stop) b.edge(remove, *stop);
    return remove;
  };

  for (const auto& name : desired.service_order) {
    if (!selected.count(name)) continue;
    const DesiredService& ds = desired.services.at(name);

    // The containers of this service, one per number; the first in sort
    // order wins a number, any other claimant is surplus.
    std::map<int, const ObservedContainer*> by_number;
    std::vector<const ObservedContainer*> surplus;
    for (const auto* c : by_service[name]) {
      int n = c->number();
      if (n >= 1 && n <= ds.replicas && !by_number.count(n)) by_number[n] = c;
      else surplus.push_back(c);
    }

    std::string dependency_restarted;
    std::vector<WaitFor> waits;
    std::vector<std::pair<std::string, bool>> start_after;  // dependency service, required
    for (const auto& [dep, d] : ds.depends_on) {
      if (d.restart && recreated.count(dep) && dependency_restarted.empty())
        dependency_restarted = "dependency " + dep + " restarted";
      if (!selected.count(dep) || !desired.services.count(dep)) continue;
      WaitFor w{dep, d.condition, d.required, {}};
      for (const auto& c : desired.services.at(dep).containers) w.containers.push_back(c.name);
      waits.push_back(std::move(w));
      start_after.emplace_back(dep, d.required);
    }

    auto create_and_start = [&](const ContainerSpec& spec, const std::string& cause, std::optional<std::size_t> after) {
      Operation create;
      create.kind = OpKind::CreateContainer;
      create.resource = container_resource(name, spec.number);
      create.cause = cause;
      create.service = name;
      create.name = spec.name;
      create.container = spec;
      std::size_t c = b.add(std::move(create));
      if (after) b.edge(c, *after);
      for (const auto& key : ds.network_keys)
        if (auto it = network_ops.find(key); it != network_ops.end()) b.edge(c, it->second);
      for (const auto& key : ds.volume_keys)
        if (auto it = volume_ops.find(key); it != volume_ops.end()) b.edge(c, it->second);
      // Joining another service's network namespace needs it running.
      if (!ds.network_mode_service.empty())
        for (std::size_t provider_start : start_ops[ds.network_mode_service]) b.edge(c, provider_start);
      return c;
    };
    auto start = [&](const ContainerSpec& spec, const std::string& container_id, const std::string& cause,
                     std::optional<std::size_t> after) {
      Operation op;
      op.kind = OpKind::StartContainer;
      op.resource = container_resource(name, spec.number);
      op.cause = cause;
      op.service = name;
      op.name = spec.name;
      op.container_id = container_id;
      op.waits = waits;
      std::size_t s = b.add(std::move(op));
      if (after) b.edge(s, *after);
      for (const auto& [dep, required] : start_after)
        for (std::size_t dep_start : start_ops[dep]) b.edge(s, dep_start, required);
      start_ops[name].push_back(s);
    };

    for (const ContainerSpec& spec : ds.containers) {
      auto found = by_number.find(spec.number);
      if (found == by_number.end()) {
        std::size_t c = create_and_start(spec, "no existing container", std::nullopt);
        start(spec, "", "no existing container", c);
        continue;
      }
      const ObservedContainer& existing = *found->second;
      std::string cause;
      std::string observed_image = existing.label(label::image);
      if (observed_image.empty()) observed_image = existing.image_id;
      if (existing.state == ContainerState::dead) cause = "container dead";  // a dead container cannot start
      else if (options.no_recreate) cause = "";
      else if (options.force_recreate && forced(name)) cause = "forced recreate";
      else if (existing.label(label::config_hash) != ds.config_hash) cause = "config hash changed";
      // Compared only when both digests are known: a container whose image
      // berth could not tell is not recreated on a guess.
      else if (!ds.image_id.empty() && !observed_image.empty() && observed_image != ds.image_id)
        cause = "image changed";
      else cause = dependency_restarted;

      if (!cause.empty()) {
        std::size_t removed = stop_and_remove(existing, cause);
        std::size_t c = create_and_start(spec, cause, removed);
        start(spec, "", cause, c);
        recreated.insert(name);
      } else if (!existing.is_up()) {
        start(spec, existing.id, "not running", std::nullopt);
      }
    }

    // Scale down: the highest numbers go first.
    std::sort(surplus.begin(), surplus.end(), [](const ObservedContainer* a, const ObservedContainer* b) {
      if (a->number() != b->number()) return a->number() > b->number();
      return a->name > b->name;
    });
    for (const auto* c : surplus)
      stop_and_remove(*c, c->number() >= 1 && c->number() <= ds.replicas ? "duplicate container number" : "scaled down");
  }

  // Orphans: the project's containers of services the project no longer has.
  std::vector<std::string> orphan_names;
  for (const auto& [service, containers] : by_service) {
    if (desired.services.count(service)) continue;
    for (auto it = containers.rbegin(); it != containers.rend(); ++it) {
      if (options.remove_orphans) stop_and_remove(**it, "orphan");
      else orphan_names.push_back((*it)->name);
    }
  }
  if (!orphan_names.empty()) warnings.push_back(orphan_warning(project, orphan_names));

  order_stops(b, stop_ops, [&](const std::string& service) {
    std::vector<std::string> dependents;
    for (const auto& [name, s] : desired.services)
      if (s.depends_on.count(service)) dependents.push_back(name);
    return dependents;
  });
  return b.finish(std::move(warnings));
}

Plan plan_down(const ObservedState& observed, const DownOptions& options) {
  Builder b;
  std::vector<std::string> warnings, kept_orphans;
  std::vector<std::size_t> removals;
  std::map<std::string, std::vector<std::size_t>> stop_ops;
  // service -> the services it depends on, from the depends_on label.
  std::map<std::string, std::set<std::string>> depends;

  auto containers = project_containers(observed, options.project, true);
  // Highest numbers first within a service, as a scale down.
  std::stable_sort(containers.begin(), containers.end(), [](const ObservedContainer* a, const ObservedContainer* b) {
    if (a->service() != b->service()) return a->service() < b->service();
    return a->number() > b->number();
  });
  for (const auto* c : containers) {
    bool orphan = options.services && !options.services->count(c->service());
    if (orphan && !options.remove_orphans) {
      kept_orphans.push_back(c->name);
      continue;
    }
    std::string deps = c->label(label::depends_on);
    for (std::size_t pos = 0; pos < deps.size();) {
      std::size_t comma = deps.find(',', pos);
      std::string item = deps.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      if (!item.empty()) depends[c->service()].insert(item.substr(0, item.find(':')));
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    std::string cause = orphan ? "orphan" : "down";
    std::optional<std::size_t> stop;
    if (c->is_up()) {
      stop = b.add(container_op(OpKind::StopContainer, *c, cause));
      stop_ops[c->service()].push_back(*stop);
    }
    std::size_t remove = b.add(container_op(OpKind::RemoveContainer, *c, cause));
    if (stop) b.edge(remove, *stop);
    removals.push_back(remove);
  }
  if (!kept_orphans.empty()) warnings.push_back(orphan_warning(options.project, kept_orphans));
  order_stops(b, stop_ops, [&](const std::string& service) {
    std::vector<std::string> dependents;
    for (const auto& [name, deps] : depends)
      if (deps.count(service)) dependents.push_back(name);
    return dependents;
  });

  auto remove_labelled = [&](const auto& objects, const char* key_label, OpKind kind, const char* prefix) {
    std::vector<std::pair<std::string, std::string>> found;  // key, name
    for (const auto& o : objects) {
      auto p = o.labels.find(label::project);
      if (p == o.labels.end() || p->second != options.project) continue;
      auto k = o.labels.find(key_label);
      found.emplace_back(k == o.labels.end() ? o.name : k->second, o.name);
    }
    std::sort(found.begin(), found.end());
    for (const auto& [key, name] : found) {
      Operation op;
      op.kind = kind;
      op.resource = std::string(prefix) + key;
      op.cause = "down";
      op.name = name;
      std::size_t i = b.add(std::move(op));
      for (std::size_t r : removals) b.edge(i, r);
    }
  };
  remove_labelled(observed.networks, label::network, OpKind::RemoveNetwork, "network:");
  if (options.remove_volumes) remove_labelled(observed.volumes, label::volume, OpKind::RemoveVolume, "volume:");
  return b.finish(std::move(warnings));
}

}  // namespace berth::reconciler
