// Small filesystem helpers every area needs: an owning fd, whole-file reads,
// and atomic replace (write to a temp file, fsync, rename, fsync the dir).
#pragma once

#include <string>
#include <vector>
#include <string_view>
#include <utility>

namespace berth {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// Reads a whole file; throws berth::Error naming the path on failure.
std::string read_file(const std::string& path);
// Like read_file, but returns false instead of throwing when the file is missing.
bool read_file_if_exists(const std::string& path, std::string& out);
// Replaces path atomically with data (mode for a new file).
void write_file_atomic(const std::string& path, std::string_view data, unsigned mode = 0644);
bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
// The names in a directory (not "." and ".."), in readdir order; empty
// when it cannot be read.
std::vector<std::string> list_directory(const std::string& path);
// mkdir -p; throws on failure.
void make_dirs(const std::string& path, unsigned mode = 0755);
// Joins a and b with one '/', unless b is absolute (then b).
std::string path_join(const std::string& a, const std::string& b);
std::string path_dirname(const std::string& path);
std::string path_basename(const std::string& path);
// Absolute, lexically normalized path (no filesystem access besides getcwd).
std::string path_absolute(const std::string& path, const std::string& base = {});

}  // namespace berth
