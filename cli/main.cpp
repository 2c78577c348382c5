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
#include "images/images.h"
#include "supervisor/client.h"
#include "supervisor/commands.h"

namespace berth::cli {

// The run root of the command line (once parsed), for main's last word.
std::string g_run_root;

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

// The index of the first argument from `from` on that is neither a flag
// nor the value of one of `with_value` (0 when there is none).
int first_word(int argc, char** argv, int from, const std::set<std::string>& with_value) {
  for (int i = from; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") return 0;
    if (with_value.count(a)) {
      ++i;
      continue;
    }
    if (!a.empty() && a[0] == '-') continue;
    return i;
  }
  return 0;
}

const std::set<std::string> kGlobalWithValue{"--root", "--run-root", "--log-level"};

// The command word: the first argument that is not a global flag or its
// value (nullptr when there is none: `berth`, `berth --help`).
const char* command_word(int argc, char** argv) {
  int i = first_word(argc, argv, 1, kGlobalWithValue);
  return i ? argv[i] : nullptr;
}

// Commands that only read, or touch no root: they mount no layer, and
// they read the disk themselves rather than through serve.
bool is_reading(const std::vector<std::string>& words) {
  static const std::set<std::string> reads{"events", "version", "config", "login", "logout", "search", "check", "ps",    "ls",
                                           "inspect", "logs",  "images", "top",   "port",   "diff",   "wait",  "info", "stats",
                                           "history"};
  if (words.empty()) return true;
  for (auto& w : words)
    if (reads.count(w)) return true;
  return false;
}

// Whether a command goes to `berth serve` (supervisor/commands.h), by its
// words: {command} or {group, command}. Commands that start processes
// (containers, exec sessions) start a serve when none runs, so what they
// start is not the caller's; other changing commands use one when it runs
// and otherwise do the same work here. Reading commands read the disk, the
// one source of truth, themselves (a round trip would only make them
// slower); serve itself, the commands that talk to it already and those
// that touch no root stay here too.
enum class ViaServe { No, IfRunning, Start };

ViaServe via_serve(const std::vector<std::string>& words) {
  if (std::getenv(supervisor::kInServeEnv)) return ViaServe::No;  // set, to any value
  static const std::set<std::string> stay{"serve", "__restart", "__rm-cleanup"};
  static const std::set<std::string> start{"up", "run", "start", "restart", "exec"};
  if (is_reading(words)) return ViaServe::No;
  for (auto& w : words)
    if (stay.count(w)) return ViaServe::No;
  // `run` or `start` in a group of its own (`image`, ...) starts no
  // container; compose's do.
  bool starts = start.count(words.back()) && (words.size() == 1 || words.front() == "compose");
  return starts ? ViaServe::Start : ViaServe::IfRunning;
}

// The words of a parsed command line.
std::vector<std::string> parsed_words(const CLI::App& app) {
  std::vector<std::string> words;
  for (const CLI::App* cmd = &app; !cmd->get_subcommands().empty();) {
    cmd = cmd->get_subcommands().front();
    words.push_back(cmd->get_name());
  }
  return words;
}

// The words of a command line not parsed yet; {} when they are not plain
// (help, a group without its command).
std::vector<std::string> raw_words(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") break;
    if (a == "--help" || a == "-h" || a == "--help-all" || a == "--version") return {};
  }
  int top = first_word(argc, argv, 1, kGlobalWithValue);
  if (!top) return {};
  std::vector<std::string> words{argv[top]};
  static const std::set<std::string> groups{"compose", "image", "network", "volume"};
  static const std::set<std::string> project_with_value{"-f", "--file", "-p", "--project-name", "--project-directory",
                                                        "--env-file", "--profile", "--parallel"};
  if (groups.count(words[0])) {
    int sub = first_word(argc, argv, top + 1, words[0] == "compose" ? project_with_value : std::set<std::string>{});
    if (!sub) return {};
    words.emplace_back(argv[sub]);
  }
  return words;
}

// --root / --run-root of a command line not parsed yet, as CLI11 will read
// them (the flag before the command word, else the environment's, else
// the default, already in `global`).
runtime::Paths raw_roots(int argc, char** argv, GlobalOptions global) {
  int word = first_word(argc, argv, 1, kGlobalWithValue);
  for (int i = 1; i < (word ? word : argc); ++i) {
    std::string a = argv[i];
    for (auto [flag, value] : {std::pair<std::string, std::string*>{"--root", &global.root}, {"--run-root", &global.run_root}}) {
      if (a == flag && i + 1 < argc) *value = argv[i + 1];
      else if (a.rfind(flag + "=", 0) == 0) *value = a.substr(flag.size() + 1);
    }
  }
  return runtime::Paths{path_absolute(global.root), path_absolute(global.run_root), {}};
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
  // `berth --version` alone needs no command: ~1.6 ms of building them all.
  if (argc == 2 && std::string(argv[1]) == "--version") {
    std::cout << version_line() << "\n";
    return 0;
  }
  if (const char* env = std::getenv("BERTH_ROOT"); env && *env) global.root = env;
  if (const char* env = std::getenv("BERTH_RUN_ROOT"); env && *env) global.run_root = env;

  // A command for a serve that runs already is handed over before it is
  // parsed (building the command's flags costs ~2.5 ms): the command checks
  // it there, and with a serve running, there is none to start.
  if (ViaServe via = via_serve(raw_words(argc, argv)); via != ViaServe::No) {
    std::vector<std::string> args(argv + 1, argv + argc);
    if (auto code = supervisor::run_via_daemon(raw_roots(argc, argv, global), args, false)) return *code;
  }

  CLI::App app{"berth: a declarative, Compose-compatible container supervisor", "berth"};
  app.set_help_all_flag("--help-all", "Show help for every command");
  // As `docker --version`: the `version` command's first line.
  app.set_version_flag("--version", version_line(),
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
    g_run_root = global.run_root;
    // IMAGE/COMMAND commands (run, create, exec) take everything from the
    // first positional on as is: a flag there is one CLI11 did not know.
    const CLI::App* leaf = &app;
    while (!leaf->get_subcommands().empty()) leaf = leaf->get_subcommands().front();
    std::vector<std::string> words = parsed_words(app);
    if (leaf->get_prefix_command()) {
      auto rest = leaf->remaining();
      std::string command;
      for (auto& w : words) command += " " + w;
      if (!rest.empty() && rest[0].size() > 1 && rest[0][0] == '-')
        throw UsageError("unknown flag: " + rest[0] + "\nSee 'berth" + command + " --help'.");
    }
    ViaServe via = via_serve(words);
    auto given = [&](const char* flag) {
      const CLI::Option* o = leaf->get_option_no_throw(flag);
      return o && o->count() > 0;
    };
    // A dry run starts nothing, so it starts no serve either; nor does a
    // foreground `run --rm`, whose container lives and dies with the
    // command (a serve that runs still gets it).
    bool foreground_rm = words == std::vector<std::string>{"run"} && given("--rm") && !given("--detach");
    if (via == ViaServe::Start && (given("--dry-run") || foreground_rm)) via = ViaServe::IfRunning;
    if (via != ViaServe::No) {
      std::vector<std::string> args(argv + 1, argv + argc);
      if (auto code = supervisor::run_via_daemon(runtime::Paths{global.root, global.run_root, {}}, args,
                                                 via == ViaServe::Start))
        throw ExitCode{*code};
    }
    // The command runs here. Before one that may mount a layer, layers an
    // earlier boot left unsynced are rebuilt (images/unsynced.cpp).
    if (!is_reading(words)) images::recover_unsynced_layers(global.root);
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
  berth::supervisor::take_command_marker();
  int code;
  try {
    code = berth::cli::run(argc, argv);
  } catch (const berth::Error& e) {
    std::cout.flush();
    std::cerr << "Error: " << e.what() << "\n";
    code = e.exit_code();
  } catch (const std::exception& e) {
    std::cout.flush();
    std::cerr << "Error: " << e.what() << "\n";
    code = 1;
  }
  // A command serve ran, that outlived serve: its client waits for this.
  berth::supervisor::record_status_if_orphaned(berth::cli::g_run_root, code);
  return code;
}
