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

// True when /usr/sbin/nginx and /usr/bin/openssl are installed.
bool have_nginx();

// A test CA and a server certificate it signed, made with openssl in dir:
// <dir>/ca.crt, <dir>/server.crt, <dir>/server.key (SANs: name, 127.0.0.1),
// and a client certificate it signed: <dir>/client.cert, <dir>/client.key
// (docker's certs.d names).
struct TestCertificates {
  TestCertificates(const std::string& dir, const std::string& name);
  std::string ca, cert, key;
  std::string client_cert, client_key;
};

// Debian's nginx on 127.0.0.1 as a TLS reverse proxy with Basic auth in
// front of a registry, as a private registry is usually deployed (the
// distribution project's nginx recipe). Killed and waited for by the
// destructor.
class TlsProxy {
 public:
  // upstream: "127.0.0.1:<port>" of the registry; name: the TLS server name.
  // With require_client_cert nginx refuses clients without a certificate
  // signed by the test CA (ssl_verify_client on).
  TlsProxy(const std::string& upstream, const std::string& name, const std::string& user, const std::string& password,
           bool require_client_cert = false);
  ~TlsProxy();
  TlsProxy(const TlsProxy&) = delete;
  TlsProxy& operator=(const TlsProxy&) = delete;

  int port() const { return port_; }
  // "<name>:<port>", the registry's name for berth (resolved with BERTH_RESOLVE).
  std::string address() const { return name_ + ":" + std::to_string(port_); }
  // "BERTH_RESOLVE=<name>:<port>:127.0.0.1"
  std::string resolve_env() const { return "BERTH_RESOLVE=" + address() + ":127.0.0.1"; }
  const std::string& ca_file() const { return certs_.ca; }
  const std::string& client_cert_file() const { return certs_.client_cert; }
  const std::string& client_key_file() const { return certs_.client_key; }
  std::string access_log() const;

 private:
  TempDir dir_;
  std::string name_;
  int port_ = 0;
  TestCertificates certs_;
  pid_t pid_ = -1;
};

}  // namespace berth::test
