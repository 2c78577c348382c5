#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <set>
#include <vector>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "cli/cli.h"
#include "cli/version.h"

namespace berth::cli {

namespace {
std::vector<std::pair<int, Registrar>>& registry() {
  static std::vector<std::pair<int, Registrar>> groups;
  return groups;
}
}  // namespace

CommandGroup::CommandGroup(int order, Registrar registrar) {
  registry().emplace_back(order, std::move(registrar));
}

CLI::App* add_command(CLI::App& app, const std::string& name, const std::string& description) {
  return app.add_subcommand(name, description);
}

// The first word that is not a global flag (or its value) must name a command.
static const char* unknown_command(int argc, char** argv, const CLI::App& app) {
  static const std::set<std::string> with_value{"--root", "--run-root", "--log-level"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") return nullptr;
    if (with_value.count(a)) {
      ++i;
      continue;
    }
    if (!a.empty() && a[0] == '-') continue;
    for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
      if (sub->check_name(a)) return nullptr;
    return argv[i];
  }
  return nullptr;
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
  app.parse_complete_callback([&] {
    init_logging(global.log_level);
    global.root = path_absolute(global.root);
    global.run_root = path_absolute(global.run_root);
  });

  auto groups = registry();
  std::stable_sort(groups.begin(), groups.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (auto& [order, registrar] : groups) registrar(app, global);

  if (const char* word = unknown_command(argc, argv, app)) {
    std::cerr << "berth: '" << word << "' is not a berth command.\nSee 'berth --help'.\n";
    return 125;
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
