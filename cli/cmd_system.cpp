// version, info: what this berth is and what host it runs on.
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "cli/cli.h"
#include "cli/version.h"
#include "runtime/runtime.h"

namespace berth::cli {

static std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (auto& s : v) out += (out.empty() ? "" : " ") + s;
  return out.empty() ? "(none)" : out;
}

static void register_system_commands(CLI::App& app, GlobalOptions& global) {
  auto* version = add_command(app, "version", "Show the berth version information");
  auto version_format = std::make_shared<std::string>();
  version->add_option("-f,--format", *version_format, "Output format: json");
  version->callback([version_format] {
    if (*version_format == "json") {
      nlohmann::json j = {{"Version", kVersion}, {"GitCommit", kGitCommit}, {"Os", "linux"}};
      std::cout << j.dump() << "\n";
    } else if (version_format->empty()) {
      std::cout << version_line() << "\n";
    } else {
      throw UsageError("--format: unknown format \"" + *version_format + "\" (want json)");
    }
  });

  auto* info = add_command(app, "info", "Display system-wide information");
  auto info_format = std::make_shared<std::string>();
  info->add_option("-f,--format", *info_format, "Output format: json");
  info->callback([&global, info_format] {
    runtime::HostInfo h = runtime::probe_host();
    if (*info_format == "json") {
      nlohmann::json j = {{"ServerVersion", kVersion},
                          {"KernelVersion", h.kernel_release},
                          {"OSType", "linux"},
                          {"Architecture", h.architecture},
                          {"NCPU", h.cpus},
                          {"MemTotal", h.memory_bytes},
                          {"CgroupMode", runtime::to_string(h.cgroup_mode)},
                          {"CgroupV1Controllers", h.cgroup_v1_controllers},
                          {"CgroupV2Controllers", h.cgroup_v2_controllers},
                          {"CgroupV2Mount", h.cgroup_v2_mount},
                          {"BerthRootDir", global.root},
                          {"BerthRunRootDir", global.run_root}};
      std::cout << j.dump(2) << "\n";
      return;
    }
    if (!info_format->empty())
      throw UsageError("--format: unknown format \"" + *info_format + "\" (want json)");
    std::cout << "Server Version: " << kVersion << "\n"
              << "Kernel Version: " << h.kernel_release << "\n"
              << "Operating System: " << h.os_type << "\n"
              << "Architecture: " << h.architecture << "\n"
              << "CPUs: " << h.cpus << "\n"
              << "Total Memory: " << (h.memory_bytes >> 20) << " MiB\n"
              << "Cgroup Mode: " << runtime::to_string(h.cgroup_mode) << "\n"
              << "Cgroup v1 Controllers: " << join(h.cgroup_v1_controllers) << "\n"
              << "Cgroup v2 Mount: " << (h.cgroup_v2_mount.empty() ? "(none)" : h.cgroup_v2_mount) << "\n"
              << "Cgroup v2 Controllers: " << join(h.cgroup_v2_controllers) << "\n"
              << "Storage Root: " << global.root << "\n"
              << "Run Root: " << global.run_root << "\n";
  });
}

BERTH_REGISTER_COMMANDS(900, register_system_commands, "version", "info");

}  // namespace berth::cli
