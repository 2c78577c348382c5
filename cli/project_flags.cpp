#include "cli/project_flags.h"

#include <iostream>

#include "base/error.h"
#include "base/log.h"
#include "cli/cli.h"

extern char** environ;

namespace berth::cli {

void add_project_flags(CLI::App* command, ProjectFlags& flags) {
  // One value per occurrence, so that `up -f a.yaml web` leaves `web` to the
  // services argument.
  command->add_option("-f,--file", flags.files, "Compose configuration files (repeatable)")->allow_extra_args(false);
  command->add_option("-p,--project-name", flags.project_name, "Project name");
  command->add_option("--project-directory", flags.project_directory, "Alternate working directory");
  command->add_option("--env-file", flags.env_files, "Alternate environment files (repeatable)")->allow_extra_args(false);
  command->add_option("--profile", flags.profiles, "Profiles to enable (repeatable)")->allow_extra_args(false);
  command->add_option("--parallel", flags.parallel, "Control max parallelism, -1 for unlimited")
      ->check([](const std::string& v) -> std::string {
        char* end = nullptr;
        long n = std::strtol(v.c_str(), &end, 10);
        return !v.empty() && *end == '\0' && (n > 0 || n == -1) && n <= 1 << 20
                   ? ""
                   : "--parallel: want a positive number, or -1 for unlimited, got \"" + v + "\"";
      });
}

std::map<std::string, std::string> process_environment() {
  std::map<std::string, std::string> env;
  for (char** e = environ; e && *e; ++e) {
    std::string entry = *e;
    std::size_t eq = entry.find('=');
    if (eq != std::string::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return env;
}

namespace {

spec::LoadOptions load_options(const ProjectFlags& flags, const std::vector<std::string>& services) {
  spec::LoadOptions load;
  load.files = flags.files;
  load.project_name = flags.project_name;
  load.project_directory = flags.project_directory;
  load.env_files = flags.env_files;
  load.profiles = flags.profiles;
  load.services = services;
  load.environment = process_environment();
  return load;
}

}  // namespace

std::optional<spec::Project> try_load_project(const ProjectFlags& flags) {
  try {
    return spec::load_project(load_options(flags, {}));
  } catch (const Error&) {
    return std::nullopt;
  }
}

spec::Project load_project_or_exit(const ProjectFlags& flags, const std::vector<std::string>& services) {
  spec::LoadOptions load = load_options(flags, services);
  spec::Project project;
  try {
    project = spec::load_project(load);
  } catch (const Error& e) {
    // One "file:line:col: message" line per error, nothing else.
    std::cout.flush();
    std::cerr << e.what() << "\n";
    exit_with(1);
  }
  for (const auto& w : project.warnings) spdlog::warn("{}", w.str());
  return project;
}

}  // namespace berth::cli
