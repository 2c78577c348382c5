// Pieces of the store shared by store.cpp (index, locking, layers) and
// archive.cpp (load/save formats). Not part of the public door.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "base/fs.h"
#include "images/images.h"
#include "images/unpack.h"

namespace berth::images::detail {

// flock on <store>/lock for the life of the object.
class StoreLock {
 public:
  StoreLock(const std::string& store_dir, bool exclusive);
  StoreLock(const StoreLock&) = delete;
  StoreLock& operator=(const StoreLock&) = delete;

 private:
  UniqueFd fd_;
};

struct ImageRecord {
  std::vector<std::string> diff_ids;
  std::vector<std::string> repo_digests;
  std::string created;
  uint64_t size = 0;
  std::string last_tag_time;
};

struct Index {
  std::map<std::string, ImageRecord> images;          // image ID -> record
  std::map<std::string, std::string> tags;            // full reference -> image ID
  // holder -> image ID, as older stores kept holds in index.json; dropped
  // as their holders release them.
  std::map<std::string, std::string> holders;
  // holder -> image ID, from the hold files (holds/<holder>.<image hex>,
  // empty files: a container's create and removal never rewrite the
  // index). Read with the index, never written by write().
  std::map<std::string, std::string> hold_files;
  std::map<std::string, std::string> pending_layers;  // DiffID -> when added (commit in progress)

  static Index read(const std::string& store_dir);
  void write(const std::string& store_dir) const;
  std::vector<std::string> tags_of(const std::string& id) const;
  // Every holder of id: the hold files' and the index's.
  std::vector<std::string> holders_of(const std::string& id) const;
};

// The hold files: <store>/holds/<holder>.<image hex>.
std::string holds_dir(const std::string& store_dir);
std::map<std::string, std::string> read_hold_files(const std::string& store_dir);

// A directory under <store>/tmp, removed (with whatever is left in it) at scope exit.
class WorkDir {
 public:
  WorkDir(const std::string& store_dir, const std::string& purpose);
  ~WorkDir();
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  const std::string& path() const { return path_; }
  std::string next_name(const std::string& stem) { return path_ + "/" + stem + std::to_string(counter_++); }

 private:
  std::string path_;
  std::atomic<unsigned> counter_{0};  // staging runs on several threads
};

std::string blob_path(const std::string& store_dir, const std::string& digest);
std::string layer_path(const std::string& store_dir, const std::string& diff_id);
bool layer_exists(const std::string& store_dir, const std::string& diff_id);
// Content size recorded when the layer was unpacked.
uint64_t layer_content_size(const std::string& store_dir, const std::string& diff_id);

// The OCI media types of a layer blob: plain tar, tar+gzip, tar+zstd.
extern const char* const kLayerTar;
extern const char* const kLayerTarGzip;
extern const char* const kLayerTarZstd;
// The media type of a layer blob in that compression; "" for bzip2 and xz (no OCI type).
std::string layer_media_type(Compression c);

// The blob a layer keeps, as it arrived: compressed as pulled or loaded
// (blobs/sha256/<blob digest hex>), or the uncompressed tar named by its
// DiffID (layers stored by older berth, imports, commits).
struct LayerBlob {
  std::string digest;
  std::string media_type;
  uint64_t size = 0;
  bool compressed() const { return media_type != kLayerTar; }
};
// A stored layer's meta.json (layers/<hex>/meta.json).
struct LayerMeta {
  std::string diff_id;
  uint64_t content_size = 0;  // docker's layer Size
  uint64_t tar_size = 0;      // bytes of the uncompressed tar
  LayerBlob blob;
};
// Reads the layer's meta; a meta without "blob" (older berth) names the
// uncompressed tar blob of the DiffID. Throws when the layer or its blob is missing.
LayerMeta read_layer_meta(const std::string& store_dir, const std::string& diff_id);

// A layer unpacked in a work dir, ready to be moved into the store.
struct StagedLayer {
  std::string diff_id;
  std::string blob_file;  // the blob as it arrived, becomes blobs/sha256/<blob.digest hex>
  LayerBlob blob;
  std::string dir;        // work dir holding diff/, becomes layers/<hex>
  uint64_t content_size = 0;
  uint64_t tar_size = 0;
  bool already_stored = false;
};

// Verifies and unpacks one layer file (any compression) found at src_path.
// known_digest: sha256 of the file if already computed ("" if not).
// expected_diff_id: from the image config ("" when importing).
// A gzip or zstd file is kept as the layer's blob; bzip2 and xz are stored as their tar.
// name: what errors call the layer ("" = by its DiffID).
StagedLayer stage_layer(const std::string& store_dir, WorkDir& work, const std::string& src_path,
                        const std::string& known_digest, const std::string& expected_diff_id,
                        const ProgressFn& progress, const std::string& name = "");
// Writes the staged layer's meta.json (not flushed: the caller's syncfs does).
void write_layer_meta(const StagedLayer& layer);
// Moves staged layers into the store (those already stored are skipped).
// Their files and blobs reach the disk first, in one syncfs for them all:
// after a power cut the store never names a half-written layer. With
// tree_durable false (a pull, which made each blob durable itself), the
// trees are left to the kernel's writeback and recorded as unsynced
// instead (record_unsynced), to be rebuilt from their blobs if the
// machine stops before they are settled.
void commit_layers(const std::string& store_dir, const std::vector<const StagedLayer*>& layers, bool tree_durable = true);
// The kernel's id of this boot ("" when unknown).
std::string current_boot_id();
// Makes a record of layers about to be named before their trees are on
// the disk, durable, under <store>/unsynced. False (nothing written) when
// the boot id is unknown: the caller must flush the trees itself.
bool record_unsynced(const std::string& store_dir, const std::vector<const StagedLayer*>& layers);
// The records of this boot (paths); a syncfs started after they were made
// settles them: forget_unsynced_records removes them.
std::vector<std::string> unsynced_records_of_this_boot(const std::string& store_dir);
void forget_unsynced_records(const std::vector<std::string>& paths);
void commit_layer(const std::string& store_dir, const StagedLayer& layer);

// Stores config bytes as a blob and records the image in the index with the given full tags.
std::string register_image(const std::string& store_dir, Index& index, const std::string& config_bytes,
                           const std::vector<std::string>& full_tags);

// A full ID, a reference (tag or digest), or a unique ID prefix -> image ID; throws "No such image".
std::string resolve_in_index(const Index& index, const std::string& name);

std::string now_rfc3339();
int64_t parse_rfc3339(const std::string& text);
std::string short_id(const std::string& digest);  // 12 hex digits

}  // namespace berth::images::detail
