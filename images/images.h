// The image store: content-addressed blobs, unpacked layers shared between
// images, and a reference index (name:tag -> image ID), all under
// <root>/image/. Every mutation holds an exclusive flock on <root>/image/lock
// (readers a shared one), so concurrent berth processes never corrupt it.
//
// Layout:
//   index.json                 images, tags (atomic replace)
//   holds/<holder>.<image hex> an empty file per hold (e.g. a container's)
//   blobs/sha256/<hex>         image configs, and each layer's blob as it arrived
//                              (compressed as pulled or loaded; a tar named by
//                              its DiffID for imports, commits, older stores)
//   layers/<diffid hex>/diff   a layer unpacked in overlayfs form
//   layers/<diffid hex>/meta.json  DiffID, sizes, and its blob (digest, media type, size)
//   tmp/                       work in progress; emptied by every writer
//
// images/ knows nothing of compose files, containers or networks: callers
// name their holders with opaque strings.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "images/reference.h"

namespace berth::images {

// Progress of one long step (reading an archive, one layer). Done is sent once per step.
struct ProgressEvent {
  enum class Kind { Start, Advance, Done, AlreadyExists };
  Kind kind = Kind::Start;
  std::string action;  // "Loading layer", "Saving layer", "Reading archive", "Importing"
  std::string id;      // short digest, or a name
  uint64_t done = 0;   // bytes
  uint64_t total = 0;  // bytes, 0 when unknown
};
using ProgressFn = std::function<void(const ProgressEvent&)>;

struct ImageSummary {
  std::string id;                         // "sha256:<hex>"
  std::vector<std::string> repo_tags;     // fully qualified: "docker.io/library/busybox:latest"
  std::vector<std::string> repo_digests;  // fully qualified: "docker.io/library/busybox@sha256:.."
  std::string created;                    // RFC 3339 from the config ("" if absent)
  int64_t created_unix = 0;
  uint64_t size = 0;                      // sum of the layers' content sizes
  std::vector<std::string> diff_ids;
  std::vector<std::string> holders;       // who keeps it (e.g. containers)
};

struct LoadResult {
  std::vector<std::string> tagged;    // familiar references: "busybox:latest"
  std::vector<std::string> untagged;  // image IDs loaded without a name
};

struct RemoveReport {
  std::vector<std::string> untagged;  // familiar references
  std::vector<std::string> deleted;   // image IDs, then layer DiffIDs freed
  uint64_t reclaimed = 0;             // bytes of layer content freed
};

enum class ArchiveFormat { Docker, Oci };

struct ImportOptions {
  std::optional<Reference> reference;
  std::vector<std::string> changes;  // Dockerfile instructions: CMD ["x"], ENV A=b, ...
  std::string message;               // the history comment
  std::string source_name = "-";     // for the default history comment
};

class Store {
 public:
  // root is berth's --root; the store lives in <root>/image (created on first use).
  explicit Store(std::string root);

  const std::string& directory() const { return dir_; }

  // A one-layer image from a rootfs tar (plain, gzip, zstd, bzip2 or xz), like
  // `docker import`. Returns the image ID.
  std::string import_rootfs(int fd, const ImportOptions& options, const ProgressFn& progress = {});

  // Loads a Docker (`docker save`) or OCI layout archive, format detected.
  // Verifies every blob digest and every layer DiffID; on any error the store
  // is left unchanged and the error names the file or layer.
  LoadResult load(int fd, const ProgressFn& progress = {});

  // Writes the named images (references or IDs) as one archive to out_fd;
  // images share their layers. Docker format also carries the OCI layout.
  void save(const std::vector<std::string>& names, ArchiveFormat format, int out_fd, const ProgressFn& progress = {});

  std::vector<ImageSummary> list() const;
  // Resolves a reference, a full ID or a unique ID prefix. Throws "No such image: X".
  std::string resolve(const std::string& name) const;
  ImageSummary summary(const std::string& name) const;
  // Docker-shaped `image inspect` object.
  nlohmann::json inspect(const std::string& name) const;
  // The image config exactly as stored (its sha256 is the image ID).
  std::string config_bytes(const std::string& name) const;

  void tag(const std::string& source, const std::string& target);
  // `rmi`: untags, and deletes the image and its unshared layers when nothing
  // else names or holds it. Refuses (unless force) an ID that is tagged in
  // several repositories; never deletes an image a holder uses.
  RemoveReport remove(const std::string& name, bool force);
  // Removes dangling (untagged) images, or with all every image no holder uses.
  RemoveReport prune(bool all);

  // For the runtime: the unpacked layer directories, top-most first (overlayfs lowerdir order).
  std::vector<std::string> layer_dirs(const std::string& image) const;
  // Marks image as used by holder_id (a container; no '/', no leading '.');
  // rmi will not free it. Returns the image ID.
  std::string acquire(const std::string& image, const std::string& holder_id);
  // Drops holder_id's hold (no error if it held nothing).
  void release(const std::string& holder_id);

  // For `commit`: stores a layer from a tar stream (any compression) and returns
  // its DiffID. The layer stays pending (kept by garbage collection) until
  // create_image references it.
  std::string add_layer_from_tar(int fd, const ProgressFn& progress = {});
  // Creates an image whose rootfs is diff_ids (bottom first; every layer must
  // be in the store); fills config.rootfs. Returns the image ID.
  std::string create_image(nlohmann::json config, const std::vector<std::string>& diff_ids,
                           const std::optional<Reference>& reference = {});

 private:
  std::string dir_;
};

// Layers a pull named before their files were known to be on the disk (it
// makes their blobs durable instead; see images/unsynced.cpp). Rebuilds
// from its blob each one an earlier boot left (a crash may have torn its
// files); with Settle::Old also settles, with one syncfs, those of this
// boot that the kernel has had time to write back, and with Settle::All
// all of them. One failed opendir when there is nothing to do. Commands
// that may mount a layer call it first (Settle::None: a syncfs, which
// flushes everything on the filesystem, has no place on their path); serve
// settles now and then off its loop, and everything at exit.
enum class Settle { None, Old, All };
void recover_unsynced_layers(const std::string& root, Settle settle = Settle::None);
// Whether any such layer is recorded (one opendir and readdir).
bool has_unsynced_layers(const std::string& root);

// Applies `docker import --change` instructions to an image config's "config" object.
void apply_changes(nlohmann::json& container_config, const std::vector<std::string>& changes);

}  // namespace berth::images
