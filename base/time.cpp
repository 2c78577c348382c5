#include "base/time.h"

#include <time.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "base/error.h"

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

double now_epoch_seconds() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double rfc3339_seconds(const std::string& t) {
  if (t.empty()) return 0;
  struct tm tm {};
  const char* rest = ::strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) return 0;
  double frac = *rest == '.' ? std::strtod(rest, nullptr) : 0;
  return static_cast<double>(::timegm(&tm)) + frac;
}

double parse_docker_time(const std::string& flag, const std::string& v) {
  if (v.empty()) return 0;
  char* end = nullptr;
  double n = std::strtod(v.c_str(), &end);
  if (end && *end == '\0' && v.find_first_not_of("0123456789.") == std::string::npos) return n;
  // A duration: digits and units only.
  if (v.find_first_not_of("0123456789.hms") == std::string::npos && std::isalpha(static_cast<unsigned char>(v.back()))) {
    double total = 0;
    std::size_t i = 0;
    while (i < v.size()) {
      std::size_t used = 0;
      double x = 0;
      try {
        x = std::stod(v.substr(i), &used);
      } catch (const std::exception&) {
        throw UsageError(flag + ": invalid duration \"" + v + "\"");
      }
      i += used;
      if (i >= v.size()) throw UsageError(flag + ": invalid duration \"" + v + "\" (missing unit)");
      std::string unit(1, v[i]);
      if (v.compare(i, 2, "ms") == 0) unit = "ms";
      i += unit.size();
      total += unit == "h" ? x * 3600 : unit == "m" ? x * 60 : unit == "s" ? x : x / 1000;
    }
    return now_epoch_seconds() - total;
  }
  struct tm tm {};
  const char* rest = ::strptime(v.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) {
    tm = {};
    rest = ::strptime(v.c_str(), "%Y-%m-%d", &tm);
    if (!rest || *rest) throw UsageError(flag + ": invalid time \"" + v + "\" (want RFC 3339, a Unix time or a duration like 10m)");
    return static_cast<double>(::timegm(&tm));
  }
  double t = static_cast<double>(::timegm(&tm));
  if (*rest == '.') t += std::strtod(rest, const_cast<char**>(&rest));
  if (*rest == '+' || *rest == '-') {  // a zone offset: +02:00
    int hh = 0, mm = 0;
    if (std::sscanf(rest + 1, "%d:%d", &hh, &mm) >= 1) t -= (*rest == '+' ? 1 : -1) * (hh * 3600 + mm * 60);
  } else if (*rest != 'Z' && *rest != '\0') {
    throw UsageError(flag + ": invalid time \"" + v + "\"");
  }
  return t;
}


}  // namespace berth
