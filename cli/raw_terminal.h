// The caller's terminal in raw mode while a client relays keystrokes to a
// container's pty (`run -it`, `exec -it`, `start -ai`, `compose exec`).
#pragma once

#include <termios.h>
#include <unistd.h>

namespace berth::cli {

// Puts stdin's terminal (if it is one) in raw mode, restoring it after.
class RawTerminal {
 public:
  RawTerminal() {
    if (::isatty(0) && ::tcgetattr(0, &saved_) == 0) {
      struct termios raw = saved_;
      ::cfmakeraw(&raw);
      active_ = ::tcsetattr(0, TCSANOW, &raw) == 0;
    }
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(0, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  struct termios saved_ {};
  bool active_ = false;
};

}  // namespace berth::cli
