// Compose project commands driven by the reconciler: `up` and `down`.
// For now only their --dry-run works: it prints the plan (reconciler/plan.h
// documents the line format). Running a plan needs a Driver over the
// runtime, images and net libraries and an observed snapshot of the world,
// which those libraries do not expose yet.
#include <iostream>
#include <memory>

#include "base/error.h"
#include "cli/cli.h"
#include "cli/project_flags.h"
#include "reconciler/reconciler.h"

namespace berth::cli {

namespace {

struct UpFlags {
  ProjectFlags project;
  std::vector<std::string> services;
  std::vector<std::string> scale;  // svc=N, repeatable
  bool dry_run = false;
  bool detach = false;
  bool force_recreate = false;
  bool no_recreate = false;
  bool remove_orphans = false;
  bool no_deps = false;
  int timeout = 10;
};

struct DownFlags {
  ProjectFlags project;
  bool dry_run = false;
  bool volumes = false;
  bool remove_orphans = false;
  int timeout = 10;
};

std::map<std::string, std::int64_t> parse_scale(const std::vector<std::string>& items) {
  std::map<std::string, std::int64_t> scale;
  for (const auto& item : items) {
    std::size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size())
      throw UsageError("--scale: want SERVICE=NUM, got \"" + item + "\"");
    try {
      std::size_t used = 0;
      long long n = std::stoll(item.substr(eq + 1), &used);
      if (used != item.size() - eq - 1) throw std::invalid_argument("trailing");
      scale[item.substr(0, eq)] = n;
    } catch (const std::exception&) {
      throw UsageError("--scale: \"" + item.substr(eq + 1) + "\" is not a number");
    }
  }
  return scale;
}

// The world as berth sees it before planning. The runtime has no container
// listing yet (nor net/images a network or volume listing), so this is an
// empty world: a dry run shows what a first `up` would do.
// TODO(reconciler): fill from runtime/net/images once they can list.
reconciler::ObservedState observe(const std::string& /*project*/) { return {}; }

void run_up(const UpFlags& f) {
  if (f.force_recreate && f.no_recreate) throw UsageError("--force-recreate and --no-recreate are incompatible");
  auto scale = parse_scale(f.scale);
  spec::Project project = load_project_or_exit(f.project, f.services);
  reconciler::DesiredOptions desired_options;
  desired_options.scale = scale;
  reconciler::DesiredState desired = reconciler::desired_state(project, desired_options);
  reconciler::UpOptions options;
  options.force_recreate = f.force_recreate;
  options.no_recreate = f.no_recreate;
  options.remove_orphans = f.remove_orphans;
  options.no_deps = f.no_deps;
  options.services = f.services;
  reconciler::Plan plan = reconciler::plan(desired, observe(project.name), options);
  if (!f.dry_run)
    throw Error("up: running a project is not available yet (the runtime cannot list containers, "
                "so berth cannot observe the project); use `berth up --dry-run` to print the plan");
  std::cout << reconciler::render(plan);
}

void run_down(const DownFlags& f) {
  spec::Project project = load_project_or_exit(f.project);
  reconciler::DownOptions options;
  options.project = project.name;
  options.services.emplace();
  for (const auto& [name, _] : project.services) options.services->insert(name);
  options.remove_volumes = f.volumes;
  options.remove_orphans = f.remove_orphans;
  reconciler::Plan plan = reconciler::plan_down(observe(project.name), options);
  if (!f.dry_run)
    throw Error("down: not available yet (the runtime cannot list containers, so berth cannot observe "
                "the project); use `berth down --dry-run` to print the plan");
  std::cout << reconciler::render(plan);
}

}  // namespace

static void register_compose(CLI::App& app, GlobalOptions&) {
  auto up = std::make_shared<UpFlags>();
  auto* up_cmd = add_command(app, "up", "Create and start the containers of a compose project");
  add_project_flags(up_cmd, up->project);
  up_cmd->add_option("services", up->services, "Services to start (default: all)");
  up_cmd->add_flag("--dry-run", up->dry_run, "Print the plan against the current state; change nothing");
  up_cmd->add_flag("-d,--detach", up->detach, "Run containers in the background");
  up_cmd->add_flag("--force-recreate", up->force_recreate, "Recreate containers even if nothing changed");
  up_cmd->add_flag("--no-recreate", up->no_recreate, "Never recreate existing containers");
  up_cmd->add_flag("--remove-orphans", up->remove_orphans, "Remove containers of services not in the project");
  up_cmd->add_flag("--no-deps", up->no_deps, "Do not start the named services' dependencies");
  up_cmd->add_option("--scale", up->scale, "Scale SERVICE to NUM instances (SERVICE=NUM, repeatable)")
      ->allow_extra_args(false);
  up_cmd->add_option("-t,--timeout", up->timeout, "Shutdown timeout in seconds")->capture_default_str();
  up_cmd->callback([up] { run_up(*up); });

  auto down = std::make_shared<DownFlags>();
  auto* down_cmd = add_command(app, "down", "Stop and remove the containers and networks of a compose project");
  add_project_flags(down_cmd, down->project);
  down_cmd->add_flag("--dry-run", down->dry_run, "Print the plan against the current state; change nothing");
  down_cmd->add_flag("-v,--volumes", down->volumes, "Remove the project's named volumes too");
  down_cmd->add_flag("--remove-orphans", down->remove_orphans, "Remove containers of services not in the project");
  down_cmd->add_option("-t,--timeout", down->timeout, "Shutdown timeout in seconds")->capture_default_str();
  down_cmd->callback([down] { run_down(*down); });
}

BERTH_REGISTER_COMMANDS(200, register_compose);

}  // namespace berth::cli
