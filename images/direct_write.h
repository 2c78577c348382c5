// Writing a file around the page cache (O_DIRECT) where its filesystem
// allows it, for big data berth writes once and does not read back soon:
// a layer's blob as it downloads, and a layer's big files as they unpack.
// It saves the copy into page cache the kernel must first allocate (on a
// VM, memory the host may have to back first: ~2.7 ms/MB here) and its
// writeback later. Anything the kernel will not take direct goes through
// the page cache, so the caller never fails for want of O_DIRECT.
#pragma once

#include <cstddef>
#include <cstdint>

namespace berth::images::detail {

class DirectWrites {
 public:
  static constexpr size_t kAlign = 4096;  // of data, size and offset, for any filesystem berth meets

  // Turns O_DIRECT on for fd, open for writing (direct() is false when the
  // filesystem refuses it).
  explicit DirectWrites(int fd);
  bool direct() const { return direct_; }
  // Writes all n bytes at offset. While direct(), data, n and offset are
  // kAlign-aligned. A write the kernel refuses direct anyway (EINVAL) turns
  // direct() off and goes, as everything after it, through the page cache.
  // False on an error (errno says which).
  bool write(const char* data, size_t n, uint64_t offset);
  // What follows goes through the page cache (an unaligned tail). False on
  // an error (errno).
  bool stop_direct();

 private:
  int fd_;
  int flags_ = 0;  // fd's flags without O_DIRECT
  bool direct_ = false;
};

}  // namespace berth::images::detail
