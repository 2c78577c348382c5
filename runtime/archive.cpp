// `berth cp` (runtime/archive.h): a walker reads a tree as a stream of
// entries, which go to a tar stream (libarchive) or to an extractor that
// writes them under a directory; a tar reader feeds the same extractor.
// Every path on the container's side is opened with openat2 and
// RESOLVE_IN_ROOT against the container's root, and everything below the
// first component is reached through directory fds with O_NOFOLLOW, so a
// container's symlinks cannot lead the copy out of its root.
#include "runtime/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "base/error.h"
#include "base/fs.h"

namespace berth::runtime {

namespace {

// Where paths resolve: the host (relative paths from the cwd) or a
// container's root directory.
struct Root {
  int fd = AT_FDCWD;
  uint64_t resolve = 0;
  bool container = false;
};

Root host_root() { return Root{}; }
Root container_root(int fd) { return Root{fd, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, true}; }

int open_in(const Root& r, const std::string& path, int flags) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = r.resolve;
  const std::string& p = path.empty() ? std::string(".") : path;
  return static_cast<int>(::syscall(SYS_openat2, r.fd, p.c_str(), &how, sizeof how));
}

// Go's filepath.Clean, lexically.
std::string clean(const std::string& path) {
  bool abs = !path.empty() && path[0] == '/';
  std::vector<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string c = path.substr(i, j - i);
    i = j + 1;
    if (c.empty() || c == ".") continue;
    if (c == "..") {
      if (!out.empty() && out.back() != "..") out.pop_back();
      else if (!abs) out.push_back("..");
      continue;
    }
    out.push_back(c);
  }
  std::string s = abs ? "/" : "";
  for (size_t k = 0; k < out.size(); ++k) s += (k ? "/" : "") + out[k];
  return s.empty() ? "." : s;
}

bool trailing_slash(const std::string& p) { return !p.empty() && p.back() == '/'; }
// "x/." or ".": the contents of a directory (docker's specifiesCurrentDir).
bool names_contents(const std::string& p) { return p == "." || (p.size() >= 2 && p.compare(p.size() - 2, 2, "/.") == 0); }

std::string dir_of(const std::string& cleaned) {
  auto slash = cleaned.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : cleaned.substr(0, slash);
}
std::string base_of(const std::string& cleaned) {
  auto slash = cleaned.rfind('/');
  return slash == std::string::npos ? cleaned : cleaned.substr(slash + 1);
}
std::string join(const std::string& a, const std::string& b) {
  if (b == ".") return a;
  if (a == ".") return b;
  return a.back() == '/' ? a + b : a + "/" + b;
}

// One file of a copy, as a tar header describes it.
struct Entry {
  std::string name;      // relative, "/"-separated
  struct stat st {};     // type and mode, uid, gid, size, mtime, rdev
  std::string symlink;   // a symlink's target
  std::string hardlink;  // an earlier entry's name this one is a hard link of
  std::function<ssize_t(char*, size_t)> read;  // a regular file's content
};

class Sink {
 public:
  virtual ~Sink() = default;
  virtual void put(const Entry& e) = 0;
  virtual void finish() {}
};

// ---------------------------------------------------------------------------
// Reading a tree.

struct Source {
  UniqueFd fd;  // O_PATH, of the object itself (a symlink when not followed)
  struct stat st {};
  std::string base;  // its name in the copy: the basename, or "." for contents
};

// SRC, opened the way docker's cp reads it. `missing` makes the error for
// a path that does not exist.
Source open_source(const Root& r, const std::string& path, bool follow, const std::function<Error()>& missing) {
  std::string cleaned = clean(path);
  bool contents = names_contents(path) || cleaned == "/";
  bool follow_last = follow || trailing_slash(path) || contents;
  Source s;
  s.fd.reset(open_in(r, cleaned, O_PATH | (follow_last ? 0 : O_NOFOLLOW)));
  if (!s.fd) {
    if (errno == ENOENT) throw missing();
    throw_errno(path);
  }
  if (::fstat(s.fd.get(), &s.st) != 0) throw_errno("stat " + path);
  if ((trailing_slash(path) || contents) && !S_ISDIR(s.st.st_mode)) throw Error(path + ": not a directory", 0, 1);
  s.base = contents ? "." : base_of(cleaned);
  return s;
}

std::function<ssize_t(char*, size_t)> reader_of(int fd) {
  return [fd](char* buf, size_t n) {
    for (;;) {
      ssize_t got = ::read(fd, buf, n);
      if (got < 0 && errno == EINTR) continue;
      return got;
    }
  };
}

class Walker {
 public:
  explicit Walker(Sink& sink) : sink_(sink) {}

  void walk(const Source& src, const std::string& name) {
    if (S_ISDIR(src.st.st_mode)) {
      UniqueFd dir(::openat(src.fd.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!dir) throw_errno("cannot open " + name);
      directory(dir.get(), src.st, name, 0);
    } else if (S_ISLNK(src.st.st_mode)) {
      char target[4096];
      ssize_t n = ::readlinkat(src.fd.get(), "", target, sizeof target - 1);
      if (n < 0) throw_errno("cannot read the link " + name);
      leaf(src.st, name, std::string(target, static_cast<size_t>(n)), -1);
    } else if (S_ISREG(src.st.st_mode)) {
      // Reopen the O_PATH fd for reading: the very inode opened above.
      std::string self = "/proc/self/fd/" + std::to_string(src.fd.get());
      UniqueFd f(::open(self.c_str(), O_RDONLY | O_CLOEXEC));
      if (!f) throw_errno("cannot open " + name);
      leaf(src.st, name, "", f.get());
    } else {
      leaf(src.st, name, "", -1);
    }
  }

 private:
  void directory(int dir, const struct stat& st, const std::string& name, int depth) {
    if (depth > 512) throw Error("cannot copy " + name + ": the tree is too deep", 0, 1);
    Entry e;
    e.name = name;
    e.st = st;
    sink_.put(e);
    std::vector<std::string> names;
    {
      int dup_fd = ::fcntl(dir, F_DUPFD_CLOEXEC, 0);
      DIR* d = dup_fd < 0 ? nullptr : ::fdopendir(dup_fd);
      if (!d) {
        if (dup_fd >= 0) ::close(dup_fd);
        throw_errno("cannot read the directory " + name);
      }
      while (auto* de = ::readdir(d))
        if (std::string_view(de->d_name) != "." && std::string_view(de->d_name) != "..") names.push_back(de->d_name);
      ::closedir(d);
    }
    std::sort(names.begin(), names.end());
    for (auto& child : names) {
      std::string child_name = join(name, child);
      struct stat cst {};
      if (::fstatat(dir, child.c_str(), &cst, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;  // gone meanwhile
        throw_errno("cannot stat " + child_name);
      }
      if (S_ISDIR(cst.st_mode)) {
        UniqueFd sub(::openat(dir, child.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!sub) throw_errno("cannot open " + child_name);
        directory(sub.get(), cst, child_name, depth + 1);
      } else if (S_ISLNK(cst.st_mode)) {
        char target[4096];
        ssize_t n = ::readlinkat(dir, child.c_str(), target, sizeof target - 1);
        if (n < 0) throw_errno("cannot read the link " + child_name);
        leaf(cst, child_name, std::string(target, static_cast<size_t>(n)), -1);
      } else if (S_ISREG(cst.st_mode)) {
        UniqueFd f(::openat(dir, child.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!f) throw_errno("cannot open " + child_name);
        leaf(cst, child_name, "", f.get());
      } else if (!S_ISSOCK(cst.st_mode)) {
        leaf(cst, child_name, "", -1);
      }
    }
  }

  void leaf(const struct stat& st, const std::string& name, const std::string& symlink, int data_fd) {
    Entry e;
    e.name = name;
    e.st = st;
    e.symlink = symlink;
    if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto it = links_.find(key);
      if (it != links_.end()) {
        e.hardlink = it->second;
        e.st.st_size = 0;
        sink_.put(e);
        return;
      }
      links_[key] = name;
    }
    if (S_ISREG(st.st_mode)) e.read = reader_of(data_fd);
    sink_.put(e);
  }

  Sink& sink_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

// ---------------------------------------------------------------------------
// Tar streams.

class TarWriter : public Sink {
 public:
  explicit TarWriter(int fd) : a_(archive_write_new()) {
    if (!a_) throw Error("cannot allocate an archive", 0, 1);
    archive_write_set_format_pax_restricted(a_);
    // Names are bytes: no charset conversion that could fail on them.
    archive_write_set_options(a_, "hdrcharset=BINARY");
    archive_write_set_bytes_in_last_block(a_, 1);
    if (archive_write_open_fd(a_, fd) != ARCHIVE_OK) fail("cannot write the archive");
  }
  ~TarWriter() override { archive_write_free(a_); }

  void put(const Entry& e) override {
    std::unique_ptr<archive_entry, void (*)(archive_entry*)> ae(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(ae.get(), e.name.c_str());
    archive_entry_set_mode(ae.get(), e.st.st_mode);
    archive_entry_set_uid(ae.get(), e.st.st_uid);
    archive_entry_set_gid(ae.get(), e.st.st_gid);
    archive_entry_set_mtime(ae.get(), e.st.st_mtim.tv_sec, e.st.st_mtim.tv_nsec);
    if (!e.hardlink.empty()) {
      archive_entry_set_hardlink(ae.get(), e.hardlink.c_str());
      archive_entry_set_size(ae.get(), 0);
    } else if (S_ISLNK(e.st.st_mode)) {
      archive_entry_set_symlink(ae.get(), e.symlink.c_str());
    } else if (S_ISREG(e.st.st_mode)) {
      archive_entry_set_size(ae.get(), e.st.st_size);
    } else if (S_ISCHR(e.st.st_mode) || S_ISBLK(e.st.st_mode)) {
      archive_entry_set_rdevmajor(ae.get(), major(e.st.st_rdev));
      archive_entry_set_rdevminor(ae.get(), minor(e.st.st_rdev));
    }
    if (archive_write_header(a_, ae.get()) < ARCHIVE_WARN) fail("cannot write " + e.name);
    if (!e.read || !e.hardlink.empty()) return;
    // Exactly the size in the header: a file that grew is cut, one that
    // shrank is padded with zeros (as tar does).
    int64_t left = e.st.st_size;
    std::vector<char> buf(1 << 16);
    while (left > 0) {
      ssize_t n = e.read(buf.data(), static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(buf.size()))));
      if (n < 0) throw_errno("cannot read " + e.name);
      if (n == 0) {
        std::fill(buf.begin(), buf.end(), 0);
        n = static_cast<ssize_t>(std::min<int64_t>(left, static_cast<int64_t>(buf.size())));
      }
      if (archive_write_data(a_, buf.data(), static_cast<size_t>(n)) < 0) fail("cannot write " + e.name);
      left -= n;
    }
  }

  void finish() override {
    if (archive_write_close(a_) != ARCHIVE_OK) fail("cannot finish the archive");
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    const char* why = archive_error_string(a_);
    throw Error(what + (why ? std::string(": ") + why : ""), 0, 1);
  }
  archive* a_;
};

// Reads a tar stream (any compression libarchive knows) into a sink.
void read_tar(int fd, Sink& sink) {
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  archive_read_set_options(a.get(), "hdrcharset=BINARY");
  auto fail = [&](const std::string& what) {
    const char* why = archive_error_string(a.get());
    throw Error(what + (why ? std::string(": ") + why : ""), 0, 1);
  };
  if (archive_read_open_fd(a.get(), fd, 1 << 16) != ARCHIVE_OK) fail("cannot read the archive");
  for (;;) {
    archive_entry* ae = nullptr;
    int rc = archive_read_next_header(a.get(), &ae);
    if (rc == ARCHIVE_EOF) break;
    if (rc < ARCHIVE_WARN) fail("cannot read the archive");
    Entry e;
    const char* name = archive_entry_pathname(ae);
    e.name = name ? name : "";
    e.st.st_mode = archive_entry_mode(ae);
    e.st.st_uid = static_cast<uid_t>(archive_entry_uid(ae));
    e.st.st_gid = static_cast<gid_t>(archive_entry_gid(ae));
    e.st.st_size = archive_entry_size(ae);
    e.st.st_mtim.tv_sec = archive_entry_mtime(ae);
    e.st.st_mtim.tv_nsec = archive_entry_mtime_nsec(ae);
    e.st.st_atim = e.st.st_mtim;
    e.st.st_rdev = makedev(archive_entry_rdevmajor(ae), archive_entry_rdevminor(ae));
    if (const char* h = archive_entry_hardlink(ae)) e.hardlink = h;
    if (const char* l = archive_entry_symlink(ae)) e.symlink = l;
    archive* raw = a.get();
    if (S_ISREG(e.st.st_mode) && e.hardlink.empty())
      e.read = [raw](char* buf, size_t n) { return static_cast<ssize_t>(archive_read_data(raw, buf, n)); };
    sink.put(e);
  }
  sink.finish();
}

// ---------------------------------------------------------------------------
// Writing entries under a directory.

// A tar member's name relative to where it is extracted; one that climbs
// out of it (docker: "breakout") is refused.
std::string member_path(const std::string& name) {
  std::string rel = name;
  while (!rel.empty() && rel[0] == '/') rel.erase(0, 1);
  rel = clean(rel);
  if (rel == ".." || rel.rfind("../", 0) == 0) throw Error("invalid archive member " + name + ": it leaves the destination", 0, 1);
  return rel;
}

class Extractor : public Sink {
 public:
  // owner: the uid/gid every file gets; nullopt keeps each entry's own.
  Extractor(const Root& root, std::string dest, std::optional<std::pair<uid_t, gid_t>> owner)
      : root_(root), dest_(std::move(dest)), owner_(owner) {}

  void put(const Entry& e) override {
    std::string rel = member_path(e.name);
    if (rel == ".") {
      if (!S_ISDIR(e.st.st_mode)) throw Error("invalid archive member " + e.name, 0, 1);
      return;  // the destination directory itself stays as it is
    }
    std::string path = join(dest_, rel);
    UniqueFd parent = make_parents(dir_of(rel));
    std::string leaf = base_of(rel);
    uid_t uid = owner_ ? owner_->first : e.st.st_uid;
    gid_t gid = owner_ ? owner_->second : e.st.st_gid;
    mode_t perm = e.st.st_mode & 07777;
    struct timespec times[2] = {e.st.st_mtim, e.st.st_mtim};

    struct stat old {};
    bool exists = ::fstatat(parent.get(), leaf.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0;
    bool is_dir = S_ISDIR(e.st.st_mode) && e.hardlink.empty();
    if (exists && S_ISDIR(old.st_mode) != is_dir)
      throw Error(is_dir ? "cannot overwrite non-directory " + shown(path) + " with a directory"
                         : "cannot overwrite directory " + shown(path) + " with a non-directory",
                  0, 1);
    if (exists && !is_dir && ::unlinkat(parent.get(), leaf.c_str(), 0) != 0) throw_errno("cannot replace " + shown(path));

    if (!e.hardlink.empty()) {
      std::string target = join(dest_, member_path(e.hardlink));
      UniqueFd t(open_in(root_, target, O_PATH | O_NOFOLLOW));
      if (!t) throw_errno("cannot link " + shown(path) + " to " + shown(target));
      if (::linkat(t.get(), "", parent.get(), leaf.c_str(), AT_EMPTY_PATH) != 0)
        throw_errno("cannot link " + shown(path) + " to " + shown(target));
      return;
    }
    if (is_dir) {
      if (!exists && ::mkdirat(parent.get(), leaf.c_str(), 0700) != 0) throw_errno("cannot create " + shown(path));
      UniqueFd d(::openat(parent.get(), leaf.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!d) throw_errno("cannot open " + shown(path));
      if (::fchown(d.get(), uid, gid) != 0) throw_errno("cannot chown " + shown(path));
      if (::fchmod(d.get(), perm) != 0) throw_errno("cannot chmod " + shown(path));
      dir_times_.push_back({rel, e.st.st_mtim});  // once its contents are in
    } else if (S_ISREG(e.st.st_mode)) {
      UniqueFd f(::openat(parent.get(), leaf.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!f) throw_errno("cannot create " + shown(path));
      std::vector<char> buf(1 << 16);
      for (;;) {
        ssize_t n = e.read ? e.read(buf.data(), buf.size()) : 0;
        if (n < 0) throw Error("cannot read the data of " + e.name, 0, 1);
        if (n == 0) break;
        for (ssize_t off = 0; off < n;) {
          ssize_t w = ::write(f.get(), buf.data() + off, static_cast<size_t>(n - off));
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) throw_errno("cannot write " + shown(path));
          off += w;
        }
      }
      if (::fchown(f.get(), uid, gid) != 0) throw_errno("cannot chown " + shown(path));
      if (::fchmod(f.get(), perm) != 0) throw_errno("cannot chmod " + shown(path));
      ::futimens(f.get(), times);
    } else if (S_ISLNK(e.st.st_mode)) {
      if (::symlinkat(e.symlink.c_str(), parent.get(), leaf.c_str()) != 0) throw_errno("cannot create " + shown(path));
      if (::fchownat(parent.get(), leaf.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0)
        throw_errno("cannot chown " + shown(path));
      ::utimensat(parent.get(), leaf.c_str(), times, AT_SYMLINK_NOFOLLOW);
    } else if (S_ISCHR(e.st.st_mode) || S_ISBLK(e.st.st_mode) || S_ISFIFO(e.st.st_mode)) {
      if (::mknodat(parent.get(), leaf.c_str(), (e.st.st_mode & S_IFMT) | 0600, e.st.st_rdev) != 0)
        throw_errno("cannot create " + shown(path));
      UniqueFd n(::openat(parent.get(), leaf.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
      if (!n) throw_errno("cannot open " + shown(path));
      if (::fchownat(n.get(), "", uid, gid, AT_EMPTY_PATH) != 0) throw_errno("cannot chown " + shown(path));
      // chmod through the fd's magic link: the node just made, nothing else.
      std::string self = "/proc/self/fd/" + std::to_string(n.get());
      if (::chmod(self.c_str(), perm) != 0) throw_errno("cannot chmod " + shown(path));
    }
    // Sockets and other types are skipped, as tar does.
  }

  void finish() override {
    for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
      UniqueFd d(open_in(root_, join(dest_, it->first), O_RDONLY | O_DIRECTORY | O_NOFOLLOW));
      struct timespec times[2] = {it->second, it->second};
      if (d) ::futimens(d.get(), times);
    }
  }

 private:
  std::string shown(const std::string& path) const { return path; }

  // The directory rel (under dest) as an fd, making what is missing (tar
  // members may come without their parents).
  UniqueFd make_parents(const std::string& rel) {
    UniqueFd fd(open_in(root_, join(dest_, rel), O_PATH | O_DIRECTORY));
    if (fd || errno != ENOENT || rel == ".") {
      if (!fd) throw_errno("cannot open " + join(dest_, rel));
      return fd;
    }
    UniqueFd up = make_parents(dir_of(rel));
    std::string leaf = base_of(rel);
    if (::mkdirat(up.get(), leaf.c_str(), 0755) != 0 && errno != EEXIST) throw_errno("cannot create " + join(dest_, rel));
    fd.reset(::openat(up.get(), leaf.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) throw_errno("cannot open " + join(dest_, rel));
    return fd;
  }

  Root root_;
  std::string dest_;
  std::optional<std::pair<uid_t, gid_t>> owner_;
  std::vector<std::pair<std::string, struct timespec>> dir_times_;
};

// ---------------------------------------------------------------------------
// Where a copy lands (docker's PrepareArchiveCopy).

struct Target {
  std::string dir;   // existing directory the copy is extracted into
  std::string name;  // the top entry's name in it
};

// DEST, its symlinks followed (resolved in the same root).
std::string follow_dest(const Root& r, std::string dest) {
  for (int i = 0; i < 40; ++i) {
    UniqueFd fd(open_in(r, clean(dest), O_PATH | O_NOFOLLOW));
    struct stat st {};
    if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISLNK(st.st_mode)) return dest;
    char target[4096];
    ssize_t n = ::readlinkat(fd.get(), "", target, sizeof target - 1);
    if (n <= 0) return dest;
    std::string t(target, static_cast<size_t>(n));
    dest = t[0] == '/' ? t : join(dir_of(clean(dest)), t);
  }
  throw_errno(dest, ELOOP);
}

Target plan_target(const Root& r, const std::string& dest_arg, const Source& src,
                   const std::function<Error(const std::string&)>& missing) {
  bool src_dir = S_ISDIR(src.st.st_mode);
  std::string dest = follow_dest(r, dest_arg);
  UniqueFd fd(open_in(r, clean(dest), O_PATH));
  struct stat st {};
  if (fd && ::fstat(fd.get(), &st) != 0) throw_errno("stat " + dest_arg);
  if (!fd && errno != ENOENT) {
    if (errno == ENOTDIR) throw Error(dest_arg + ": not a directory", 0, 1);
    throw_errno(dest_arg);
  }
  if (fd && S_ISDIR(st.st_mode)) return {clean(dest), src.base};
  if (fd && src_dir) throw Error("cannot copy a directory to a file: " + dest_arg + " is a file", 0, 1);
  if (fd && trailing_slash(dest_arg)) throw Error(dest_arg + ": not a directory", 0, 1);
  if (!fd && !src_dir && (trailing_slash(dest_arg) || names_contents(dest_arg)))
    throw Error("destination directory " + dest_arg + " does not exist", 0, 1);
  std::string cleaned = clean(dest);
  std::string parent = dir_of(cleaned);
  UniqueFd pfd(open_in(r, parent, O_PATH | O_DIRECTORY));
  if (!pfd) {
    if (errno == ENOENT) throw missing(parent);
    throw_errno(parent);
  }
  return {parent, base_of(cleaned)};
}

std::string in_container(const std::string& path) { return path.empty() || path[0] != '/' ? "/" + path : path; }

}  // namespace

void copy_from_container(const Runtime& rt, const std::string& ref, const std::string& src, const std::string& dest,
                         const CopyOptions& options, int out_fd) {
  std::string cpath = in_container(src);
  rt.with_root(ref, [&](int root_fd) {
    Root croot = container_root(root_fd);
    Source s = open_source(croot, cpath, options.follow_link,
                           [&] { return Error("Could not find the file " + cpath + " in container " + ref, 0, 1); });
    if (dest == "-") {
      TarWriter tar(out_fd);
      Walker(tar).walk(s, s.base);
      tar.finish();
      return;
    }
    Root host = host_root();
    Target t = plan_target(host, dest, s, [&](const std::string& dir) {
      return Error("destination directory " + dir + " does not exist", 0, 1);
    });
    std::optional<std::pair<uid_t, gid_t>> owner;
    if (!options.archive) owner = std::make_pair(::geteuid(), ::getegid());
    Extractor x(host, t.dir, owner);
    Walker(x).walk(s, t.name);
    x.finish();
  });
}

void copy_to_container(const Runtime& rt, const std::string& ref, const std::string& src, const std::string& dest,
                       const CopyOptions& options, int in_fd) {
  std::string cpath = in_container(dest);
  std::optional<std::pair<uid_t, gid_t>> owner;
  if (!options.archive) owner = std::make_pair(uid_t{0}, gid_t{0});
  // The host side is read before anything happens in the container.
  std::optional<Source> s;
  if (src != "-")
    s = open_source(host_root(), src, options.follow_link,
                    [&] { return Error("lstat " + src + ": no such file or directory", 0, 1); });
  rt.with_root(ref, [&](int root_fd) {
    Root croot = container_root(root_fd);
    if (!s) {
      // A tar stream goes into a directory that exists.
      UniqueFd d(open_in(croot, clean(cpath), O_PATH));
      if (!d) {
        if (errno == ENOENT) throw Error("Could not find the file " + cpath + " in container " + ref, 0, 1);
        throw_errno(cpath);
      }
      struct stat st {};
      if (::fstat(d.get(), &st) != 0) throw_errno("stat " + cpath);
      if (!S_ISDIR(st.st_mode)) throw Error("extraction point is not a directory: " + cpath, 0, 1);
      Extractor x(croot, clean(cpath), owner);
      read_tar(in_fd, x);
      return;
    }
    Target t = plan_target(croot, cpath, *s, [&](const std::string& dir) {
      return Error("Could not find the file " + dir + " in container " + ref, 0, 1);
    });
    Extractor x(croot, t.dir, owner);
    Walker(x).walk(*s, t.name);
    x.finish();
  });
}

}  // namespace berth::runtime
