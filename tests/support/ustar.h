// Test support: a tiny ustar writer for hand-made (and deliberately
// malicious) archives: names with "..", links out of the layer, devices.
#pragma once

#include <string>
#include <vector>

namespace berth::test {

struct TarEntry {
  std::string name;
  char type = '0';  // '0' file, '1' hardlink, '2' symlink, '5' dir
  std::string data{};
  std::string link{};
  unsigned mode = 0644;
  unsigned dev_major = 0, dev_minor = 0;
};

// A pax extended header record: "<len> key=value\n", len counting itself.
std::string pax_record(const std::string& key, const std::string& value);

// The entries as a ustar archive, uid/gid 0, ending in two zero blocks.
std::string ustar(const std::vector<TarEntry>& entries);

}  // namespace berth::test
