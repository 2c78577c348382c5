// `berth config`: parse, resolve and render the compose project, like
// `docker compose config`.
#include <iostream>
#include <memory>
#include <sstream>

#include "base/error.h"
#include "base/log.h"
#include "cli/cli.h"
#include "cli/project_flags.h"
#include "spec/spec.h"

namespace berth::cli {

namespace {

struct ConfigOptions {
  ProjectFlags project;
  std::string format = "yaml";
  bool services = false;
  bool volumes = false;
  bool networks = false;
  bool list_profiles = false;
  std::string hash;
  bool quiet = false;
};

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

void run_config(const ConfigOptions& o) {
  if (o.format != "yaml" && o.format != "json")
    throw UsageError("--format: unknown format \"" + o.format + "\" (want yaml or json)");
  spec::Project project = load_project_or_exit(o.project);
  if (o.quiet) return;
  if (o.services) {
    for (const auto& name : project.service_order()) std::cout << name << "\n";
    return;
  }
  if (o.volumes) {
    for (const auto& [name, _] : project.volumes) std::cout << name << "\n";
    return;
  }
  if (o.networks) {
    for (const auto& [name, _] : project.networks) std::cout << name << "\n";
    return;
  }
  if (o.list_profiles) {
    for (const auto& p : project.all_profiles) std::cout << p << "\n";
    return;
  }
  if (!o.hash.empty()) {
    std::vector<std::string> names;
    if (o.hash == "*") {
      for (const auto& [name, _] : project.services) names.push_back(name);
    } else {
      names = split_commas(o.hash);
    }
    for (const auto& name : names) {
      if (!project.services.count(name)) throw Error("no such service: " + name);
      std::cout << name << " " << spec::service_config_hash(project, name) << "\n";
    }
    return;
  }
  std::cout << (o.format == "json" ? spec::to_json(project) : spec::to_yaml(project));
}

}  // namespace

void add_config_command(CLI::App& app, const std::shared_ptr<ProjectFlags>& outer) {
  auto opts = std::make_shared<ConfigOptions>();
  auto* cmd = add_command(app, "config", "Parse, resolve and render the compose file in canonical format");
  add_project_flags(cmd, opts->project);
  cmd->add_option("--format", opts->format, "Output format: yaml or json")->capture_default_str();
  cmd->add_flag("--services", opts->services, "Print the service names, one per line");
  cmd->add_flag("--volumes", opts->volumes, "Print the volume names, one per line");
  cmd->add_flag("--networks", opts->networks, "Print the network names, one per line");
  cmd->add_flag("--profiles", opts->list_profiles, "Print the profile names, one per line");
  cmd->add_option("--hash", opts->hash, "Print \"service hash\" for '*' or svc1,svc2");
  cmd->add_flag("-q,--quiet", opts->quiet, "Only validate the configuration, print nothing");
  cmd->callback([opts, outer] {
    ConfigOptions o = *opts;
    if (outer) {
      ProjectFlags& p = o.project;
      if (p.files.empty()) p.files = outer->files;
      if (p.project_name.empty()) p.project_name = outer->project_name;
      if (p.project_directory.empty()) p.project_directory = outer->project_directory;
      if (p.env_files.empty()) p.env_files = outer->env_files;
      if (p.profiles.empty()) p.profiles = outer->profiles;
    }
    run_config(o);
  });
}

static void register_config(CLI::App& app, GlobalOptions&) { add_config_command(app, nullptr); }

BERTH_REGISTER_COMMANDS(100, register_config, "config");

}  // namespace berth::cli
