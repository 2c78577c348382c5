// Hidden commands that a container's monitor (berth-monitor, which links
// none of net/, images/ or the reconciler) runs berth for.
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "cli/cli.h"
#include "cli/network_flags.h"
#include "reconciler/image_rootfs.h"
#include "runtime/runtime.h"
#include "runtime/volume.h"

namespace berth::cli {

namespace {

void register_monitor_commands(CLI::App& app, GlobalOptions& global) {
  // `__rm-cleanup ID [VOLUME...]`: a --rm container has exited and its
  // monitor removed it; undo what berth made for it besides the container:
  // its anonymous volumes, its network endpoints (addresses, published
  // ports' rules) and its image hold. --volumes-only: an attached `run`
  // heard the exit and does the rest itself.
  auto* cleanup = app.add_subcommand("__rm-cleanup", "");
  cleanup->group("");
  auto args = std::make_shared<std::vector<std::string>>();
  auto volumes_only = std::make_shared<bool>(false);
  cleanup->add_flag("--volumes-only", *volumes_only, "");
  cleanup->add_option("ID VOLUME", *args, "")->required();
  cleanup->callback([args, volumes_only, &global] {
    runtime::Paths paths{global.root, global.run_root, {}};
    runtime::Runtime rt(paths);
    const std::string& id = args->front();
    std::vector<std::string> volumes(args->begin() + 1, args->end());
    if (!volumes.empty()) runtime::remove_anonymous_volumes(paths, volumes);
    if (*volumes_only) return;
    release_network(rt, id);
    reconciler::release_image(global.root, id);
  });
}

}  // namespace

BERTH_REGISTER_COMMANDS(900, register_monitor_commands, "__rm-cleanup");

}  // namespace berth::cli
