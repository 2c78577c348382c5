// `-u user[:group]` resolved against the container's own /etc/passwd and
// /etc/group (never the host's), with supplementary groups.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace berth::runtime {

struct ResolvedUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary
  std::string home = "/";
};

// Looks for etc/passwd and etc/group in the first of `layers` that has
// them (the container's upper dir first, then the lower dirs top-down).
// Throws Error (exit 125) for an unknown user or group name.
ResolvedUser resolve_user(const std::vector<std::string>& layers, const std::string& spec);

}  // namespace berth::runtime
