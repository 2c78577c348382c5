// Logging: spdlog to stderr. Levels follow docker's --log-level words.
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace berth {

// Accepts trace|debug|info|warn|error|fatal (and "warning"). Throws UsageError otherwise.
void init_logging(const std::string& level);

}  // namespace berth
