// Persistent network namespaces, as `ip netns add` makes them (without
// running `ip`): a new namespace bind-mounted onto a file, so it lives on
// with no process in it until the file is unmounted. Containers join one by
// its path; every endpoint connected through it records that path.
#pragma once

#include <string>

namespace berth::net {

// Creates `path` (its directory too) and mounts a new, empty network
// namespace on it (loopback up). Throws berth::Error, leaving nothing,
// when the file exists or anything fails.
void create_netns_file(const std::string& path);

// Unmounts and unlinks `path`. Idempotent: a missing or unmounted file is
// not an error. The namespace itself dies with its last user.
void delete_netns_file(const std::string& path);

// True when `path` is a mounted network namespace.
bool netns_file_mounted(const std::string& path);

// RAII: creates the file; deletes it on destruction unless release()d.
class NetnsFile {
 public:
  explicit NetnsFile(std::string path);
  ~NetnsFile();
  NetnsFile(const NetnsFile&) = delete;
  NetnsFile& operator=(const NetnsFile&) = delete;
  const std::string& path() const { return path_; }
  // Keeps the file: its owner now deletes it.
  void release() { owned_ = false; }

 private:
  std::string path_;
  bool owned_ = true;
};

}  // namespace berth::net
