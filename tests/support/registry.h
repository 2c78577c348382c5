// Test support: a private CNCF distribution registry (Debian's
// docker-registry) on 127.0.0.1, with its storage, config and access log in
// a scratch directory. Stopped (killed and waited for) by the destructor.
#pragma once

#include <sys/types.h>

#include <string>

#include "tests/support/run.h"

namespace berth::test {

// True when /usr/bin/docker-registry is installed.
bool have_docker_registry();

// A free TCP port on 127.0.0.1 (bound then released; good enough for tests).
int free_port();

class RegistryServer {
 public:
  // htpasswd_file: a bcrypt htpasswd file enabling Basic auth ("" = anonymous).
  explicit RegistryServer(const std::string& htpasswd_file = {});
  ~RegistryServer();
  RegistryServer(const RegistryServer&) = delete;
  RegistryServer& operator=(const RegistryServer&) = delete;

  // "127.0.0.1:<port>"
  const std::string& address() const { return address_; }
  // Everything the registry logged so far (access log lines included).
  std::string log() const;
  // How many `GET /v2/<repo>/blobs/...` requests the access log shows.
  int blob_gets() const;

 private:
  TempDir dir_;
  std::string address_;
  std::string log_path_;
  pid_t pid_ = -1;
};

}  // namespace berth::test
