// Capabilities: docker's default set, --cap-add/--cap-drop/--privileged
// resolved to a bit mask, and applied to the container's process.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace berth::runtime {

// CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP
// SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE.
constexpr uint64_t kDockerDefaultCaps = 0x00000000a80425fbULL;

// Every capability the running kernel knows.
uint64_t all_capabilities();
// "CAP_SYS_ADMIN", "sys_admin", "Sys_Admin" -> its number; throws Error
// (exit 125) naming the capability when unknown.
int capability_from_name(const std::string& name);
std::string capability_name(int cap);  // "CAP_SYS_ADMIN"
// The set the container's process runs with, docker's rules: ALL in
// cap_add starts from everything, ALL in cap_drop from nothing.
uint64_t resolve_capabilities(const SecuritySpec& sec);

// In the container's process, before the user switch: shrinks the
// bounding set to `caps` and keeps permitted capabilities across setuid.
void limit_bounding_set(uint64_t caps);
// After the user switch: effective = permitted = caps for root, nothing
// for other users (as docker); inheritable and ambient are emptied.
void set_process_capabilities(uint64_t caps, bool root_user);

}  // namespace berth::runtime
