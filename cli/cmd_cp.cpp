// berth cp: copy files between a container and the host (runtime/archive.h).
//   berth cp [-a] [-L] CONTAINER:SRC DEST|-
//   berth cp [-a] [-L] SRC|- CONTAINER:DEST
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"
#include "cli/cli.h"
#include "runtime/archive.h"
#include "runtime/runtime.h"

namespace berth::cli {

namespace {

// docker's splitCpArg: an absolute path, or one whose part before the
// first ':' starts with '.', is local; otherwise CONTAINER:PATH.
std::pair<std::string, std::string> split_arg(const std::string& arg) {
  if (!arg.empty() && arg[0] == '/') return {"", arg};
  auto colon = arg.find(':');
  if (colon == std::string::npos || arg[0] == '.') return {"", arg};
  return {arg.substr(0, colon), arg.substr(colon + 1)};
}

}  // namespace

static void register_cp_command(CLI::App& app, GlobalOptions& global) {
  auto* cp = add_command(app, "cp", "Copy files/folders between a container and the local filesystem");
  auto args = std::make_shared<std::vector<std::string>>();
  auto opts = std::make_shared<runtime::CopyOptions>();
  auto quiet = std::make_shared<bool>(false);
  cp->add_option("SRC DEST", *args, "CONTAINER:SRC_PATH DEST_PATH|-, or SRC_PATH|- CONTAINER:DEST_PATH")
      ->expected(2)
      ->required();
  cp->add_flag("-a,--archive", opts->archive, "Archive mode (copy all uid/gid information)");
  cp->add_flag("-L,--follow-link", opts->follow_link, "Always follow symbol link in SRC_PATH");
  cp->add_flag("-q,--quiet", *quiet, "Suppress progress output during copy (there is none)");
  cp->callback([args, opts, &global] {
    auto [src_container, src] = split_arg((*args)[0]);
    auto [dest_container, dest] = split_arg((*args)[1]);
    if (!src_container.empty() && !dest_container.empty())
      throw Error("copying between containers is not supported", 0, 1);
    if (src_container.empty() && dest_container.empty())
      throw Error("must specify at least one container source", 0, 1);
    if (src.empty() || dest.empty()) throw Error("filepath cannot be empty", 0, 1);
    runtime::Runtime rt(runtime::Paths{global.root, global.run_root, {}});
    if (!src_container.empty()) {
      runtime::copy_from_container(rt, src_container, src, dest, *opts);
    } else {
      runtime::copy_to_container(rt, dest_container, src, dest, *opts);
    }
  });
}

BERTH_REGISTER_COMMANDS(205, register_cp_command, "cp");

}  // namespace berth::cli
