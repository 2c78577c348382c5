// What a default container may not do, and how the security flags change
// that: capabilities, seccomp, no_new_privs, masked and read-only paths,
// devices.
#include "tests/integration/container_fixture.h"

namespace berth::test {
namespace {

using ContainerSecurity = ContainerTest;

std::string status_field(const std::string& status, const std::string& key) {
  std::istringstream in(status);
  for (std::string line; std::getline(in, line);)
    if (line.rfind(key + ":", 0) == 0) {
      std::string v = line.substr(key.size() + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  return {};
}

TEST_F(ContainerSecurity, DefaultCapabilitiesAndSeccomp) {
  auto r = run({}, {"cat", "/proc/self/status"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(status_field(r.out, "CapEff"), "00000000a80425fb");
  EXPECT_EQ(status_field(r.out, "CapPrm"), "00000000a80425fb");
  EXPECT_EQ(status_field(r.out, "CapBnd"), "00000000a80425fb");
  EXPECT_EQ(status_field(r.out, "CapInh"), "0000000000000000");
  EXPECT_EQ(status_field(r.out, "CapAmb"), "0000000000000000");
  EXPECT_EQ(status_field(r.out, "Seccomp"), "2");
  EXPECT_EQ(status_field(r.out, "NoNewPrivs"), "0");
}

TEST_F(ContainerSecurity, MountUnshareRebootFail) {
  for (std::string cmd : {"mkdir -p /mnt; mount -t tmpfs none /mnt", "unshare -m true", "unshare -n true", "reboot -f",
                          "mkdir -p /mnt; mount --bind /bin /mnt"}) {
    auto r = run({}, {"sh", "-c", cmd});
    EXPECT_NE(r.exit_code, 0) << cmd << " succeeded: " << r.out;
  }
  // and the container still runs normal things
  EXPECT_EQ(run({}, {"sh", "-c", "mkdir /tmp/d && echo ok"}).out, "ok\n");
}

TEST_F(ContainerSecurity, MaskedPaths) {
  std::string script;
  int expected = 0;
  for (const char* p : {"/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/interrupts",
                        "/proc/latency_stats"}) {
    if (!path_exists(p)) continue;  // this kernel does not have it
    script += std::string("[ -z \"$(cat ") + p + " 2>&1)\" ] && echo masked; ";
    ++expected;
  }
  ASSERT_GT(expected, 0);
  if (is_directory("/sys/firmware")) {
    script += "[ -z \"$(ls /sys/firmware)\" ] && echo masked; ";
    ++expected;
  }
  auto r = run({}, {"sh", "-c", script});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), expected) << r.out;
  if (!path_exists("/proc/kcore")) std::cerr << "note: this kernel has no /proc/kcore\n";
  // --privileged unmasks.
  r = run({"--privileged"}, {"sh", "-c", "cat /proc/timer_list | head -c 1 | wc -c"});
  if (path_exists("/proc/timer_list")) EXPECT_EQ(r.out, "1\n") << r.err;
}

TEST_F(ContainerSecurity, ReadOnlyProcPaths) {
  std::string script = "echo boat > /proc/sys/kernel/domainname 2>/dev/null && echo writable-sys; ";
  if (path_exists("/proc/sysrq-trigger")) script += "echo h > /proc/sysrq-trigger 2>/dev/null && echo writable-sysrq; ";
  script += "grep -E ' /proc/(sys|sysrq-trigger|irq|bus|fs) ' /proc/mounts | cut -d' ' -f4 | cut -c1-3 | sort -u";
  auto r = run({}, {"sh", "-c", script});
  EXPECT_EQ(r.out, "ro,\n") << r.err;
  EXPECT_EQ(run({}, {"sh", "-c", "grep ' /sys ' /proc/mounts | cut -d' ' -f4 | cut -c1-3"}).out, "ro,\n");
}

TEST_F(ContainerSecurity, DevicesAreTheStandardOnes) {
  auto r = run({}, {"sh", "-c",
                    "ls /dev | tr '\\n' ' '; echo; echo x > /dev/null && echo null-ok; "
                    "head -c 4 /dev/zero | wc -c; readlink /dev/ptmx; "
                    "mknod /tmp/disk b 8 0 && head -c 1 /tmp/disk 2>/dev/null || echo disk-denied"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "core fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero \n"
            "null-ok\n4\npts/ptmx\ndisk-denied\n");
}

TEST_F(ContainerSecurity, CapAddAndDrop) {
  struct Case {
    std::vector<std::string> flags;
    const char* cap_eff;
  } cases[] = {
      {{"--cap-drop", "ALL"}, "0000000000000000"},
      {{"--cap-add", "sys_admin"}, "00000000a82425fb"},
      {{"--cap-add", "CAP_SYS_ADMIN"}, "00000000a82425fb"},
      {{"--cap-drop", "chown", "--cap-drop", "Cap_Net_Raw"}, "00000000a80405fa"},
      {{"--cap-drop", "all", "--cap-add", "KILL"}, "0000000000000020"},
  };
  for (auto& c : cases) {
    auto r = run(c.flags, {"grep", "CapEff", "/proc/self/status"});
    EXPECT_EQ(r.out, std::string("CapEff:\t") + c.cap_eff + "\n") << c.flags[0] << " " << c.flags[1] << r.err;
  }
  // With CAP_SYS_ADMIN the seccomp policy lets mount through, as docker's does.
  auto r = run({"--cap-add", "SYS_ADMIN"}, {"sh", "-c", "mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted"});
  EXPECT_EQ(r.out, "mounted\n") << r.err;
  r = run({"--cap-add", "nonsense"}, {"true"});
  EXPECT_EQ(r.exit_code, 125);
  EXPECT_NE(r.err.find("nonsense"), std::string::npos) << r.err;
}

TEST_F(ContainerSecurity, PrivilegedGetsEverythingBerthHas) {
  std::string self = read_file("/proc/self/status");
  auto r = run({"--privileged"}, {"sh", "-c", "cat /proc/self/status; mkdir -p /mnt && mount -t tmpfs none /mnt && echo mounted"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(status_field(r.out, "CapEff"), status_field(self, "CapPrm"));
  EXPECT_EQ(status_field(r.out, "Seccomp"), "0");
  EXPECT_NE(r.out.find("mounted"), std::string::npos);
}

TEST_F(ContainerSecurity, SeccompUnconfinedAndCustomProfile) {
  auto r = run({"--security-opt", "seccomp=unconfined"}, {"grep", "-E", "CapEff|Seccomp:", "/proc/self/status"});
  EXPECT_EQ(r.out, "CapEff:\t00000000a80425fb\nSeccomp:\t0\n") << r.err;
  std::string profile = tmp_.write("no-mkdir.json", R"({
    "defaultAction": "SCMP_ACT_ALLOW",
    "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"],
    "syscalls": [
      {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
      {"names": ["chmod", "fchmodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
       "includes": {"caps": ["CAP_SYS_MODULE"]}}
    ]})");
  r = run({"--security-opt", "seccomp=" + profile},
          {"sh", "-c", "mkdir /tmp/x 2>&1 || echo mkdir-denied; touch /tmp/f && chmod 600 /tmp/f && echo chmod-ok"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("mkdir-denied"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Operation not permitted"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("chmod-ok"), std::string::npos) << "a rule for a capability we lack is skipped: " << r.out;
}

TEST_F(ContainerSecurity, NoNewPrivileges) {
  auto r = run({"--security-opt", "no-new-privileges"}, {"grep", "NoNewPrivs", "/proc/self/status"});
  EXPECT_EQ(r.out, "NoNewPrivs:\t1\n") << r.err;
  r = run({"--security-opt", "no-new-privileges:true", "-u", "berth"}, {"grep", "-E", "NoNewPrivs|Seccomp:", "/proc/self/status"});
  EXPECT_EQ(r.out, "NoNewPrivs:\t1\nSeccomp:\t2\n") << r.err;
}

TEST_F(ContainerSecurity, ImageSymlinksCannotRedirectMounts) {
  // /etc/hostname in the image points at a host path: the mount must land
  // inside the rootfs, never on the host file.
  std::string victim = tmp_.write("victim", "untouched\n");
  ::unlink((rootfs_ + "/etc/hostname").c_str());
  ASSERT_EQ(::symlink(victim.c_str(), (rootfs_ + "/etc/hostname").c_str()), 0);
  auto r = run({"-h", "safe"}, {"cat", "/etc/hostname"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(victim), "untouched\n");
}

}  // namespace
}  // namespace berth::test
