#include "net/netns.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <exception>
#include <filesystem>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "net/netlink.h"

namespace berth::net {

bool netns_file_mounted(const std::string& path) {
  struct statfs st {};
  return ::statfs(path.c_str(), &st) == 0 && st.f_type == NSFS_MAGIC;
}

void create_netns_file(const std::string& path) {
  auto dir = std::filesystem::path(path).parent_path().string();
  if (!dir.empty()) make_dirs(dir, 0700);
  UniqueFd file(::open(path.c_str(), O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444));
  if (!file) throw_errno("cannot create network namespace file " + path);
  file.reset();
  std::exception_ptr failure;
  // unshare() moves only the calling thread into the new namespace; the
  // thread bind-mounts its namespace onto the file and ends, and the
  // mount keeps the namespace alive.
  std::thread helper([&] {
    try {
      if (::unshare(CLONE_NEWNET) != 0) throw_errno("cannot create a network namespace");
      std::string self = "/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/ns/net";
      if (::mount(self.c_str(), path.c_str(), nullptr, MS_BIND, nullptr) != 0)
        throw_errno("cannot bind-mount a network namespace onto " + path);
    } catch (...) {
      failure = std::current_exception();
    }
  });
  helper.join();
  try {
    if (failure) std::rethrow_exception(failure);
    UniqueFd ns = open_netns(path);
    RouteSocket::in_netns(ns.get()).set_up("lo");
  } catch (...) {
    delete_netns_file(path);
    throw;
  }
}

void delete_netns_file(const std::string& path) {
  // A bind mount may be stacked more than once by a racing creator: unmount
  // until the file is plain.
  for (int i = 0; i < 8 && netns_file_mounted(path); ++i)
    if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT)
      throw_errno("cannot unmount network namespace " + path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("cannot remove " + path);
}

NetnsFile::NetnsFile(std::string path) : path_(std::move(path)) { create_netns_file(path_); }

NetnsFile::~NetnsFile() {
  if (!owned_) return;
  try {
    delete_netns_file(path_);
  } catch (const std::exception& e) {
    spdlog::warn("cleanup of {}: {}", path_, e.what());
  }
}

}  // namespace berth::net
