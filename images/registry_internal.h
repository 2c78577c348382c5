// The HTTP side of the registry client (registry_http.cpp), shared with
// pull/push (registry.cpp). Not part of the public door.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "base/error.h"

#include "images/registry.h"

namespace berth::images::detail {

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower case
  std::string body;                             // unless streamed to a sink
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

struct HttpRequest {
  std::string method = "GET";  // GET HEAD POST PUT
  std::string url;             // absolute, or a path ("/v2/...") on the registry
  std::vector<std::string> headers;
  std::string body;            // for PUT/POST when body_file is empty
  std::string body_file;       // upload this file's content
  uint64_t body_offset = 0;    // from this byte of body_file
  int64_t body_length = -1;    // this many bytes of it (-1: to the end)
  // Streams the body (status 2xx only); returns false to abort.
  std::function<bool(const char*, size_t)> sink;
  // Called with the status when a 2xx body starts streaming to sink.
  std::function<void(long)> on_stream;
  // Called with the bytes of body_file sent so far.
  std::function<void(uint64_t)> on_upload;
  // Idempotent requests are retried after a transport error unless false.
  bool retry_transport = true;
  size_t max_body = 8u << 20;  // in-memory body limit
};

// A request that got no HTTP answer (connection refused, TLS failure, ...).
struct TransportError : Error {
  TransportError(const std::string& message, bool tls, bool connect = false)
      : Error(message), tls_failure(tls), connect_failure(connect) {}
  bool tls_failure;
  bool connect_failure;  // no connection at all (refused, unresolvable): retrying will not help
};

// What certs.d holds for one registry: extra CA files and client key pairs.
struct TlsFiles {
  std::vector<std::string> ca_files;                           // *.crt
  std::vector<std::pair<std::string, std::string>> client;     // (*.cert, *.key)
};
// Reads <dir>/<registry>/ of every certs.d directory; throws for a *.cert
// without its *.key (as docker).
TlsFiles find_tls_files(const std::string& registry, const std::vector<std::string>& certs_dirs);

// One repository on one registry, with its auth state (Basic credentials,
// Bearer tokens cached per scope). Thread safe: layer workers share it.
class RegistryClient {
 public:
  RegistryClient(std::string registry, std::string repository, std::string scope_actions, const RegistryOptions& options);
  // Sends req, answering one auth challenge (401) and retrying transport
  // errors (not a refused connection), 429 and 5xx of idempotent requests
  // with backoff.
  HttpResponse send(const HttpRequest& req);
  // Throws the clear error for a failed response: 401/403/404/429/5xx.
  [[noreturn]] void fail(const HttpResponse& r, const std::string& what) const;
  const std::string& registry() const { return registry_; }
  const std::string& repository() const { return repository_; }
  std::string base_url() const {
    std::lock_guard<std::mutex> guard(mutex_);
    return base_;
  }

 private:
  HttpResponse perform(const HttpRequest& req, const std::string& authorization);
  bool authenticate(const HttpResponse& challenge);  // true when a retry may succeed
  std::string authorization();

  std::string registry_, repository_, scope_actions_, base_;
  Credentials credentials_;
  bool insecure_ = false;  // plain http, or https without verification
  bool scheme_known_ = true;  // false until an insecure registry's first answer says http or https
  TlsFiles tls_;
  std::vector<std::string> resolve_;
  std::string certs_hint_;  // where a CA for this registry would go
  mutable std::mutex mutex_;
  std::string auth_header_;  // "Basic ..." or "Bearer ..."
  std::map<std::string, std::string> tokens_;  // scope -> token
  bool tried_auth_ = false;
};

}  // namespace berth::images::detail
