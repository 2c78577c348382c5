// One error type for all of berth: a message, and the errno that caused it
// when there was one. Every area throws berth::Error; the CLI prints what()
// as one line and maps the exit code.
#pragma once

#include <cerrno>
#include <stdexcept>
#include <string>

namespace berth {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message, int err = 0, int exit_code = 1)
      : std::runtime_error(err ? message + ": " + errno_text(err) : message),
        errno_(err),
        exit_code_(exit_code) {}

  int err() const noexcept { return errno_; }
  // The process exit code the CLI uses when this error ends a command.
  int exit_code() const noexcept { return exit_code_; }

  static std::string errno_text(int err);

 private:
  int errno_;
  int exit_code_;
};

// Throws Error(what, errno) — for wrapping a failed syscall.
[[noreturn]] void throw_errno(const std::string& what, int err = errno);

// A command-line usage error (bad flag or argument): exit code 125, as docker.
class UsageError : public Error {
 public:
  explicit UsageError(std::string message) : Error(std::move(message), 0, 125) {}
};

}  // namespace berth
