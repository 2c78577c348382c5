// sha256 digests ("sha256:<hex>") computed while data streams past.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace berth::images {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  void update(const void* data, size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // "sha256:<64 hex>"; the hasher must not be updated afterwards.
  std::string finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A Sha256 that hashes each block on a thread of its own while the caller
// goes on (unpacking the same block: the digest then costs no wall time on
// a second core). The block must stay unchanged until the next call of
// update() or wait(), both of which first wait for the previous block.
// With on_thread false it hashes each block in update(), on the caller's
// thread: for callers that keep every core busy already (a pull unpacking
// several layers at once), where handing each block over and back cost
// more than it saved.
class Sha256Behind {
 public:
  explicit Sha256Behind(bool on_thread = true);
  ~Sha256Behind();
  Sha256Behind(const Sha256Behind&) = delete;
  Sha256Behind& operator=(const Sha256Behind&) = delete;
  void update(const void* data, size_t size);
  // Returns once the last block handed over is hashed (its buffer is free).
  void wait();
  std::string finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "sha256:<hex>" of data.
std::string sha256_digest(std::string_view data);
// "sha256:<hex>" of a file's contents.
std::string sha256_file(const std::string& path);
// The hex part of "sha256:<hex>"; throws berth::Error if text is not such a digest.
std::string digest_hex(std::string_view digest);

}  // namespace berth::images
