#include "tests/support/ustar.h"

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace berth::test {

std::string pax_record(const std::string& key, const std::string& value) {
  std::string body = " " + key + "=" + value + "\n";
  size_t len = body.size() + 1;
  while (std::to_string(len).size() + body.size() != len) ++len;
  return std::to_string(len) + body;
}

std::string ustar(const std::vector<TarEntry>& entries) {
  std::string out;
  for (auto& e : entries) {
    char h[512] = {};
    std::memcpy(h, e.name.data(), std::min<size_t>(e.name.size(), 100));
    std::snprintf(h + 100, 8, "%07o", e.mode);
    std::snprintf(h + 108, 8, "%07o", 0);
    std::snprintf(h + 116, 8, "%07o", 0);
    std::snprintf(h + 124, 12, "%011llo", static_cast<unsigned long long>(e.data.size()));
    std::snprintf(h + 136, 12, "%011o", 1700000000);
    h[156] = e.type;
    std::memcpy(h + 157, e.link.data(), std::min<size_t>(e.link.size(), 100));
    std::memcpy(h + 257, "ustar", 6);
    std::memcpy(h + 263, "00", 2);
    std::snprintf(h + 329, 8, "%07o", e.dev_major);
    std::snprintf(h + 337, 8, "%07o", e.dev_minor);
    std::memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (unsigned char c : h) sum += c;
    std::snprintf(h + 148, 8, "%06o", sum);
    out.append(h, 512);
    out += e.data;
    out.append((512 - e.data.size() % 512) % 512, '\0');
  }
  out.append(1024, '\0');
  return out;
}

}  // namespace berth::test
