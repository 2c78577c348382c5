#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "cli/cli.h"
#include "cli/version.h"
#include "supervisor/client.h"
#include "supervisor/commands.h"

namespace berth::cli {

namespace {
struct Group {
  int order;
  std::vector<std::string> names;
  Registrar registrar;
};
std::vector<Group>& registry() {
  static std::vector<Group> groups;
  return groups;
}

// The command word: the first argument that is not a global flag or its
// value (nullptr when there is none: `berth`, `berth --help`).
const char* command_word(int argc, char** argv) {
  static const std::set<std::string> with_value{"--root", "--run-root", "--log-level"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") return nullptr;
    if (with_value.count(a)) {
      ++i;
      continue;
    }
    if (!a.empty() && a[0] == '-') continue;
    return argv[i];
  }
  return nullptr;
}

// Whether a parsed command line goes to `berth serve` (supervisor/commands.h).
// Commands that start processes (containers, exec sessions) start a serve
// when none runs, so what they start is not the caller's; other changing
// commands use one when it runs and otherwise do the same work here.
// Reading commands read the disk, the one source of truth, themselves (a
// round trip would only make them slower); serve itself, the commands that
// talk to it already and those that touch no root stay here too.
enum class ViaServe { No, IfRunning, Start };

ViaServe via_serve(const CLI::App& app) {
  if (const char* in_serve = std::getenv(supervisor::kInServeEnv); in_serve && *in_serve) return ViaServe::No;
  static const std::set<std::string> stay{"serve",   "events", "__restart", "__rm-cleanup", "version", "config",
                                          "login",   "logout", "search",    "check",        "ps",      "ls",
                                          "inspect", "logs",   "images",    "top",          "port",    "diff",
                                          "wait",    "info",   "stats",     "history"};
  static const std::set<std::string> start{"up", "run", "start", "restart", "exec"};
  const CLI::App* cmd = &app;
  std::string top;
  while (!cmd->get_subcommands().empty()) {
    cmd = cmd->get_subcommands().front();
    if (top.empty()) top = cmd->get_name();
    if (stay.count(cmd->get_name())) return ViaServe::No;
  }
  if (cmd == &app) return ViaServe::No;
  // `up` or `run` of a group of their own (`image`, `network`, ...) do not
  // start containers; compose's do.
  bool starts = start.count(cmd->get_name()) && (cmd->get_name() == top || top == "compose");
  return starts ? ViaServe::Start : ViaServe::IfRunning;
}

// Every subcommand name and alias of app, in order.
std::vector<std::string> command_names(const CLI::App& app) {
  std::vector<std::string> out;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    out.push_back(sub->get_name());
    for (auto& alias : sub->get_aliases()) out.push_back(alias);
  }
  return out;
}
}  // namespace

CommandGroup::CommandGroup(int order, std::vector<std::string> names, Registrar registrar) {
  registry().push_back({order, std::move(names), std::move(registrar)});
}

CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& description) {
  return app.add_subcommand(name, description);
}

static int run(int argc, char** argv) {
  GlobalOptions global;
  if (const char* env = std::getenv("BERTH_ROOT"); env && *env) global.root = env;
  if (const char* env = std::getenv("BERTH_RUN_ROOT"); env && *env) global.run_root = env;

  CLI::App app{"berth: a declarative, Compose-compatible container supervisor", "berth"};
  app.set_help_all_flag("--help-all", "Show help for every command");
  // As `docker --version`: the `version` command's first line.
  app.set_version_flag("--version", std::string("berth version ") + kVersion + ", build " + kGitCommit,
                       "Print version information and quit");
  app.require_subcommand(1);
  app.add_option("--root", global.root, "Storage root (env BERTH_ROOT)")->capture_default_str();
  app.add_option("--run-root", global.run_root, "Runtime state root (env BERTH_RUN_ROOT)")->capture_default_str();
  app.add_option("--log-level", global.log_level, "Log level: debug, info, warn, error, fatal")
      ->capture_default_str();
  // After the whole command line is valid (a usage error never reaches
  // serve or starts one), before the command runs.
  app.parse_complete_callback([&] {
    init_logging(global.log_level);
    global.root = path_absolute(global.root);
    global.run_root = path_absolute(global.run_root);
    if (ViaServe via = via_serve(app); via != ViaServe::No) {
      std::vector<std::string> args(argv + 1, argv + argc);
      if (auto code = supervisor::run_via_daemon(runtime::Paths{global.root, global.run_root, {}}, args,
                                                 via == ViaServe::Start))
        throw ExitCode{*code};
    }
  });

  auto& groups = registry();
  if (const char* word = command_word(argc, argv)) {
    // Only the group that has this command is built.
    auto named = std::find_if(groups.begin(), groups.end(), [&](const Group& g) {
      return std::find(g.names.begin(), g.names.end(), word) != g.names.end();
    });
    if (named == groups.end()) {
      std::cerr << "berth: '" << word << "' is not a berth command.\nSee 'berth --help'.\n";
      return 125;
    }
    named->registrar(app, global);
  } else {
    // Help, version or a usage error: every command, in help order. Each
    // group must add exactly the commands it names (else a command line
    // naming a forgotten one would not find it).
    std::vector<Group*> ordered;
    for (auto& g : groups) ordered.push_back(&g);
    std::stable_sort(ordered.begin(), ordered.end(), [](auto* a, auto* b) { return a->order < b->order; });
    for (Group* g : ordered) {
      size_t before = command_names(app).size();
      g->registrar(app, global);
      std::vector<std::string> added = command_names(app);
      added.erase(added.begin(), added.begin() + static_cast<std::ptrdiff_t>(before));
      std::vector<std::string> declared = g->names;
      std::sort(added.begin(), added.end());
      std::sort(declared.begin(), declared.end());
      if (added != declared) {
        std::string list;
        for (auto& n : added) list += " " + n;
        throw std::logic_error("a command group (order " + std::to_string(g->order) + ") adds" + list +
                               " but names other commands in BERTH_REGISTER_COMMANDS");
      }
    }
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    // Usage errors exit 125, as docker's CLI does.
    std::cerr << "berth: " << e.what() << "\nSee 'berth --help'.\n";
    return 125;
  } catch (const ExitCode& e) {
    std::cout.flush();
    return e.code;
  }
  return 0;
}

}  // namespace berth::cli

int main(int argc, char** argv) {
  std::ios::sync_with_stdio(false);
  try {
    return berth::cli::run(argc, argv);
  } catch (const berth::Error& e) {
    std::cout.flush();
    std::cerr << "Error: " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "Error: " << e.what() << "\n";
    return 1;
  }
}
