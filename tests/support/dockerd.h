// A private Docker engine for interop tests and benchmarks: Debian's dockerd
// started with its own data root, exec root, pidfile and socket, no bridge and
// no iptables, so it touches nothing of the host's. The destructor stops it
// (and the containerd it started), unmounts whatever it left mounted under its
// directory, and removes the directory.
#pragma once

#include <string>
#include <sys/types.h>
#include <vector>

#include "tests/support/run.h"

namespace berth::test {

class PrivateDockerd {
 public:
  // Empty when dockerd and a docker client are installed; else why not (for GTEST_SKIP).
  static std::string unavailable_reason();

  // Starts dockerd and waits (up to timeout_seconds) until it answers. Throws
  // std::runtime_error with the tail of its log when it does not come up.
  // data_parent: where its data root goes (a directory made under it and
  // removed with the engine; "" = its own directory under /tmp), so a bench
  // can put docker's layers on the same filesystem as berth's.
  explicit PrivateDockerd(int timeout_seconds = 60, const std::string& data_parent = {});
  ~PrivateDockerd();
  PrivateDockerd(const PrivateDockerd&) = delete;
  PrivateDockerd& operator=(const PrivateDockerd&) = delete;

  // Runs the docker client against this engine.
  Result docker(const std::vector<std::string>& args, const std::string& input = {}) const;
  // Environment for running the client yourself: DOCKER_HOST=unix://...
  std::string docker_host() const { return "unix://" + socket_; }
  static std::string docker_client();
  const std::string& directory() const { return dir_; }
  std::string log() const;

 private:
  void stop();
  std::string dir_;
  std::string data_root_;
  std::string socket_;
  pid_t pid_ = -1;
};

}  // namespace berth::test
