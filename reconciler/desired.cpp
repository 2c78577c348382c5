// Desired state: what a compose project asks for, with every name and label
// berth will give the things it creates.
#include <algorithm>
#include <functional>

#include "base/error.h"
#include "reconciler/state.h"
#include "spec/spec.h"

namespace berth::reconciler {

namespace {

std::string join(const std::vector<std::string>& items, const std::string& sep) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : sep) + item;
  return out;
}

// compose's form: "db:service_healthy:true,cache:service_started:false".
std::string depends_on_label(const std::map<std::string, spec::DependsOn>& depends_on) {
  std::vector<std::string> parts;
  for (const auto& [dep, d] : depends_on) parts.push_back(dep + ":" + d.condition + ":" + (d.restart ? "true" : "false"));
  return join(parts, ",");
}

// Dependencies first, names sorted among equals; a cycle (which the spec
// loader rejects for depends_on) is broken where it is found.
std::vector<std::string> dependency_order(const std::map<std::string, DesiredService>& services) {
  std::vector<std::string> order;
  std::set<std::string> done, visiting;
  std::function<void(const std::string&)> visit = [&](const std::string& name) {
    if (done.count(name) || visiting.count(name)) return;
    visiting.insert(name);
    for (const auto& [dep, _] : services.at(name).depends_on)
      if (services.count(dep)) visit(dep);
    visiting.erase(name);
    done.insert(name);
    order.push_back(name);
  };
  for (const auto& [name, _] : services) visit(name);
  return order;
}

}  // namespace

std::string container_name(const std::string& project, const spec::Service& service, int number) {
  if (!service.container_name.empty()) return service.container_name;
  return project + "-" + service.name + "-" + std::to_string(number);
}

DesiredState desired_state(const spec::Project& project, const DesiredOptions& options) {
  for (const auto& [name, n] : options.scale) {
    if (!project.services.count(name)) throw Error("--scale: no such service: " + name);
    if (n < 0) throw Error("--scale: " + name + "=" + std::to_string(n) + ": must not be negative");
  }
  DesiredState d;
  d.project = project.name;

  for (const auto& [key, n] : project.networks) {
    NetworkSpec net{key, n.name, n.external, n.labels, n};
    if (!n.external) {
      net.labels[label::project] = project.name;
      net.labels[label::network] = key;
    }
    d.networks.emplace(key, std::move(net));
  }
  for (const auto& [key, v] : project.volumes) {
    VolumeSpec vol{key, v.name, v.external, v.labels, v};
    if (!v.external) {
      vol.labels[label::project] = project.name;
      vol.labels[label::volume] = key;
    }
    d.volumes.emplace(key, std::move(vol));
  }

  for (const auto& [name, s] : project.services) {
    DesiredService ds;
    ds.name = name;
    auto scaled = options.scale.find(name);
    ds.replicas = scaled != options.scale.end() ? scaled->second : s.replicas();
    if (!s.container_name.empty() && ds.replicas > 1)
      throw Error("service " + name + ": container_name \"" + s.container_name + "\" cannot be scaled to " +
                  std::to_string(ds.replicas));
    ds.config_hash = spec::service_config_hash(project, name);
    if (auto image = options.image_ids.find(name); image != options.image_ids.end()) ds.image_id = image->second;
    ds.depends_on = s.depends_on;
    auto implied = [&](const std::string& dep, bool restart) {
      if (dep != name && project.services.count(dep) && !ds.depends_on.count(dep))
        ds.depends_on[dep] = spec::DependsOn{"service_started", restart, true};
    };
    if (s.network_mode.rfind("service:", 0) == 0) {
      ds.network_mode_service = s.network_mode.substr(8);
      implied(ds.network_mode_service, true);
    }
    for (const auto& from : s.volumes_from)
      if (from.rfind("container:", 0) != 0) implied(from.substr(0, from.find(':')), false);
    for (const auto& link : s.links) implied(link.substr(0, link.find(':')), false);
    for (const auto& [key, _] : s.networks) ds.network_keys.push_back(key);
    std::set<std::string> volume_keys;
    for (const auto& v : s.volumes)
      if (v.type == "volume" && project.volumes.count(v.source)) volume_keys.insert(v.source);
    ds.volume_keys.assign(volume_keys.begin(), volume_keys.end());

    std::vector<std::string> network_names, volume_names;
    for (const auto& key : ds.network_keys)
      if (auto n = d.networks.find(key); n != d.networks.end()) network_names.push_back(n->second.name);
    std::vector<std::string> external_volumes;
    for (const auto& key : ds.volume_keys) {
      volume_names.push_back(d.volumes.at(key).name);
      if (d.volumes.at(key).external) external_volumes.push_back(d.volumes.at(key).name);
    }

    for (int number = 1; number <= ds.replicas; ++number) {
      ContainerSpec c;
      c.project = project.name;
      c.service = name;
      c.number = number;
      c.name = container_name(project.name, s, number);
      c.config_hash = ds.config_hash;
      c.image_id = ds.image_id;
      c.labels = s.labels;  // the user's labels; berth's own win
      c.labels[label::project] = project.name;
      c.labels[label::service] = name;
      c.labels[label::container_number] = std::to_string(number);
      c.labels[label::config_hash] = ds.config_hash;
      c.labels[label::oneoff] = "False";
      c.labels[label::working_dir] = project.working_dir;
      c.labels[label::config_files] = join(project.config_files, ",");
      c.labels[label::depends_on] = depends_on_label(ds.depends_on);
      if (!ds.image_id.empty()) c.labels[label::image] = ds.image_id;
      c.networks = network_names;
      c.volumes = volume_names;
      c.external_volumes = external_volumes;
      c.service_spec = s;
      ds.containers.push_back(std::move(c));
    }
    d.services.emplace(name, std::move(ds));
  }
  d.service_order = dependency_order(d.services);
  return d;
}

std::ostream& operator<<(std::ostream& os, const ContainerSpec& c) {
  nlohmann::json j = {{"name", c.name}, {"service", c.service}, {"number", c.number}, {"labels", c.labels},
                      {"networks", c.networks}, {"volumes", c.volumes}};
  return os << j.dump();
}

std::ostream& operator<<(std::ostream& os, const DesiredState& d) {
  os << "project " << d.project << "\n";
  for (const auto& [key, n] : d.networks) os << "network " << key << " " << n.name << (n.external ? " external" : "") << "\n";
  for (const auto& [key, v] : d.volumes) os << "volume " << key << " " << v.name << (v.external ? " external" : "") << "\n";
  for (const auto& name : d.service_order) {
    const auto& s = d.services.at(name);
    os << "service " << name << " x" << s.replicas << " " << s.config_hash << "\n";
    for (const auto& c : s.containers) os << "  " << c << "\n";
  }
  return os;
}

}  // namespace berth::reconciler
