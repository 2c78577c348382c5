// What the registry commands share with compose's pull and push
// (cmd_registry.cpp, cmd_compose_pull.cpp): the registry options from
// berth's files and environment, docker-style progress lines, and pulling a
// name through the search registries.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/project_flags.h"
#include "images/images.h"
#include "images/registry.h"

namespace berth::cli {

// The registry options of these roots (see cmd_registry.cpp's header comment).
images::RegistryOptions registry_options(const GlobalOptions& global, const std::vector<std::string>& insecure_flags);

// Per-layer progress as docker prints it: live bars on a terminal, plain
// "<id>: <action>" lines otherwise; nothing when quiet.
images::ProgressFn progress_printer(bool quiet);

// Pulls name (NAME[:TAG|@DIGEST]; an unqualified name through the search
// registries, in order). before(ref, candidates) is called before each try.
struct PulledImage {
  images::Reference ref;
  images::PullResult result;
};
PulledImage pull_by_name(images::Store& store, const std::string& name, const images::RegistryOptions& options,
                         const images::ProgressFn& progress,
                         const std::function<void(const images::Reference&, size_t)>& before = {});

// compose's pull for a project: which services' images to pull and how.
struct ProjectPullOptions {
  // "" = each service's pull_policy; else always|missing|never|build for
  // every service (`up --pull`).
  std::string policy;
  // `up`: honour the policies (never, build, missing, daily, ...);
  // `compose pull`: pull every image except never and build ones (and,
  // with an explicit missing, those already here).
  bool for_up = false;
  bool quiet = false;
  bool ignore_failures = false;  // --ignore-pull-failures
  std::vector<std::string> services;  // empty: all
  int parallel = 0;  // images at once (0: default)
};
// Pulls what the options ask, images in parallel, printing compose's lines
// to stderr ("<service> Pulling", per-layer lines, "<service> Pulled").
// Returns service -> error for every service that is left without its image
// or whose pull failed (and was not ignored).
std::map<std::string, std::string> pull_project_images(const spec::Project& project, const GlobalOptions& global,
                                                       const ProjectPullOptions& options);

// Checks a pull_policy / --pull value; throws UsageError when invalid.
void check_pull_policy(const std::string& policy, const std::string& what);

// `compose pull` and `compose push` under parent; `outer` are the
// project flags given to `compose` itself (may be null).
void add_compose_pull(CLI::App& parent, GlobalOptions& global, const std::shared_ptr<ProjectFlags>& outer);
void add_compose_push(CLI::App& parent, GlobalOptions& global, const std::shared_ptr<ProjectFlags>& outer);
// `berth pull` with no image but a project (-f, -p, --project-directory, or
// a compose file in the current directory): compose's pull.
void run_project_pull(const ProjectFlags& project, const GlobalOptions& global, const std::vector<std::string>& services,
                      bool quiet, bool ignore_failures, const std::string& policy = "");

}  // namespace berth::cli
