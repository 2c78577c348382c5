// The container's init process: everything that happens between clone()
// and execve() inside the new namespaces. Prepared in the parent as one
// plain value so the child only applies it.
#pragma once

#include <functional>

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/cgroup.h"
#include "runtime/runtime.h"
#include "runtime/seccomp.h"
#include "runtime/user.h"

namespace berth::runtime {

// A volume mount of spec.mounts (by index), as resolved at start: a bind
// of the volume's mountpoint (the MountSpec is rewritten to a bind), or a
// filesystem of its driver options (fstype set; the MountSpec stays Volume).
struct VolumeMount {
  size_t index = 0;
  std::string name;  // the volume's
  // Copy the image's content at the destination into the volume when the
  // volume is empty (docker's copy-up; the container's first start only).
  bool copy_up = false;
  std::string fstype, device, data;
};

struct InitConfig {
  std::string container_dir;   // upper/, work/, merged/, hosts, hostname, resolv.conf
  ContainerSpec spec;
  ResolvedUser user;
  std::vector<std::string> env;  // final environment (PATH, HOSTNAME, HOME added)
  uint64_t caps = 0;
  SeccompFilter* seccomp = nullptr;  // null = unconfined
  // With a tty: the init opens the pty inside its own /dev/pts and sends
  // the master over this socket to the monitor.
  int console_socket = -1;
  std::vector<CgroupMountSpec> cgroup_mounts;  // for /sys/fs/cgroup inside
  std::vector<VolumeMount> volume_mounts;      // how spec.mounts' volumes are mounted
  // spec.init: the host path of berth-init, bound at kInitPath.
  std::string init_binary;
};

// Where --init's binary appears in the container (docker's path).
inline constexpr const char* kInitPath = "/sbin/docker-init";

// berth-init next to the berth binary (self_exe, or /proc/self/exe when
// empty); throws (125) when it is not there.
std::string find_init_binary(const std::string& self_exe);

// --sysctl: throws (125) unless every key is one docker lets a container
// set (namespaced: IPC's kernel.* keys, fs.mqueue.*, and net.* when the
// container has a network namespace of its own).
void validate_sysctls(const ContainerSpec& spec);

// Unmounts (every stacked mount) and unlinks a netns file; missing is fine.
void remove_netns_file(const std::string& path);

// SCM_RIGHTS helpers for the console socket.
void send_fd(int sock, int fd);
int receive_fd(int sock);  // -1 on failure

// Namespaces the init is cloned into.
int clone_flags(const ContainerSpec& spec);

// A container process's pty slave becomes its user's (`run -t -u`,
// `exec -t -u`); group and mode stay the devpts mount's tty/0620.
void give_pty_to_user(int slave, uid_t uid);

// Runs in the freshly cloned child: sets up the container and execs. It
// waits for one byte on go_fd (sent once the parent has put it in its
// cgroup) before anything of the container's own runs, and before its
// cgroup namespace and cgroup mounts are made.
// Never returns. On failure writes "<exit code>\n<message>" to error_fd
// (close-on-exec, so a successful exec closes it empty) and exits with
// that code: 127 command not found, 126 not executable, 125 otherwise.
[[noreturn]] void container_init(const InitConfig& cfg, int go_fd, int error_fd);

// Mounts the overlay rootfs and everything docker mounts, then pivot_root.
// enter_cgroup is called once, before the cgroup filesystems are mounted
// (it waits until the process is in its cgroup and unshares the cgroup
// namespace).
void setup_rootfs(const InitConfig& cfg, const std::function<void()>& enter_cgroup);

// `cp` on a stopped container, in a private mount namespace: the overlay
// rootfs at <container_dir>/merged with the container's volumes and binds
// mounted in it (read-only where the container has them read-only).
void mount_copy_view(const InitConfig& cfg);

// Apply the process side of the config (no_new_privs, bounding set,
// seccomp, user, capabilities) and exec; shared with `exec`. Never returns.
[[noreturn]] void finish_and_exec(const InitConfig& cfg, const ProcessSpec& process,
                                  const std::vector<std::string>& env, int error_fd);

// --ulimit: checks names, soft <= hard, and that no hard limit is raised
// above berth's own unless berth holds CAP_SYS_RESOURCE (throws, 125).
void validate_rlimits(const std::vector<Rlimit>& limits);

// Writes "<code>\n<message>" to fd and _exits with code.
[[noreturn]] void child_fail(int fd, int code, const std::string& message);

// Parses what child_fail wrote; false when the pipe was closed empty (exec succeeded).
bool read_child_error(int fd, int& code, std::string& message);

// Forks a child that runs body(error_fd) and then _exits 0 (the body may
// exec or _exit itself; error_fd is close-on-exec). An exception thrown in
// the child reaches the caller as berth::Error with the child's message and
// the code code_for(exception) gave it. Returns the child's wait status.
int fork_and_wait(const std::function<void(int error_fd)>& body,
                  const std::function<int(const std::exception&)>& code_for);

}  // namespace berth::runtime
