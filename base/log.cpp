#include "base/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include "base/error.h"

namespace berth {

void init_logging(const std::string& level) {
  spdlog::level::level_enum lvl;
  if (level == "trace") lvl = spdlog::level::trace;
  else if (level == "debug") lvl = spdlog::level::debug;
  else if (level == "info") lvl = spdlog::level::info;
  else if (level == "warn" || level == "warning") lvl = spdlog::level::warn;
  else if (level == "error") lvl = spdlog::level::err;
  else if (level == "fatal" || level == "critical") lvl = spdlog::level::critical;
  else throw UsageError("--log-level: unknown level \"" + level + "\" (want debug, info, warn, error or fatal)");
  auto logger = spdlog::stderr_color_mt("berth");
  logger->set_pattern("%^%l%$: %v");
  logger->set_level(lvl);
  spdlog::set_default_logger(logger);
}

}  // namespace berth
