// Layers a pull names before their files reach the disk.
//
// A pull makes each layer's blob durable (written direct, fdatasync'ed) and
// leaves the unpacked files to the kernel's writeback: the tree is derived
// from the blob, verified against its DiffID, and can be derived again.
// Before any such layer is named in the store, a record of it and of the
// boot it was written in is made durable under <store>/unsynced. What a
// record means later:
//  - same boot: the files are in the page cache or on the disk, both
//    coherent for every reader. Any syncfs of the store's filesystem that
//    starts after the record was made settles it: the one a load, import
//    or commit does anyway, or serve's, now and then (once the kernel has
//    had time to write the files back by itself, kSettleAge) and at exit.
//  - another boot: the machine stopped before anyone knew the files were on
//    the disk (a crash or power cut may have torn them): the layer is
//    unpacked again from its blob, verified, and swapped in, before any
//    container of this boot can mount it.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <mutex>
#include <random>
#include <set>
#include <string_view>
#include <spdlog/spdlog.h>

#include "base/error.h"
#include "base/fs.h"
#include "images/images.h"
#include "images/store_internal.h"
#include "images/unpack.h"

namespace berth::images {

namespace detail {

std::string current_boot_id() {
  std::string id;
  if (!read_file_if_exists("/proc/sys/kernel/random/boot_id", id)) return "";
  while (!id.empty() && (id.back() == '\n' || id.back() == ' ')) id.pop_back();
  return id;
}

std::string unsynced_dir(const std::string& store_dir) { return store_dir + "/unsynced"; }

bool record_unsynced(const std::string& store_dir, const std::vector<const StagedLayer*>& layers) {
  std::string boot = current_boot_id();
  if (boot.empty()) return false;
  nlohmann::json record = {{"boot_id", boot}, {"layers", nlohmann::json::array()}};
  for (auto* l : layers)
    record["layers"].push_back({{"diff_id", l->diff_id}, {"blob", l->blob.digest}, {"media_type", l->blob.media_type}});
  std::string dir = unsynced_dir(store_dir);
  make_dirs(dir, 0700);
  std::string name = std::to_string(std::chrono::system_clock::now().time_since_epoch().count()) + "-" +
                     std::to_string(std::random_device{}()) + ".json";
  write_file_atomic(dir + "/" + name, record.dump() + "\n", 0600);  // file and directory fsync'ed
  return true;
}

namespace {

// A record of this boot is settled once this old: by then the kernel has
// written the files back by itself (dirty_expire_centisecs, 30 s, plus a
// writeback period), so the syncfs that makes sure costs little.
constexpr double kSettleAge = 40.0;

// A record's file name; others (a write_file_atomic leftover) are not records.
bool is_record_name(std::string_view n) { return n.size() > 5 && n.substr(n.size() - 5) == ".json"; }

struct Record {
  std::string path;
  std::string boot_id;
  nlohmann::json layers;
  double age = 0;  // seconds since it was written
};

std::vector<Record> read_records(const std::string& store_dir) {
  std::vector<Record> out;
  std::string dir = unsynced_dir(store_dir);
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d))
    if (is_record_name(e->d_name)) names.push_back(e->d_name);
  ::closedir(d);
  for (auto& n : names) {
    Record r;
    r.path = dir + "/" + n;
    std::string text;
    struct stat st {};
    if (!read_file_if_exists(r.path, text) || ::stat(r.path.c_str(), &st) != 0) continue;
    try {
      auto j = nlohmann::json::parse(text);
      r.boot_id = j.at("boot_id").get<std::string>();
      r.layers = j.at("layers");
      if (!r.layers.is_array()) throw std::runtime_error("layers is not a list");
    } catch (const std::exception& e) {
      // Written with write_file_atomic: a record is whole or absent. One
      // that does not parse was not written by berth: it is left as it is,
      // said once per process (serve reads the records now and then).
      static std::mutex mutex;
      static std::set<std::string> said;
      std::lock_guard<std::mutex> lock(mutex);
      if (said.insert(r.path).second)
        spdlog::warn("{}: not a record of unsynced layers ({}); ignoring it (remove it by hand)", r.path, e.what());
      continue;
    }
    r.age = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() -
            (static_cast<double>(st.st_mtim.tv_sec) + static_cast<double>(st.st_mtim.tv_nsec) / 1e9);
    out.push_back(std::move(r));
  }
  return out;
}

// Unpacks the layer again from its blob into a work dir, verifies both
// digests, flushes it, and swaps it for the stored tree.
void rebuild_layer(const std::string& store_dir, const std::string& diff_id, const std::string& blob_digest,
                   const std::string& media_type) {
  std::string dest = layer_path(store_dir, diff_id);
  if (!path_exists(dest)) return;  // never named, or removed since
  std::string blob = blob_path(store_dir, blob_digest);
  UniqueFd fd(::open(blob.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    // Nothing to rebuild from: the layer goes, so that no container mounts
    // torn files and the next pull of an image that uses it fetches it again.
    spdlog::warn("layer {} was not known to be on the disk when the machine last stopped, and its blob {} is gone: "
                 "removing the layer; pull its images again",
                 diff_id, blob_digest);
    remove_tree(dest);
    return;
  }
  spdlog::warn("layer {} was not known to be on the disk when the machine last stopped: unpacking it again from blob {}",
               diff_id, blob_digest);
  WorkDir work(store_dir, "rebuild");
  StagedLayer staged;
  staged.diff_id = diff_id;
  staged.dir = work.next_name("layer-");
  make_dirs(staged.dir + "/diff");
  ::chmod((staged.dir + "/diff").c_str(), 0755);
  StreamUnpackResult r = unpack_layer_stream(fd_reader(fd.get(), "blob " + blob), -1, staged.dir + "/diff", diff_id, true);
  if (r.input_digest != blob_digest) throw Error("layer " + diff_id + ": blob " + blob + " has digest " + r.input_digest + ", not " + blob_digest);
  if (r.diff_id != diff_id) throw Error("layer " + diff_id + ": DiffID mismatch: unpacked from blob " + blob_digest + " it has digest " + r.diff_id);
  staged.blob = LayerBlob{blob_digest, media_type, r.input_size};
  staged.content_size = r.content_size;
  staged.tar_size = r.tar_size;
  write_layer_meta(staged);
  UniqueFd work_fd(::open(work.path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!work_fd || ::syncfs(work_fd.get()) != 0) throw_errno("cannot flush layer " + diff_id + " to disk");
  std::string old = work.next_name("torn-");
  if (::rename(dest.c_str(), old.c_str()) != 0) throw_errno("cannot move " + dest + " aside");
  if (::rename(staged.dir.c_str(), dest.c_str()) != 0) throw_errno("cannot move the rebuilt layer into " + dest);
  UniqueFd layers(::open(path_dirname(dest).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!layers || ::fsync(layers.get()) != 0) throw_errno("cannot flush " + path_dirname(dest) + " to disk");
}

}  // namespace

std::vector<std::string> unsynced_records_of_this_boot(const std::string& store_dir) {
  std::vector<std::string> out;
  const std::string boot = current_boot_id();
  for (auto& r : read_records(store_dir))
    if (r.boot_id == boot) out.push_back(r.path);
  return out;
}

void forget_unsynced_records(const std::vector<std::string>& paths) {
  for (auto& p : paths) ::unlink(p.c_str());
}

}  // namespace detail

using namespace detail;

bool has_unsynced_layers(const std::string& root) {
  DIR* d = ::opendir((root + "/image/unsynced").c_str());
  if (!d) return false;
  bool any = false;
  while (dirent* e = ::readdir(d))
    if (is_record_name(e->d_name)) {
      any = true;
      break;
    }
  ::closedir(d);
  return any;
}

void recover_unsynced_layers(const std::string& root, Settle settle) {
  const std::string store_dir = root + "/image";
  std::vector<Record> records = read_records(store_dir);  // no records (the common case): one failed opendir
  if (records.empty()) return;
  const std::string boot = current_boot_id();
  auto settles = [&](const Record& r) { return settle == Settle::All || (settle == Settle::Old && r.age >= kSettleAge); };
  auto needs_work = [&](const Record& r) { return r.boot_id != boot || settles(r); };
  bool any = false;
  for (auto& r : records) any = any || needs_work(r);
  if (!any) return;
  StoreLock lock(store_dir, true);
  records = read_records(store_dir);  // another process may have done it meanwhile
  std::vector<std::string> settled;
  for (auto& r : records) {
    if (r.boot_id == boot) {
      if (settles(r)) settled.push_back(r.path);
      continue;
    }
    for (auto& l : r.layers) {
      if (!l.is_object() || !l.contains("diff_id") || !l.contains("blob") || !l["diff_id"].is_string() || !l["blob"].is_string()) continue;
      std::string diff_id = l["diff_id"].get<std::string>();
      try {
        rebuild_layer(store_dir, diff_id, l["blob"].get<std::string>(), l.value("media_type", std::string()));
      } catch (const Error& e) {
        // Its files cannot be trusted and cannot be made again: the layer
        // goes (see rebuild_layer) rather than block every command.
        spdlog::warn("cannot rebuild layer {}: {}; removing it: pull its images again", diff_id, e.what());
        remove_tree(layer_path(store_dir, diff_id));
      }
    }
    ::unlink(r.path.c_str());
  }
  if (settled.empty()) return;
  UniqueFd fd(::open(store_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd || ::syncfs(fd.get()) != 0) {
    // Left as they are: the next boot rebuilds those layers from their blobs.
    spdlog::warn("cannot flush the image store {} to disk: {}", store_dir, std::strerror(errno));
    return;
  }
  for (auto& p : settled) ::unlink(p.c_str());
}

}  // namespace berth::images
