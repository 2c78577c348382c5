// The container's filesystem: overlay rootfs, docker's standard mounts,
// the user's binds and tmpfs, masked and read-only paths, pivot_root.
// Runs inside the container's new mount namespace, so every mount here
// disappears with the namespace: nothing can leak onto the host.
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sendfile.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <sstream>

#include "base/error.h"
#include "base/fs.h"
#include "runtime/linux.h"

namespace berth::runtime {

namespace {

// docker's defaults for an unprivileged container.
const char* const kMaskedPaths[] = {
    "/proc/asound",      "/proc/acpi",        "/proc/interrupts", "/proc/kcore",
    "/proc/keys",        "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
    "/proc/sched_debug", "/proc/scsi",        "/sys/firmware",    "/sys/devices/virtual/powercap",
};
const char* const kReadOnlyPaths[] = {
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
};

int openat2_in_root(int rootfd, const std::string& rel, int flags) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  return static_cast<int>(::syscall(SYS_openat2, rootfd, rel.c_str(), &how, sizeof how));
}

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> out;
  std::istringstream in(path);
  for (std::string c; std::getline(in, c, '/');)
    if (!c.empty() && c != ".") out.push_back(c);
  return out;
}

// Opens `path` inside the rootfs as an O_PATH fd, creating what is missing
// (directories, and the last component as a file when !dir). Symlinks in
// the image resolve inside the rootfs: a hostile image cannot point a
// mount outside of it.
UniqueFd open_target(int rootfd, const std::string& path, bool dir, int depth = 0) {
  if (depth > 40) throw_errno("cannot open " + path + " in the rootfs", ELOOP);
  auto parts = components(path);
  std::string prefix;
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string parent = prefix.empty() ? "." : prefix;
    prefix += (prefix.empty() ? "" : "/") + parts[i];
    UniqueFd fd(openat2_in_root(rootfd, prefix, O_PATH));
    if (fd) continue;
    if (errno != ENOENT) throw_errno("cannot open " + path + " in the rootfs");
    UniqueFd pfd(openat2_in_root(rootfd, parent, O_PATH | O_DIRECTORY));
    if (!pfd) throw_errno("cannot open " + path + " in the rootfs");
    // A dangling symlink (e.g. /etc/resolv.conf -> /run/...): create what
    // it points to, resolved inside the rootfs like everything else.
    char link[4096];
    ssize_t n = ::readlinkat(pfd.get(), parts[i].c_str(), link, sizeof link - 1);
    if (n > 0) {
      std::string target(link, static_cast<size_t>(n));
      std::string resolved = target[0] == '/' ? target : "/" + parent + "/" + target;
      for (size_t k = i + 1; k < parts.size(); ++k) resolved += "/" + parts[k];
      return open_target(rootfd, resolved, dir, depth + 1);
    }
    bool last = i + 1 == parts.size();
    if (last && !dir) {
      UniqueFd f(::openat(pfd.get(), parts[i].c_str(), O_CREAT | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0644));
      if (!f && errno != EEXIST) throw_errno("cannot create " + path + " in the rootfs");
    } else if (::mkdirat(pfd.get(), parts[i].c_str(), 0755) != 0 && errno != EEXIST) {
      throw_errno("cannot create " + path + " in the rootfs");
    }
  }
  UniqueFd fd(openat2_in_root(rootfd, prefix.empty() ? "." : prefix, O_PATH));
  if (!fd) throw_errno("cannot open " + path + " in the rootfs");
  return fd;
}

std::string fd_path(const UniqueFd& fd) { return "/proc/self/fd/" + std::to_string(fd.get()); }

void do_mount(const std::string& source, const std::string& target, const char* fstype, unsigned long flags,
              const std::string& data, const std::string& what) {
  if (::mount(source.c_str(), target.c_str(), fstype, flags, data.empty() ? nullptr : data.c_str()) != 0)
    throw_errno("cannot mount " + what);
}

void mount_in_root(int rootfd, const std::string& dest, bool dir, const std::string& source, const char* fstype,
                   unsigned long flags, const std::string& data) {
  UniqueFd target = open_target(rootfd, dest, dir);
  do_mount(source, fd_path(target), fstype, flags, data, dest);
  // A bind mount ignores MS_RDONLY and friends until remounted.
  if ((flags & MS_BIND) && (flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC))) {
    UniqueFd again = open_target(rootfd, dest, dir);
    do_mount("", fd_path(again), nullptr, MS_REMOUNT | MS_BIND | (flags & ~MS_REC), "", dest + " read-only");
  }
}

// --tmpfs options: flags docker understands, the rest is tmpfs data.
void split_tmpfs_options(const std::string& options, unsigned long& flags, std::string& data) {
  flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  std::istringstream in(options);
  for (std::string o; std::getline(in, o, ',');) {
    if (o == "ro") flags |= MS_RDONLY;
    else if (o == "rw") flags &= ~static_cast<unsigned long>(MS_RDONLY);
    else if (o == "exec") flags &= ~static_cast<unsigned long>(MS_NOEXEC);
    else if (o == "noexec") flags |= MS_NOEXEC;
    else if (o == "suid") flags &= ~static_cast<unsigned long>(MS_NOSUID);
    else if (o == "nosuid") flags |= MS_NOSUID;
    else if (o == "dev") flags &= ~static_cast<unsigned long>(MS_NODEV);
    else if (o == "nodev") flags |= MS_NODEV;
    else if (!o.empty()) data += (data.empty() ? "" : ",") + o;
  }
}

// Copies ownership, mode and times of st onto the entry `name` in dirfd.
void copy_attributes(int dirfd, const char* name, const struct stat& st, bool symlink) {
  int nofollow = AT_SYMLINK_NOFOLLOW;
  if (::fchownat(dirfd, name, st.st_uid, st.st_gid, nofollow) != 0) throw_errno(std::string("cannot chown ") + name);
  if (!symlink && ::fchmodat(dirfd, name, st.st_mode & 07777, 0) != 0) throw_errno(std::string("cannot chmod ") + name);
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ::utimensat(dirfd, name, times, nofollow);
}

void copy_file(int from_dir, int to_dir, const char* name, const struct stat& st) {
  UniqueFd in(::openat(from_dir, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) throw_errno(std::string("cannot open ") + name);
  UniqueFd out(::openat(to_dir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) throw_errno(std::string("cannot create ") + name);
  off_t left = st.st_size;
  while (left > 0) {
    ssize_t n = ::sendfile(out.get(), in.get(), nullptr, static_cast<size_t>(std::min<off_t>(left, 1 << 30)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(std::string("cannot copy ") + name);
    if (n == 0) break;  // the file shrank
    left -= n;
  }
}

// A directory stream over a duplicate of `dir_fd` (the caller keeps its fd).
std::unique_ptr<DIR, int (*)(DIR*)> dir_stream(int dir_fd) {
  int dup_fd = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (dup_fd < 0) throw_errno("dup");
  DIR* d = ::fdopendir(dup_fd);
  if (!d) {
    ::close(dup_fd);
    throw_errno("fdopendir");
  }
  return {d, ::closedir};
}

// Copies the tree under from (a directory fd) into to, keeping owners,
// modes, times, symlinks and device nodes. Never follows a symlink.
void copy_tree(int from, int to, int depth = 0) {
  if (depth > 256) throw Error("copy-up: directory tree too deep");
  auto d = dir_stream(from);
  while (auto* e = ::readdir(d.get())) {
    const char* name = e->d_name;
    if (std::string_view(name) == "." || std::string_view(name) == "..") continue;
    struct stat st {};
    if (::fstatat(from, name, &st, AT_SYMLINK_NOFOLLOW) != 0) throw_errno(std::string("cannot stat ") + name);
    if (S_ISDIR(st.st_mode)) {
      if (::mkdirat(to, name, 0700) != 0) throw_errno(std::string("cannot create ") + name);
      UniqueFd sub_from(::openat(from, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      UniqueFd sub_to(::openat(to, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub_from || !sub_to) throw_errno(std::string("cannot open ") + name);
      copy_tree(sub_from.get(), sub_to.get(), depth + 1);
    } else if (S_ISREG(st.st_mode)) {
      copy_file(from, to, name, st);
    } else if (S_ISLNK(st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlinkat(from, name, target, sizeof target - 1);
      if (n < 0) throw_errno(std::string("cannot read link ") + name);
      target[n] = 0;
      if (::symlinkat(target, to, name) != 0) throw_errno(std::string("cannot create link ") + name);
    } else if (::mknodat(to, name, st.st_mode, st.st_rdev) != 0) {
      throw_errno(std::string("cannot create ") + name);
    }
    copy_attributes(to, name, st, S_ISLNK(st.st_mode));
  }
}

// docker's volume copy-up: when the volume is empty, the image's content
// at dest (as the merged rootfs shows it, resolved inside the rootfs) is
// copied into it, with the directory's own owner and mode.
void copy_up(int rootfd, const std::string& dest, const std::string& volume_dir) {
  UniqueFd vol(::open(volume_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!vol) throw_errno("cannot open volume " + volume_dir);
  {
    auto d = dir_stream(vol.get());
    while (auto* e = ::readdir(d.get()))
      if (std::string_view(e->d_name) != "." && std::string_view(e->d_name) != "..") return;  // not empty
  }
  UniqueFd src(openat2_in_root(rootfd, dest, O_RDONLY | O_DIRECTORY));
  if (!src) return;  // nothing at dest in the image (or not a directory): nothing to copy
  struct stat st {};
  if (::fstat(src.get(), &st) != 0) throw_errno("cannot stat " + dest);
  copy_tree(src.get(), vol.get());
  if (::fchown(vol.get(), st.st_uid, st.st_gid) != 0 || ::fchmod(vol.get(), st.st_mode & 07777) != 0)
    throw_errno("cannot set the owner of volume " + volume_dir);
}

void make_dev_nodes(int rootfd) {
  UniqueFd dev = open_target(rootfd, "/dev", true);
  // The O_PATH fd cannot be used with mknodat; reopen as a directory.
  UniqueFd devdir(::openat(dev.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!devdir) throw_errno("cannot open /dev in the rootfs");
  struct Node {
    const char* name;
    unsigned major, minor;
  };
  for (Node n : {Node{"null", 1, 3}, Node{"zero", 1, 5}, Node{"full", 1, 7}, Node{"random", 1, 8},
                 Node{"urandom", 1, 9}, Node{"tty", 5, 0}}) {
    if (::mknodat(devdir.get(), n.name, S_IFCHR | 0666, makedev(n.major, n.minor)) != 0)
      throw_errno(std::string("cannot create /dev/") + n.name);
    ::fchmodat(devdir.get(), n.name, 0666, 0);  // the umask must not narrow it
  }
  struct Link {
    const char* name;
    const char* target;
  };
  for (Link l : {Link{"ptmx", "pts/ptmx"}, Link{"fd", "/proc/self/fd"}, Link{"stdin", "/proc/self/fd/0"},
                 Link{"stdout", "/proc/self/fd/1"}, Link{"stderr", "/proc/self/fd/2"},
                 Link{"core", "/proc/kcore"}})
    if (::symlinkat(l.target, devdir.get(), l.name) != 0) throw_errno(std::string("cannot create /dev/") + l.name);
}

std::string overlay_options(const InitConfig& cfg) {
  std::string lower;
  for (auto& d : cfg.spec.lower_dirs) lower += (lower.empty() ? "" : ":") + d;
  return "lowerdir=" + lower + ",upperdir=" + cfg.container_dir + "/upper,workdir=" + cfg.container_dir + "/work";
}

// Mounts the container's overlay rootfs on merged. A --rm container's upper
// dir is thrown away with it, so its overlay is `volatile`: the unmount at
// its exit then skips the sync of the whole upper filesystem (every dirty
// page on the host's disk, not only the container's), which otherwise sits
// between the container's exit and its exit code. A kernel without
// volatile (< 5.10) mounts it as any other.
void mount_overlay(const InitConfig& cfg, const std::string& merged, unsigned long flags) {
  std::string options = overlay_options(cfg);
  // A volatile mount leaves work/incompat/volatile behind, and overlayfs
  // refuses any later mount of the same dirs while it is there.
  std::string marker = cfg.container_dir + "/work/incompat";
  if (::rmdir((marker + "/volatile").c_str()) == 0) ::rmdir(marker.c_str());
  if (cfg.spec.auto_remove && ::mount("overlay", merged.c_str(), "overlay", flags, (options + ",volatile").c_str()) == 0)
    return;
  do_mount("overlay", merged, "overlay", flags, options, "the overlay rootfs");
}

void mask_paths() {
  for (const char* p : kMaskedPaths) {
    struct stat st {};
    if (::lstat(p, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (::mount("tmpfs", p, "tmpfs", MS_RDONLY, nullptr) != 0) throw_errno(std::string("cannot mask ") + p);
    } else if (::mount("/dev/null", p, nullptr, MS_BIND, nullptr) != 0) {
      throw_errno(std::string("cannot mask ") + p);
    }
  }
  for (const char* p : kReadOnlyPaths) {
    if (::mount(p, p, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      if (errno == ENOENT) continue;
      throw_errno(std::string("cannot bind ") + p);
    }
    if (::mount(p, p, nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
      throw_errno(std::string("cannot make ") + p + " read-only");
  }
}

// /sys/fs/cgroup as docker shows it: each hierarchy, rooted at the
// container's cgroup (we are in its cgroup namespace already), read-only
// unless privileged.
void mount_cgroups(int rootfd, const InitConfig& cfg) {
  if (cfg.cgroup_mounts.empty()) return;
  unsigned long ro = cfg.spec.security.privileged ? 0 : MS_RDONLY;
  const unsigned long kFlags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  bool v2_only = cfg.cgroup_mounts.size() == 1 && cfg.cgroup_mounts[0].dir.empty();
  if (v2_only) {
    mount_in_root(rootfd, "/sys/fs/cgroup", true, "cgroup", "cgroup2", kFlags | ro, "");
    return;
  }
  mount_in_root(rootfd, "/sys/fs/cgroup", true, "tmpfs", "tmpfs", kFlags, "mode=755");
  for (auto& m : cfg.cgroup_mounts) {
    if (m.dir.empty()) continue;
    mount_in_root(rootfd, "/sys/fs/cgroup/" + m.dir, true, "cgroup", m.fstype.c_str(), kFlags | ro, m.data);
  }
  if (ro) {
    UniqueFd t = open_target(rootfd, "/sys/fs/cgroup", true);
    do_mount("", fd_path(t), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY | kFlags, "", "/sys/fs/cgroup read-only");
  }
}

// The indexes of spec.mounts, parents before children (docker sorts them by
// the number of path components; equal depths keep their order).
std::vector<size_t> mount_order(const ContainerSpec& spec) {
  auto depth = [](const std::string& p) { return components(p).size(); };
  std::vector<size_t> order(spec.mounts.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return depth(spec.mounts[a].destination) < depth(spec.mounts[b].destination);
  });
  return order;
}

// The resolved volume of spec.mounts[index], if it is one.
const VolumeMount* volume_mount_of(const InitConfig& cfg, size_t index) {
  for (auto& v : cfg.volume_mounts)
    if (v.index == index) return &v;
  return nullptr;
}

}  // namespace

void mount_copy_view(const InitConfig& cfg) {
  const ContainerSpec& spec = cfg.spec;
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) throw_errno("cannot make / rslave");
  std::string merged = cfg.container_dir + "/merged";
  mount_overlay(cfg, merged, spec.read_only_rootfs ? MS_RDONLY : 0);
  UniqueFd root(::open(merged.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno("cannot open " + merged);
  // Volumes and binds, parents first, as the container would see them; a
  // tmpfs has nothing in it while the container is stopped.
  for (size_t i : mount_order(spec)) {
    const MountSpec& m = spec.mounts[i];
    const VolumeMount* vm = volume_mount_of(cfg, i);
    if (vm && !vm->fstype.empty()) {
      mount_in_root(root.get(), m.destination, true, vm->device, vm->fstype.c_str(), m.read_only ? MS_RDONLY : 0, vm->data);
    } else if (m.type == MountSpec::Type::Bind) {
      if (!path_exists(m.source)) continue;
      mount_in_root(root.get(), m.destination, is_directory(m.source), m.source, nullptr,
                    MS_BIND | MS_REC | (m.read_only ? MS_RDONLY : 0), "");
    }
  }
}

void setup_rootfs(const InitConfig& cfg, const std::function<void()>& enter_cgroup) {
  const ContainerSpec& spec = cfg.spec;
  // The cgroup mounts show the container's cgroup namespace, so they wait
  // for enter_cgroup. Normally they are made after pivot_root, so that
  // everything before (the old root's detach waits for an RCU grace
  // period) overlaps with the monitor moving us into our cgroup (which
  // waits for one too). A user mount at or under /sys keeps docker's
  // order: the cgroups first, the user's mounts over them.
  bool cgroups_late = std::none_of(spec.mounts.begin(), spec.mounts.end(), [](const MountSpec& m) {
    auto c = components(m.destination);
    return !c.empty() && c[0] == "sys";
  });
  // Host mount events still reach us, ours never reach the host.
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) throw_errno("cannot make / rslave");

  std::string merged = cfg.container_dir + "/merged";
  mount_overlay(cfg, merged, 0);
  UniqueFd root(::open(merged.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) throw_errno("cannot open " + merged);
  int r = root.get();

  // docker's copy-up reads the image's content: done before anything is
  // mounted over the rootfs, so a volume gets exactly what the image has.
  for (auto& vm : cfg.volume_mounts) {
    if (!vm.copy_up) continue;
    const MountSpec& m = spec.mounts[vm.index];
    try {
      copy_up(r, m.destination, m.source);
    } catch (const Error& e) {
      throw Error("cannot copy " + m.destination + " into volume " + vm.name + ": " + e.what(), 0, 125);
    }
  }

  const unsigned long kNoSuidDevExec = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  mount_in_root(r, "/proc", true, "proc", "proc", kNoSuidDevExec, "");
  mount_in_root(r, "/dev", true, "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k");
  make_dev_nodes(r);
  mount_in_root(r, "/dev/pts", true, "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620,gid=5");
  int64_t shm = spec.shm_size > 0 ? spec.shm_size : 64 << 20;
  mount_in_root(r, "/dev/shm", true, "shm", "tmpfs", kNoSuidDevExec, "mode=1777,size=" + std::to_string(shm));
  mount_in_root(r, "/dev/mqueue", true, "mqueue", "mqueue", kNoSuidDevExec, "");
  mount_in_root(r, "/sys", true, "sysfs", "sysfs", kNoSuidDevExec | (spec.security.privileged ? 0 : MS_RDONLY), "");

  if (!cgroups_late) {
    enter_cgroup();
    mount_cgroups(r, cfg);
  }

  // The user's mounts, parents before children (docker sorts them by the
  // number of path components), then the generated /etc files on top: a
  // volume on /etc still shows the container's hosts. A user mount of one
  // of those files replaces the generated one, as in docker.
  for (size_t i : mount_order(spec)) {
    const MountSpec& m = spec.mounts[i];
    const VolumeMount* vm = volume_mount_of(cfg, i);
    if (vm && !vm->fstype.empty()) {
      mount_in_root(r, m.destination, true, vm->device, vm->fstype.c_str(), m.read_only ? MS_RDONLY : 0, vm->data);
    } else if (m.type == MountSpec::Type::Bind) {
      bool dir = is_directory(m.source);
      mount_in_root(r, m.destination, dir, m.source, nullptr,
                    MS_BIND | MS_REC | (m.read_only ? MS_RDONLY : 0), "");
    } else {
      unsigned long flags;
      std::string data;
      split_tmpfs_options(m.options, flags, data);
      if (m.read_only) flags |= MS_RDONLY;
      mount_in_root(r, m.destination, true, "tmpfs", "tmpfs", flags, data);
    }
  }

  if (!cfg.init_binary.empty())
    mount_in_root(r, kInitPath, false, cfg.init_binary, nullptr, MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, "");

  for (const char* f : {"hosts", "hostname", "resolv.conf"}) {
    std::string dest = std::string("/etc/") + f;
    bool user_mounted = std::any_of(spec.mounts.begin(), spec.mounts.end(), [&](const MountSpec& m) {
      return components(m.destination) == components(dest);
    });
    if (!user_mounted) mount_in_root(r, dest, false, cfg.container_dir + "/" + f, nullptr, MS_BIND, "");
  }

  // pivot_root(".", ".") stacks the old root under the new one; detaching
  // it leaves only the container's tree.
  if (::fchdir(r) != 0) throw_errno("cannot enter the rootfs");
  if (::syscall(SYS_pivot_root, ".", ".") != 0) throw_errno("pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) throw_errno("cannot detach the old root");
  if (::chdir("/") != 0) throw_errno("chdir /");
  if (cgroups_late) {
    enter_cgroup();
    UniqueFd new_root(::open("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!new_root) throw_errno("cannot open the new root");
    mount_cgroups(new_root.get(), cfg);
  }

  if (!spec.security.privileged) mask_paths();
  if (spec.read_only_rootfs &&
      ::mount(nullptr, "/", nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY, nullptr) != 0)
    throw_errno("cannot make the rootfs read-only");
}

}  // namespace berth::runtime
