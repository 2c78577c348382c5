// The spec library's public door: load a compose project into the typed
// model (spec/model.h), render it back as YAML/JSON, and hash services.
// Pure: it reads files and nothing else; warnings are returned, not printed.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "spec/model.h"

namespace berth::spec {

struct LoadOptions {
  std::vector<std::string> files;         // -f, in order; empty = discover in project dir
  std::string project_directory;          // --project-directory; default: first file's dir
  std::string project_name;               // -p
  std::vector<std::string> env_files;     // --env-file; replaces the default .env
  std::vector<std::string> profiles;      // --profile ("*" enables all)
  std::map<std::string, std::string> environment;  // the process environment (injected)
  std::string working_directory;          // for relative -f paths; default: getcwd()
  // Services named explicitly on the command line (enable them despite profiles).
  std::vector<std::string> services;
  // When false, every file access (.env, env_file, include, extends.file, ...)
  // fails with an error: for fuzzing, where input must not reach /dev/stdin.
  bool read_files = true;
};

// Loads, merges, interpolates, validates and normalizes a project.
// Throws berth::Error whose message is one "file:line:col: message" line per error.
Project load_project(const LoadOptions& options);

// Loads a single compose document given as text (tests, fuzzing). `file_name`
// is used in locations and its directory as the project directory.
Project load_project_from_string(const std::string& yaml, const LoadOptions& options = {},
                                 const std::string& file_name = "compose.yaml");

// The normalized project as docker compose v2 prints it (`config`).
std::string to_yaml(const Project& project);
std::string to_json(const Project& project);
Json to_json_value(const Project& project);
Json to_json_value(const Service& service);

// SHA-256 (hex) over the canonical JSON of the normalized service, leaving out
// what does not require recreating a container (build, pull_policy, scale,
// deploy.replicas, depends_on, profiles) — compose's rules.
std::string service_config_hash(const Project& project, const std::string& service);

// Every key berth's decoder accepts at a schema location ("service",
// "service.build", "network", ...). Lets tests check coverage of the schema.
std::vector<std::string> known_keys(const std::string& where);

// Normalizes a project name as compose does: lowercase, only [a-z0-9_-],
// starting with a letter or digit. Returns "" when nothing usable is left.
std::string normalize_project_name(const std::string& name);

}  // namespace berth::spec
