// Writing a whole buffer to a file descriptor (pipes and sockets take
// partial writes). In berth_base_core, so berth-monitor can use it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace berth {

// Writes all n bytes to fd, again after EINTR and short writes; false on an
// error (errno says which) or when the fd takes no more.
bool write_all(int fd, const char* p, std::size_t n);
// Writes all n bytes to fd at offset (pwrite), again after EINTR and short
// writes; false on an error (errno says which; ENOSPC when nothing more is taken).
bool pwrite_all(int fd, const char* p, std::size_t n, std::uint64_t offset);

}  // namespace berth
