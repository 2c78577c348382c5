#include "base/human.h"

#include <algorithm>
#include <cstdio>
#include <iterator>

namespace berth {

std::string human_size(double bytes, int precision) {
  static const char* units[] = {"B", "kB", "MB", "GB", "TB", "PB", "EB"};
  size_t u = 0;
  while (bytes >= 1000 && u + 1 < std::size(units)) {
    bytes /= 1000;
    ++u;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*g%s", precision, bytes, units[u]);
  return buf;
}

std::string human_duration(double seconds) {
  auto plural = [](int64_t n, const char* unit) { return std::to_string(n) + " " + unit + (n == 1 ? "" : "s"); };
  auto s = static_cast<int64_t>(seconds);
  if (s < 1) return "Less than a second";
  if (s < 60) return plural(s, "second");
  int64_t minutes = s / 60;
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return plural(minutes, "minute");
  int64_t hours = minutes / 60;
  if (hours == 1) return "About an hour";
  if (hours < 48) return plural(hours, "hour");
  if (hours < 24 * 7 * 2) return plural(hours / 24, "day");
  if (hours < 24 * 30 * 2) return plural(hours / 24 / 7, "week");
  if (hours < 24 * 365 * 2) return plural(hours / 24 / 30, "month");
  return plural(hours / 24 / 365, "year");
}

std::string progress_bar(uint64_t done, uint64_t total) {
  if (total == 0) return human_size(static_cast<double>(done));
  constexpr uint64_t width = 50;
  uint64_t filled = width * std::min(done, total) / total;
  std::string bar = "[" + std::string(filled ? filled - 1 : 0, '=') + (filled ? ">" : "") +
                    std::string(width - filled, ' ') + "]";
  return bar + " " + human_size(static_cast<double>(done)) + "/" + human_size(static_cast<double>(total));
}

}  // namespace berth
