// The host's network state as the network tests compare it: link names and
// the nft ruleset without rule handles (which differ run to run).
#pragma once

#include <set>
#include <sstream>
#include <string>

#include "base/fs.h"
#include "tests/support/run.h"

namespace berth::test {

inline const std::string kIp = path_exists("/usr/sbin/ip") ? "/usr/sbin/ip" : "/sbin/ip";
inline const std::string kNft = path_exists("/usr/sbin/nft") ? "/usr/sbin/nft" : "/sbin/nft";

// Host link names (no counters or indexes), one a line, sorted.
inline std::string host_links() {
  auto r = run({kIp, "-o", "link", "show"});
  std::set<std::string> names;
  std::istringstream in(r.out);
  for (std::string line; std::getline(in, line);) {
    auto colon = line.find(": ");
    if (colon == std::string::npos) continue;
    auto end = line.find_first_of(":@", colon + 2);
    names.insert(line.substr(colon + 2, end - colon - 2));
  }
  std::string out;
  for (auto& n : names) out += n + "\n";
  return out;
}

// nft output without rule handles.
inline std::string without_handles(const std::string& text) {
  std::string out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out += line.substr(0, line.find(" # handle")) + "\n";
  return out;
}

inline std::string nft_ruleset() { return without_handles(run({kNft, "list", "ruleset"}).out); }

}  // namespace berth::test
