// The CLI front: `berth [global flags] COMMAND [flags]`. Each group of
// commands lives in its own cmd_*.cpp and registers itself with
// BERTH_REGISTER_COMMANDS, so adding a command touches no shared file.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace berth::cli {

struct GlobalOptions {
  std::string root = "/var/lib/berth";
  std::string run_root = "/run/berth";
  std::string log_level = "info";
};

// Adds a subcommand the docker way: name, one-line description, --help.
// The callback runs the command and throws berth::Error on failure; it may
// call exit_with() to end with a specific code (e.g. `config -q`).
CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& description);

using Registrar = std::function<void(CLI::App&, GlobalOptions&)>;

// Registration happens from static initializers; `order` sorts the
// groups in `berth --help` (lower first). `names` are the top-level
// commands (and aliases) the registrar adds: a command line naming one
// builds only that group's commands (CLI11 options cost ~3 ms to build for
// every command). `berth --help` builds all and checks the names.
struct CommandGroup {
  CommandGroup(int order, std::vector<std::string> names, Registrar registrar);
};

// Ends the command with this exit code after output is flushed.
struct ExitCode {
  int code;
};
[[noreturn]] inline void exit_with(int code) { throw ExitCode{code}; }

}  // namespace berth::cli

#define BERTH_CAT2(a, b) a##b
#define BERTH_CAT(a, b) BERTH_CAT2(a, b)
#define BERTH_REGISTER_COMMANDS(order, fn, ...) \
  static ::berth::cli::CommandGroup BERTH_CAT(berth_command_group_, __LINE__)(order, {__VA_ARGS__}, fn)
