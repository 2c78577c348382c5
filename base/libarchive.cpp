// libarchive, loaded on first use.
//
// Linking libarchive made every berth command (`version`, `ps`, a no-op
// `up`) map it and the ten libraries it needs (libxml2, ICU and its 30 MiB
// data, nettle, acl, lzma, zstd, lz4, bz2, z), and run their relocations and
// constructors, though only the commands that read or write a tar (image
// import/load/save/pull, `cp`, `commit`) use it. So berth does not link
// libarchive: this file defines the libarchive functions berth calls (with
// the declarations of <archive.h>, so the compiler checks every signature)
// and forwards each one to the real function, looked up once with
// dlopen("libarchive.so.13") + dlsym, as images/libcurl.cpp does for
// libcurl. It is in base/ because images/, runtime/ (cp) and cli/ (commit)
// all use libarchive and none of them may depend on another.
//
// A libarchive function newly called anywhere in berth needs a forwarder
// here: the link fails (undefined reference) until it has one.

#include <archive.h>
#include <archive_entry.h>
#include <dlfcn.h>

#include <string>

#include "base/error.h"

namespace {

constexpr const char* kLibarchive = "libarchive.so.13";  // Debian's libarchive13

// The library, loaded once (the handle stays open for the process' life);
// throws berth::Error saying what is missing when it cannot.
void* library() {
  static void* handle = [] {
    void* h = dlopen(kLibarchive, RTLD_NOW | RTLD_LOCAL);
    if (!h)
      throw berth::Error(std::string("cannot load ") + kLibarchive + " to read or write a tar archive (" +
                         dlerror() + "): install Debian's libarchive13");
    return h;
  }();
  return handle;
}

template <typename F>
F real(const char* name) {
  auto fn = reinterpret_cast<F>(dlsym(library(), name));
  if (!fn) throw berth::Error(std::string(kLibarchive) + ": no symbol " + name + " (" + dlerror() + ")");
  return fn;
}

}  // namespace

// Defines NAME (declared by <archive.h>, so the types must match) as a
// call of the real NAME, found on the first call.
#define FORWARD(ret, name, params, args)                   \
  ret name params {                                        \
    static const auto fn = real<decltype(&::name)>(#name); \
    return fn args;                                        \
  }

using A = struct archive;
using E = struct archive_entry;

extern "C" {

// Reading.
FORWARD(A*, archive_read_new, (void), ())
FORWARD(int, archive_read_free, (A* a), (a))
FORWARD(int, archive_read_support_filter_all, (A* a), (a))
FORWARD(int, archive_read_support_format_empty, (A* a), (a))
FORWARD(int, archive_read_support_format_gnutar, (A* a), (a))
FORWARD(int, archive_read_support_format_raw, (A* a), (a))
FORWARD(int, archive_read_support_format_tar, (A* a), (a))
FORWARD(int, archive_read_set_options, (A* a, const char* opts), (a, opts))
FORWARD(int, archive_read_open,
        (A* a, void* data, archive_open_callback* open, archive_read_callback* read, archive_close_callback* close),
        (a, data, open, read, close))
FORWARD(int, archive_read_open_fd, (A* a, int fd, size_t block_size), (a, fd, block_size))
FORWARD(int, archive_read_next_header, (A* a, E** entry), (a, entry))
FORWARD(la_ssize_t, archive_read_data, (A* a, void* buf, size_t size), (a, buf, size))
FORWARD(int, archive_read_data_block, (A* a, const void** buf, size_t* size, la_int64_t* offset),
        (a, buf, size, offset))

// Writing.
FORWARD(A*, archive_write_new, (void), ())
FORWARD(int, archive_write_free, (A* a), (a))
FORWARD(int, archive_write_set_format_pax_restricted, (A* a), (a))
FORWARD(int, archive_write_set_options, (A* a, const char* opts), (a, opts))
FORWARD(int, archive_write_set_bytes_in_last_block, (A* a, int bytes), (a, bytes))
FORWARD(int, archive_write_open_fd, (A* a, int fd), (a, fd))
FORWARD(int, archive_write_header, (A* a, E* entry), (a, entry))
FORWARD(la_ssize_t, archive_write_data, (A* a, const void* buf, size_t size), (a, buf, size))
FORWARD(int, archive_write_close, (A* a), (a))
FORWARD(const char*, archive_error_string, (A* a), (a))

// Entries.
FORWARD(E*, archive_entry_new, (void), ())
FORWARD(void, archive_entry_free, (E* e), (e))
FORWARD(void, archive_entry_copy_stat, (E* e, const struct stat* st), (e, st))
FORWARD(const char*, archive_entry_pathname, (E* e), (e))
FORWARD(const char*, archive_entry_hardlink, (E* e), (e))
FORWARD(const char*, archive_entry_symlink, (E* e), (e))
FORWARD(__LA_MODE_T, archive_entry_filetype, (E* e), (e))
FORWARD(__LA_MODE_T, archive_entry_mode, (E* e), (e))
FORWARD(__LA_MODE_T, archive_entry_perm, (E* e), (e))
FORWARD(la_int64_t, archive_entry_uid, (E* e), (e))
FORWARD(la_int64_t, archive_entry_gid, (E* e), (e))
FORWARD(la_int64_t, archive_entry_size, (E* e), (e))
FORWARD(dev_t, archive_entry_rdevmajor, (E* e), (e))
FORWARD(dev_t, archive_entry_rdevminor, (E* e), (e))
FORWARD(time_t, archive_entry_atime, (E* e), (e))
FORWARD(long, archive_entry_atime_nsec, (E* e), (e))
FORWARD(int, archive_entry_atime_is_set, (E* e), (e))
FORWARD(time_t, archive_entry_mtime, (E* e), (e))
FORWARD(long, archive_entry_mtime_nsec, (E* e), (e))
FORWARD(int, archive_entry_mtime_is_set, (E* e), (e))
FORWARD(void, archive_entry_set_pathname, (E* e, const char* path), (e, path))
FORWARD(void, archive_entry_set_hardlink, (E* e, const char* target), (e, target))
FORWARD(void, archive_entry_set_symlink, (E* e, const char* target), (e, target))
FORWARD(void, archive_entry_set_filetype, (E* e, unsigned int type), (e, type))
FORWARD(void, archive_entry_set_mode, (E* e, __LA_MODE_T mode), (e, mode))
FORWARD(void, archive_entry_set_perm, (E* e, __LA_MODE_T perm), (e, perm))
FORWARD(void, archive_entry_set_uid, (E* e, la_int64_t uid), (e, uid))
FORWARD(void, archive_entry_set_gid, (E* e, la_int64_t gid), (e, gid))
FORWARD(void, archive_entry_set_size, (E* e, la_int64_t size), (e, size))
FORWARD(void, archive_entry_set_rdevmajor, (E* e, dev_t major), (e, major))
FORWARD(void, archive_entry_set_rdevminor, (E* e, dev_t minor), (e, minor))
FORWARD(void, archive_entry_set_mtime, (E* e, time_t sec, long nsec), (e, sec, nsec))
FORWARD(int, archive_entry_xattr_reset, (E* e), (e))
FORWARD(int, archive_entry_xattr_next, (E* e, const char** name, const void** value, size_t* size),
        (e, name, value, size))
FORWARD(void, archive_entry_xattr_add_entry, (E* e, const char* name, const void* value, size_t size),
        (e, name, value, size))

}  // extern "C"
