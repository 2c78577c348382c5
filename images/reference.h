// Image references, parsed and normalized the way docker does:
//   busybox              -> docker.io/library/busybox:latest
//   me/app:1             -> docker.io/me/app:1
//   host:5000/a/b@sha256:<64 hex>
// and shown the short way again (`busybox`, not `docker.io/library/busybox`).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace berth::images {

struct Reference {
  std::string domain;  // "docker.io", "host:5000", "localhost"
  std::string path;    // "library/busybox", "a/b"
  std::string tag;     // empty when only a digest was given
  std::string digest;  // "sha256:<hex>" or empty

  // "docker.io/library/busybox"
  std::string repository() const { return domain + "/" + path; }
  // The short repository name docker displays: "busybox", "me/app", "host:5000/a/b".
  std::string familiar_repository() const;
  // Fully qualified: "docker.io/library/busybox:latest" or "...@sha256:..".
  std::string full() const;
  // Short form: "busybox:latest", "host:5000/a/b@sha256:..".
  std::string familiar() const;
};

// Parses and normalizes; adds ":latest" when neither tag nor digest is given.
// Throws berth::Error explaining what is wrong.
Reference parse_reference(std::string_view text);

// Like parse_reference, but never adds a default tag (for `rmi name@digest`).
Reference parse_reference_no_default(std::string_view text);

// True for "sha256:<64 hex>".
bool is_sha256_digest(std::string_view text);

// Shows a fully qualified reference (as stored in the index) the docker way.
std::string familiar_name(std::string_view full_reference);

}  // namespace berth::images
