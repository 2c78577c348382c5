#include "images/direct_write.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

namespace berth::images::detail {

DirectWrites::DirectWrites(int fd) : fd_(fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return;
  flags_ = flags & ~O_DIRECT;
  direct_ = (flags & O_DIRECT) || ::fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
}

bool DirectWrites::stop_direct() {
  if (!direct_) return true;
  if (::fcntl(fd_, F_SETFL, flags_) != 0) return false;
  direct_ = false;
  return true;
}

bool DirectWrites::write(const char* data, size_t n, uint64_t offset) {
  while (n) {
    ssize_t w = ::pwrite(fd_, data, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EINVAL && direct_) {
      // O_DIRECT accepted at open but not for this write (or a short write
      // left the rest unaligned): the rest through the page cache.
      if (!stop_direct()) return false;
      continue;
    }
    if (w < 0) return false;
    if (w == 0) {
      errno = ENOSPC;
      return false;
    }
    data += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return true;
}

}  // namespace berth::images::detail
