#include "runtime/user.h"

#include <algorithm>
#include <optional>
#include <sstream>

#include "base/error.h"
#include "base/fs.h"

namespace berth::runtime {

static std::string find_file(const std::vector<std::string>& layers, const std::string& rel) {
  for (auto& layer : layers) {
    std::string text;
    if (read_file_if_exists(layer + "/" + rel, text)) return text;
  }
  return {};
}

static std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  std::istringstream in(s);
  while (std::getline(in, cur, sep)) out.push_back(cur);
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

static std::optional<unsigned long> as_number(const std::string& s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 10) return std::nullopt;
  return std::stoul(s);
}

ResolvedUser resolve_user(const std::vector<std::string>& layers, const std::string& spec) {
  ResolvedUser u;
  if (spec.empty()) {
    u.home = "/root";
    return u;
  }
  auto colon = spec.find(':');
  std::string user = spec.substr(0, colon);
  std::string group = colon == std::string::npos ? "" : spec.substr(colon + 1);
  if (user.empty() || (colon != std::string::npos && group.empty()))
    throw Error("invalid user \"" + spec + "\": want name|uid[:group|gid]", 0, 125);

  std::string passwd = find_file(layers, "etc/passwd");
  std::string user_name;
  bool found = false;
  std::istringstream pw(passwd);
  for (std::string line; std::getline(pw, line);) {
    auto f = split(line, ':');
    if (f.size() < 7 || line[0] == '#') continue;
    auto uid = as_number(f[2]), gid = as_number(f[3]);
    if (!uid || !gid) continue;
    if (f[0] == user || (as_number(user) && *as_number(user) == *uid)) {
      u.uid = static_cast<uid_t>(*uid);
      u.gid = static_cast<gid_t>(*gid);
      u.home = f[5].empty() ? "/" : f[5];
      user_name = f[0];
      found = true;
      break;
    }
  }
  if (!found) {
    auto n = as_number(user);
    if (!n) throw Error("unable to find user " + user + ": no matching entries in passwd file", 0, 125);
    // A numeric uid need not exist in the image (docker runs it with gid 0).
    u.uid = static_cast<uid_t>(*n);
    u.gid = 0;
  }

  std::string groups = find_file(layers, "etc/group");
  if (!group.empty()) {
    bool gfound = false;
    std::istringstream gr(groups);
    for (std::string line; std::getline(gr, line);) {
      auto f = split(line, ':');
      if (f.size() < 3 || line[0] == '#') continue;
      auto gid = as_number(f[2]);
      if (gid && (f[0] == group || (as_number(group) && *as_number(group) == *gid))) {
        u.gid = static_cast<gid_t>(*gid);
        gfound = true;
        break;
      }
    }
    if (!gfound) {
      auto n = as_number(group);
      if (!n) throw Error("unable to find group " + group + ": no matching entries in group file", 0, 125);
      u.gid = static_cast<gid_t>(*n);
    }
  } else if (!user_name.empty()) {
    // Supplementary groups: every group that lists the user as a member.
    std::istringstream gr(groups);
    for (std::string line; std::getline(gr, line);) {
      auto f = split(line, ':');
      if (f.size() < 4 || line[0] == '#') continue;
      auto gid = as_number(f[2]);
      if (!gid) continue;
      auto members = split(f[3], ',');
      if (std::find(members.begin(), members.end(), user_name) != members.end() &&
          std::find(u.groups.begin(), u.groups.end(), *gid) == u.groups.end())
        u.groups.push_back(static_cast<gid_t>(*gid));
    }
  }
  return u;
}

}  // namespace berth::runtime
