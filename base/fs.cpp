#include "base/fs.h"
#include "base/write_all.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "base/error.h"

namespace berth {

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
}

static bool read_fd(int fd, std::string& out) {
  out.clear();
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) out.reserve(static_cast<size_t>(st.st_size));
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) return true;
    out.append(buf, static_cast<size_t>(n));
  }
}

std::string read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("cannot open " + path);
  std::string out;
  if (!read_fd(fd.get(), out)) throw_errno("cannot read " + path);
  return out;
}

bool read_file_if_exists(const std::string& path, std::string& out) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return false;
    throw_errno("cannot open " + path);
  }
  if (!read_fd(fd.get(), out)) throw_errno("cannot read " + path);
  return true;
}

void write_file_atomic(const std::string& path, std::string_view data, unsigned mode) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) throw_errno("cannot create " + tmp);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::unlink(tmp.c_str());
      throw_errno("cannot write " + tmp, e);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0 || ::close(fd.release()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw_errno("cannot flush " + tmp, e);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(tmp.c_str());
    throw_errno("cannot rename " + tmp + " to " + path, e);
  }
  UniqueFd dir(::open(path_dirname(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir) ::fsync(dir.get());
}

bool write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

bool pwrite_all(int fd, const char* p, size_t n, uint64_t offset) {
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w == 0) errno = ENOSPC;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return true;
}

bool path_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::vector<std::string> list_directory(const std::string& path) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d))
      if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) out.push_back(e->d_name);
    ::closedir(d);
  }
  return out;
}

void make_dirs(const std::string& path, unsigned mode) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  if (p.empty()) return;
  // Usually only the last component (or nothing) is missing: one mkdir,
  // and a walk up only when a parent is missing too.
  if (::mkdir(p.c_str(), mode) != 0) {
    if (errno == ENOENT) {
      auto slash = p.rfind('/');
      if (slash != std::string::npos && slash > 0) make_dirs(p.substr(0, slash), mode);
      if (::mkdir(p.c_str(), mode) != 0 && errno != EEXIST) throw_errno("cannot create directory " + p);
    } else if (errno != EEXIST) {
      throw_errno("cannot create directory " + p);
    }
  }
  // Another process may remove what it made meanwhile (the shared cgroup
  // parent goes with its last container): that is ENOENT, which callers
  // retry, not "not a directory".
  struct stat st;
  if (::stat(p.c_str(), &st) != 0) throw_errno("cannot create directory " + p);
  if (!S_ISDIR(st.st_mode)) throw Error("not a directory: " + path, ENOTDIR);
}

std::string path_join(const std::string& a, const std::string& b) {
  if (b.empty()) return a;
  if (b.front() == '/' || a.empty()) return b;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

std::string path_dirname(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string path_basename(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  auto pos = p.find_last_of('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}

std::string path_absolute(const std::string& path, const std::string& base) {
  std::string full;
  if (!path.empty() && path.front() == '/') {
    full = path;
  } else {
    std::string b = base;
    if (b.empty() || b.front() != '/') {
      char cwd[4096];
      if (!::getcwd(cwd, sizeof cwd)) throw_errno("getcwd");
      b = path_join(cwd, b);
    }
    full = path_join(b, path);
  }
  std::vector<std::string> parts;
  size_t i = 0;
  while (i < full.size()) {
    size_t j = full.find('/', i);
    if (j == std::string::npos) j = full.size();
    std::string seg = full.substr(i, j - i);
    if (seg == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!seg.empty() && seg != ".") {
      parts.push_back(seg);
    }
    i = j + 1;
  }
  std::string out;
  for (auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

}  // namespace berth
