// The registry client: pull and push images over the OCI distribution API
// (https://github.com/opencontainers/distribution-spec), with credentials
// kept in a docker-compatible config.json.
//
// Threading: every call here BLOCKS the calling thread (libcurl easy
// handles; layers download on a small pool of worker threads, one easy
// handle each). The supervisor must call pull/push from a worker thread,
// never from its libuv loop. We chose worker threads over curl's
// multi-socket API because a pull is mostly disk-bound work after the
// download (decompress, verify, unpack), which has to run off the loop
// anyway; one thread per layer lets each layer's unpack overlap with the
// other layers' downloads with no extra state machine, and keeps the client
// usable from the plain CLI with no event loop at all.
//
// Transport: https, verified against the system CA store plus the CAs of
// the registry's certs.d directories (docker's layout: <dir>/<host:port>/
// *.crt are extra CAs, <name>.cert + <name>.key a client certificate; every
// directory in RegistryOptions::certs_dirs is read, by default
// /etc/berth/certs.d then /etc/docker/certs.d). Insecure registries -
// 127.0.0.0/8, ::1 and "localhost" always (as docker), plus every entry of
// RegistryOptions::insecure (host:port, host, or an IPv4 CIDR) - are tried
// over https WITHOUT verification first, then over plain http. Hosts are
// matched by name: berth does not resolve a name to decide.
//
// Daemon-wide options (registries.json, see load_registry_config): search
// registries for unqualified names, blocked registries, insecure
// registries, and pull mirrors tried before the origin.
// Pushed layers are the store's blobs as they are kept, in an OCI image
// manifest: a layer that came compressed (pull, load, import) goes back
// so, with the digest and media type it came with (a registry that has it
// finds it by HEAD or a cross-repository mount, and nothing is
// recompressed); plain tars (commit, import of a tar, older stores) go as
// `application/vnd.oci.image.layer.v1.tar`, their blob digest their DiffID.
// The CNCF distribution registry (Debian's docker-registry 2.8) accepts both.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "images/images.h"
#include "images/reference.h"

namespace berth::images {

struct Platform {
  std::string os = "linux";
  std::string architecture = "amd64";
  std::string variant;  // "" = any
};
// "os/arch[/variant]"; throws berth::Error.
Platform parse_platform(const std::string& text);

struct Credentials {
  std::string username;
  std::string password;
  bool empty() const { return username.empty() && password.empty(); }
};

struct RegistryOptions {
  Platform platform;
  // "host:port", "host" or an IPv4 CIDR: https without verification, then plain http.
  std::vector<std::string> insecure;
  // docker-style certs.d directories, read in this order.
  std::vector<std::string> certs_dirs = {"/etc/berth/certs.d", "/etc/docker/certs.d"};
  // Unqualified names ("app:1", not "host/app:1") are looked up in these, in order.
  std::vector<std::string> search;
  // Registries refused outright: "host:port", "host" (any port) or "*.domain".
  std::vector<std::string> blocked;
  // Pull mirrors per registry ("docker.io" -> {"mirror:5000"}): tried in
  // order before the origin, which is used when every mirror fails.
  std::map<std::string, std::vector<std::string>> mirrors;
  // "host:port:address" pins, as curl --resolve (tests point names at 127.0.0.1).
  std::vector<std::string> resolve;
  // Where the options came from, for error messages ("" = defaults only).
  std::string config_path;
  unsigned parallel = 4;              // layers downloaded at once
  // Push: blobs larger than this go up in PATCH chunks of this size (0 = one monolithic PUT).
  uint64_t upload_chunk = 0;
  // Looks up credentials for a registry host ("host:port"); may be empty.
  std::function<Credentials(const std::string& registry)> credentials;
};

// Reads the daemon-wide registry options from a JSON file into options
// (a missing file changes nothing):
//   {"registries": {"search": [...], "block": [...], "insecure": [...]},
//    "mirrors": {"docker.io": ["mirror.example:5000"]},  // "http://m:5000": a plain http mirror
//    "certs.d": ["/etc/berth/certs.d"]}
// Throws a clear error naming the file for malformed content.
void load_registry_config(const std::string& path, RegistryOptions& options);

// Throws "registry X is blocked" when options.blocked lists registry.
void check_not_blocked(const std::string& registry, const RegistryOptions& options);

// The references an image name stands for: the name itself when it names
// a registry ("host:5000/a", "localhost/a", "docker.io/a") or when no search
// registries are set; otherwise one per search registry, in order.
std::vector<Reference> search_references(const std::string& name, const RegistryOptions& options);

// True when registry (host[:port]) is insecure: loopback, or matched by an
// entry of listed (host:port, host, IPv4 CIDR).
bool is_insecure_registry(const std::string& registry, const std::vector<std::string>& listed);
// Splits "a,b , c" into host:port entries.
std::vector<std::string> split_registry_list(const std::string& text);

// A parsed WWW-Authenticate challenge: scheme ("bearer", "basic"; lower
// case) and its parameters (realm, service, scope, error, ...).
struct AuthChallenge {
  std::string scheme;
  std::map<std::string, std::string> params;
};
std::vector<AuthChallenge> parse_www_authenticate(const std::string& header);

// Progress events sent by pull/push (ProgressEvent::action):
//   pull: "Pulling fs layer" (Start), "Downloading" (Advance),
//         "Pull complete" (Done), "Already exists" (AlreadyExists)
//   push: "Preparing" (Start), "Pushing" (Advance), "Pushed" (Done),
//         "Layer already exists" (AlreadyExists)
// ev.id is the 12-digit short digest. Calls may come from several threads
// but are serialized.
struct PullResult {
  std::string image_id;         // "sha256:..."
  std::string manifest_digest;  // "sha256:..." (what `Digest:` shows)
  bool downloaded = false;      // false when the image was already stored
};
// Pulls ref into store (from its mirrors first, when it has any): manifest (negotiated, platform selected), config,
// the layers the store does not have (verified while streaming, in
// parallel, unpacked as they arrive). Tags the image as ref (when it has a
// tag) and records the RepoDigest. On any error nothing is stored.
PullResult pull_image(Store& store, const Reference& ref, const RegistryOptions& options, const ProgressFn& progress = {});

struct PushResult {
  std::string manifest_digest;
  uint64_t manifest_size = 0;
};
// Pushes the stored image named ref to ref's registry: blobs it lacks
// (HEAD; a cross-repository mount from another repository of that registry
// the store knows holds the layer; else POST and a monolithic PUT ?digest=,
// or PATCH chunks of options.upload_chunk bytes), then the manifest.
PushResult push_image(Store& store, const Reference& ref, const RegistryOptions& options, const ProgressFn& progress = {});

// `search` on a private registry: the repositories of its /v2/_catalog
// (every page) whose name contains term, sorted, at most limit (0 = all).
// Throws a clear error when the registry does not offer the catalog.
std::vector<std::string> search_catalog(const std::string& registry, const std::string& term, const RegistryOptions& options,
                                        size_t limit);

// `login`: checks the credentials against registry's /v2/ (Basic or Bearer).
// Throws a clear error when they are refused.
void check_login(const std::string& registry, const Credentials& credentials, const RegistryOptions& options);

// docker's config.json `auths` section. The file is written mode 0600.
class AuthFile {
 public:
  explicit AuthFile(std::string path);
  const std::string& path() const { return path_; }
  Credentials get(const std::string& registry) const;  // empty if none
  void set(const std::string& registry, const Credentials& credentials);
  bool erase(const std::string& registry);  // false if it had none

 private:
  std::string path_;
};
// docker keys Docker Hub as "https://index.docker.io/v1/"; every other registry as host:port.
std::string auth_key(const std::string& registry);

std::string base64_encode(const std::string& data);
std::string base64_decode(const std::string& text);  // throws berth::Error

}  // namespace berth::images
