#include "base/error.h"

#include <cstring>

namespace berth {

std::string Error::errno_text(int err) {
  char buf[256];
  // GNU strerror_r may return a static string instead of filling buf.
  return std::string(strerror_r(err, buf, sizeof buf));
}

void throw_errno(const std::string& what, int err) { throw Error(what, err); }

}  // namespace berth
