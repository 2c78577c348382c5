// seccomp: profiles as plain values (docker/OCI JSON shape), berth's own
// table of docker's default policy, and compilation into a filter with
// libseccomp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace berth::runtime {

struct SeccompArg {
  unsigned index = 0;
  uint64_t value = 0;
  uint64_t value_two = 0;
  std::string op;  // SCMP_CMP_EQ, SCMP_CMP_MASKED_EQ, ...
};

struct SeccompRule {
  std::vector<std::string> names;
  std::string action;  // SCMP_ACT_ALLOW, SCMP_ACT_ERRNO, ...
  int errno_ret = -1;  // for SCMP_ACT_ERRNO; -1 = the profile's default errno
  std::vector<SeccompArg> args;
};

struct SeccompProfile {
  std::string default_action = "SCMP_ACT_ERRNO";
  int default_errno = 1;  // EPERM
  std::vector<std::string> architectures;  // SCMP_ARCH_*; empty = native only
  std::vector<SeccompRule> rules;
};

// docker's default policy for a process holding `caps` (some syscalls are
// allowed only with the matching capability, as docker does).
SeccompProfile default_seccomp_profile(uint64_t caps);
// Parses a docker/OCI seccomp JSON document, applying its includes and
// excludes (caps, arches, minKernel). Throws Error (exit 125) when invalid.
SeccompProfile parse_seccomp_profile(const std::string& json_text, uint64_t caps);

// A compiled filter (classic BPF), ready to load. Compiling happens in the
// parent so a bad profile fails the start before any process exists; the
// program is cached on disk because libseccomp's generation of docker's
// profile costs tens of milliseconds, more than the rest of a start.
class SeccompFilter {
 public:
  explicit SeccompFilter(const SeccompProfile& profile);
  // The same program, from cache_dir when an identical profile was compiled
  // before (cache_dir empty: no cache).
  static std::unique_ptr<SeccompFilter> compile(const SeccompProfile& profile, const std::string& cache_dir);
  // Installs the filter on the calling thread (and its future children).
  // Needs CAP_SYS_ADMIN or no_new_privs.
  void load() const;
  size_t instructions() const { return program_.size() / 8; }

 private:
  SeccompFilter() = default;
  std::string program_;  // struct sock_filter[], as bytes
};

}  // namespace berth::runtime
