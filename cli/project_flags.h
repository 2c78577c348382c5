// The compose project flags every compose command takes (-f, -p,
// --project-directory, --env-file, --profile), and loading the project
// from them the way `berth config` does.
#pragma once

#include <CLI/CLI.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "spec/spec.h"

namespace berth::cli {

struct ProjectFlags {
  std::vector<std::string> files;
  std::string project_name;
  std::string project_directory;
  std::vector<std::string> env_files;
  std::vector<std::string> profiles;
  // --parallel: operations at once (-1: no limit; 0: not given, so
  // COMPOSE_PARALLEL_LIMIT or the default decides).
  int parallel = 0;
};

// Adds -f/--file, -p/--project-name, --project-directory, --env-file,
// --profile and --parallel to `command`, writing into `flags` (which must outlive parsing).
void add_project_flags(CLI::App* command, ProjectFlags& flags);

// The process environment as a map (the interpolation environment).
std::map<std::string, std::string> process_environment();

// Loads the project named by the flags. On an invalid spec it prints one
// "file:line:col: message" line per error to stderr and exits 1; warnings go
// to the log. `services` are named on the command line (enabled despite
// profiles).
spec::Project load_project_or_exit(const ProjectFlags& flags, const std::vector<std::string>& services = {});

// The project the flags name, or nullopt (silently) when it cannot be
// loaded: for commands where the compose file is optional (`down -p X`).
std::optional<spec::Project> try_load_project(const ProjectFlags& flags);

// Adds `config` (as `berth config`) under `parent` (`berth compose config`);
// project flags given to `parent` (`outer`, may be null) apply when the
// subcommand gives none.
void add_config_command(CLI::App& parent, const std::shared_ptr<ProjectFlags>& outer);

}  // namespace berth::cli
