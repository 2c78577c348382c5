// Writing a whole buffer to a file descriptor (pipes and sockets take
// partial writes). In berth_base_core, so berth-monitor can use it.
#pragma once

#include <cstddef>

namespace berth {

// Writes all n bytes to fd, again after EINTR and short writes; false on an
// error (errno says which) or when the fd takes no more.
bool write_all(int fd, const char* p, std::size_t n);

}  // namespace berth
