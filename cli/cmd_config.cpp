// Placeholder until the spec library lands: `berth config` is owned by spec work.
#include "base/error.h"
#include "cli/cli.h"
namespace berth::cli {
static void register_config(CLI::App& app, GlobalOptions&) {
  add_command(app, "config", "Parse, resolve and render the compose file in canonical format")
      ->callback([] { throw Error("config: not implemented yet"); });
}
BERTH_REGISTER_COMMANDS(100, register_config);
}  // namespace berth::cli
