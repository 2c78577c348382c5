// Attaching to a running container through its monitor (`berth attach`,
// and `run -it`'s stdin): the monitor listens on <run_dir>/attach.sock.
//
// Protocol (one unix stream connection per client):
//   client -> monitor: one byte: the streams wanted (kStdin | kStdout |
//                      kStderr) in its low bits and the protocol version
//                      (kVersion) in its high four; a monitor of another
//                      version (a container started by another berth)
//                      answers with one kFrameError saying so, and closes.
//                      Then
//                      frames with the same 5-byte header: kInStdin (bytes
//                      for the container's stdin: its pty, or the pipe the
//                      monitor holds for a `-i` container), kInEof (the
//                      client's stdin ended: with StdinOnce and no tty the
//                      container's stdin closes, otherwise this client's
//                      streams end, as docker does) and kInResize (rows and
//                      columns, 16 bits each, big-endian: TIOCSWINSZ on the
//                      pty). An attached `run`/`start` sends the same frames
//                      on its report socket (tty only).
//   monitor -> client: frames of a 5-byte header (type, 32-bit big-endian
//                      length) and data: kFrameStdout / kFrameStderr
//                      output, and one kFrameExit (the decimal exit code)
//                      once the container's exit is recorded; or one
//                      kFrameError (a message) instead of everything.
// Detach keys are handled by the client: it simply stops and closes.
#pragma once

#include <signal.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace berth::runtime {

namespace attach_proto {
inline constexpr const char* kSocketName = "attach.sock";
inline constexpr int kStdin = 1, kStdout = 2, kStderr = 4;
inline constexpr int kVersion = 1;  // in the first byte's high four bits; a change to the frames takes a new one
inline constexpr int kFrameStdout = 1, kFrameStderr = 2, kFrameExit = 3, kFrameError = 4;
// The client's first byte, and what a monitor reads from it.
inline char hello(int streams) { return static_cast<char>(kVersion << 4 | (streams & 0x0f)); }
inline int hello_version(char b) { return static_cast<unsigned char>(b) >> 4; }
inline int hello_streams(char b) { return static_cast<unsigned char>(b) & 0x0f; }
inline constexpr int kInStdin = 1, kInEof = 2, kInResize = 3;
inline constexpr size_t kHeader = 5;
inline void encode_header(char* h, int type, uint32_t n) {
  h[0] = static_cast<char>(type);
  h[1] = static_cast<char>(n >> 24);
  h[2] = static_cast<char>(n >> 16);
  h[3] = static_cast<char>(n >> 8);
  h[4] = static_cast<char>(n);
}
inline uint32_t decode_length(const char* h) {
  auto b = [&](int i) { return static_cast<uint32_t>(static_cast<unsigned char>(h[i])); };
  return b(1) << 24 | b(2) << 16 | b(3) << 8 | b(4);
}
}  // namespace attach_proto

// Client side of the input frames: false when fd is gone.
bool send_input(int fd, int type, const char* data, size_t n);
// A kInResize frame with the caller's window size (from fd 0, else 1);
// true when there was none to send (neither is a terminal).
bool send_window_size(int fd);

// SIGWINCH to a pipe while it lives (fd() is -1 when off), so that a poll
// loop can forward the new window size.
class WinchPipe {
 public:
  explicit WinchPipe(bool on);
  ~WinchPipe();
  WinchPipe(const WinchPipe&) = delete;
  WinchPipe& operator=(const WinchPipe&) = delete;
  int fd() const { return read_; }
  // Empties the pipe; true if a SIGWINCH arrived.
  bool drain();

 private:
  int read_ = -1, write_ = -1;
  struct sigaction saved_ {};
};

// docker's --detach-keys: comma-separated keys, each a single character or
// ctrl-<letter|@|[|\|]|^|_>; "" = ctrl-p,ctrl-q. Returns the byte sequence.
// Throws berth::Error (exit code 125) naming the bad key.
std::string parse_detach_keys(const std::string& spec);

// Watches the caller's keystrokes for the detach sequence: feed() returns
// the bytes to pass on (a partial match is held back until it breaks).
class DetachScanner {
 public:
  explicit DetachScanner(std::string keys) : keys_(std::move(keys)) {}
  std::string feed(const char* data, size_t n);
  bool detached() const { return detached_; }

 private:
  std::string keys_;
  size_t matched_ = 0;
  bool detached_ = false;
};

// Binds (server) or connects (client) the unix socket at dir/name, going
// through /proc/self/fd so that a long dir does not overflow sun_path.
// Return an fd (close-on-exec), or -1 with errno set.
int listen_unix_in(const std::string& dir, const std::string& name);
int connect_unix_in(const std::string& dir, const std::string& name);

}  // namespace berth::runtime
