#include <gtest/gtest.h>

#include <algorithm>

#include "base/error.h"
#include "runtime/caps.h"
#include "runtime/seccomp.h"

namespace berth::runtime {
namespace {

bool allows(const SeccompProfile& p, const std::string& name) {
  for (auto& r : p.rules)
    if (r.action == "SCMP_ACT_ALLOW" && std::find(r.names.begin(), r.names.end(), name) != r.names.end())
      return true;
  return false;
}

TEST(RuntimeSeccomp, DefaultProfileBlocksPrivilegedSyscalls) {
  auto p = default_seccomp_profile(kDockerDefaultCaps);
  EXPECT_EQ(p.default_action, "SCMP_ACT_ERRNO");
  EXPECT_EQ(p.default_errno, 1);
  for (const char* s : {"read", "write", "execve", "capset", "setresuid", "clock_gettime", "ptrace"})
    EXPECT_TRUE(allows(p, s)) << s;
  for (const char* s : {"mount", "umount2", "unshare", "setns", "reboot", "kexec_load", "init_module", "bpf",
                        "open_by_handle_at", "keyctl", "add_key", "userfaultfd", "pivot_root", "swapon"})
    EXPECT_FALSE(allows(p, s)) << s;
  // chroot comes with CAP_SYS_CHROOT, which docker's default set has.
  EXPECT_TRUE(allows(p, "chroot"));
}

TEST(RuntimeSeccomp, CapabilitiesUnlockTheirSyscalls) {
  auto p = default_seccomp_profile(kDockerDefaultCaps | (1ULL << 21) | (1ULL << 22));
  for (const char* s : {"mount", "unshare", "setns", "reboot"}) EXPECT_TRUE(allows(p, s)) << s;
}

TEST(RuntimeSeccomp, DefaultProfileCompiles) {
  SeccompFilter f(default_seccomp_profile(kDockerDefaultCaps));
  SeccompFilter g(default_seccomp_profile(all_capabilities()));
}

TEST(RuntimeSeccomp, ParsesDockerJson) {
  auto p = parse_seccomp_profile(R"({
    "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}],
    "syscalls": [
      {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
      {"names": ["personality"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]},
      {"names": ["mount"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
      {"names": ["clone"], "action": "SCMP_ACT_ALLOW", "excludes": {"caps": ["CAP_CHOWN"]}},
      {"names": ["ancient"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "99.0"}}
    ]})",
                                 kDockerDefaultCaps);
  EXPECT_EQ(p.default_errno, 38);
  EXPECT_EQ(p.architectures, (std::vector<std::string>{"SCMP_ARCH_X86_64", "SCMP_ARCH_X86"}));
  EXPECT_TRUE(allows(p, "read"));
  EXPECT_TRUE(allows(p, "personality"));
  EXPECT_FALSE(allows(p, "mount")) << "included only with CAP_SYS_ADMIN";
  EXPECT_FALSE(allows(p, "clone")) << "excluded when CAP_CHOWN is held";
  EXPECT_FALSE(allows(p, "ancient"));
  SeccompFilter compiled(p);
}

TEST(RuntimeSeccomp, BadProfilesAre125) {
  for (const char* bad : {"{", "[]", "{}", R"({"defaultAction": "SCMP_ACT_MAYBE"})",
                          R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "NOPE"}]})",
                          R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                              "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]})",
                          R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": "read"})"}) {
    try {
      parse_seccomp_profile(bad, 0);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), 125) << bad;
    }
  }
}

}  // namespace
}  // namespace berth::runtime
