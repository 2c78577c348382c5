#include "base/time.h"

#include <cstdio>

namespace berth {

std::string format_rfc3339_nano(const struct timespec& ts) {
  struct tm tm {};
  ::gmtime_r(&ts.tv_sec, &tm);
  char buf[64];
  size_t n = ::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  std::string out(buf, n);
  if (ts.tv_nsec > 0) {
    char frac[16];
    std::snprintf(frac, sizeof frac, ".%09ld", ts.tv_nsec);
    std::string f = frac;
    while (f.back() == '0') f.pop_back();
    out += f;
  }
  return out + "Z";
}

std::string now_rfc3339_nano() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return format_rfc3339_nano(ts);
}

}  // namespace berth
