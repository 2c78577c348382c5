// load and save: the Docker image archive (`docker save`: manifest.json,
// repositories, config and layer tars) and the OCI image layout archive
// (oci-layout, index.json, blobs/sha256/...).
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <system_error>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/write_all.h"
#include "images/digest.h"
#include "images/images.h"
#include "images/store_internal.h"
#include "images/tar_writer.h"
#include "images/unpack.h"

namespace berth::images {

using namespace detail;

namespace {

constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
constexpr const char* kOciLayerTar = "application/vnd.oci.image.layer.v1.tar";
constexpr const char* kDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr const char* kRefNameAnnotation = "org.opencontainers.image.ref.name";
constexpr const char* kContainerdNameAnnotation = "io.containerd.image.name";

struct ArchiveFile {
  std::string path;          // where it was extracted
  std::string digest;        // sha256 of its content
  uint64_t size = 0;
};

// The outer archive, extracted file by file into a work dir. Names are kept
// in a map, never used as paths, so the archive cannot write anywhere else.
struct ExtractedArchive {
  std::map<std::string, ArchiveFile> files;
  std::map<std::string, std::string> links;  // name -> target name (symlinks and hardlinks)

  const ArchiveFile* find(std::string name) const {
    for (int hops = 0; hops < 16; ++hops) {
      if (auto it = files.find(name); it != files.end()) return &it->second;
      auto link = links.find(name);
      if (link == links.end()) return nullptr;
      name = link->second;
    }
    return nullptr;
  }
  std::string text(const std::string& name, const std::string& what) const {
    const ArchiveFile* f = find(name);
    if (!f) throw Error(what + " \"" + name + "\" is not in the archive");
    return read_file(f->path);
  }
};

// Lexically normalizes an archive name; "" when it would leave the archive.
std::string normalize_name(const std::string& raw) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= raw.size()) {
    size_t slash = raw.find('/', start);
    std::string part = raw.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part == "..") {
      if (parts.empty()) return "";
      parts.pop_back();
    } else if (!part.empty() && part != ".") {
      parts.push_back(part);
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  std::string out;
  for (auto& p : parts) out += (out.empty() ? "" : "/") + p;
  return out;
}

struct CountingReader {
  int fd;
  uint64_t bytes = 0;
  uint64_t last = 0;
  const ProgressFn* progress;
  std::vector<char> buffer = std::vector<char>(1 << 20);
  int error = 0;
  static la_ssize_t read(archive*, void* p, const void** out) {
    auto* self = static_cast<CountingReader*>(p);
    for (;;) {
      ssize_t n = ::read(self->fd, self->buffer.data(), self->buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        self->error = errno;
        return -1;
      }
      self->bytes += static_cast<uint64_t>(n);
      if (*self->progress && self->bytes - self->last >= (8u << 20)) {
        self->last = self->bytes;
        (*self->progress)(ProgressEvent{ProgressEvent::Kind::Advance, "Reading archive", "", self->bytes, 0});
      }
      *out = self->buffer.data();
      return n;
    }
  }
};

ExtractedArchive extract_archive(int fd, WorkDir& work, const ProgressFn& progress) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  CountingReader reader{fd, 0, 0, &progress};
  auto fail = [&](const std::string& what) -> Error {
    std::string why = reader.error ? Error::errno_text(reader.error)
                                   : (archive_error_string(a.get()) ? archive_error_string(a.get()) : "unknown error");
    return Error(what + ": " + why);
  };
  if (archive_read_open(a.get(), &reader, nullptr, &CountingReader::read, nullptr) != ARCHIVE_OK)
    throw fail("cannot read image archive");
  ExtractedArchive out;
  std::vector<char> unused;
  for (;;) {
    archive_entry* e = nullptr;
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) throw fail(out.files.empty() ? "not an image archive (tar)" : "image archive is corrupt");
    std::string raw = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
    if (!raw.empty() && raw[0] == '/') throw Error("image archive entry \"" + raw + "\": absolute path");
    std::string name = normalize_name(raw);
    if (name.empty()) {
      if (raw.find("..") != std::string::npos) throw Error("image archive entry \"" + raw + "\": path escapes the archive");
      continue;
    }
    if (const char* hl = archive_entry_hardlink(e)) {
      out.links[name] = normalize_name(hl);
      continue;
    }
    mode_t type = archive_entry_filetype(e);
    if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink(e);
      std::string t = target ? target : "";
      // Resolved inside the archive's own namespace; absolute targets point nowhere.
      if (!t.empty() && t[0] != '/') out.links[name] = normalize_name(path_dirname("/" + name).substr(1) + "/" + t);
      continue;
    }
    if (type != AE_IFREG) continue;
    ArchiveFile f;
    f.path = work.next_name("file-");
    UniqueFd dst(::open(f.path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!dst) throw_errno("cannot create " + f.path);
    Sha256 hash;
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    auto keep = [&](const void* data, size_t len, la_int64_t at) {
      hash.update(data, len);
      if (!berth::pwrite_all(dst.get(), static_cast<const char*>(data), len, static_cast<uint64_t>(at))) throw_errno("cannot write " + f.path);
      f.size += len;
    };
    for (;;) {
      int rr = archive_read_data_block(a.get(), &block, &size, &offset);
      if (rr == ARCHIVE_EOF) break;
      if (rr < ARCHIVE_WARN) throw fail("image archive entry \"" + name + "\" is truncated or corrupt");
      keep(block, size, offset);
    }
    f.digest = hash.finish();
    out.files[name] = std::move(f);
  }
  return out;
}

nlohmann::json parse_json(const std::string& text, const std::string& what) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": malformed JSON: " + e.what());
  }
}

// One image to load: its config and, bottom first, its layer files.
struct PendingImage {
  std::string config_bytes;
  std::vector<std::string> diff_ids;
  std::vector<const ArchiveFile*> layer_files;
  std::vector<std::string> layer_names;  // for error messages
  std::vector<std::string> tags;         // full references
};

std::vector<std::string> config_diff_ids(const std::string& config_bytes, const std::string& what) {
  nlohmann::json config = parse_json(config_bytes, what);
  std::vector<std::string> out;
  if (!config.is_object() || !config.contains("rootfs") || !config["rootfs"].is_object() ||
      !config["rootfs"].contains("diff_ids") || !config["rootfs"]["diff_ids"].is_array())
    throw Error(what + ": no rootfs.diff_ids");
  for (auto& d : config["rootfs"]["diff_ids"]) {
    if (!d.is_string() || !is_sha256_digest(d.get<std::string>())) throw Error(what + ": bad DiffID " + d.dump());
    out.push_back(d.get<std::string>());
  }
  return out;
}

std::vector<PendingImage> read_docker_archive(const ExtractedArchive& ar) {
  nlohmann::json manifest = parse_json(ar.text("manifest.json", "file"), "manifest.json");
  if (!manifest.is_array()) throw Error("manifest.json: malformed: want a JSON array of images");
  std::vector<PendingImage> out;
  for (auto& m : manifest) {
    if (!m.is_object() || !m.contains("Config") || !m["Config"].is_string() || !m.contains("Layers") || !m["Layers"].is_array())
      throw Error("manifest.json: malformed: every entry needs \"Config\" and \"Layers\"");
    PendingImage img;
    std::string config_name = normalize_name(m["Config"].get<std::string>());
    const ArchiveFile* config = ar.find(config_name);
    if (!config) throw Error("manifest.json: config \"" + m["Config"].get<std::string>() + "\" is not in the archive");
    img.config_bytes = read_file(config->path);
    img.diff_ids = config_diff_ids(img.config_bytes, "config " + config_name);
    if (img.diff_ids.size() != m["Layers"].size())
      throw Error("manifest.json: " + config_name + " lists " + std::to_string(img.diff_ids.size()) + " DiffIDs but the manifest has " +
                  std::to_string(m["Layers"].size()) + " layers");
    for (auto& l : m["Layers"]) {
      if (!l.is_string()) throw Error("manifest.json: malformed: a layer is not a file name");
      std::string name = normalize_name(l.get<std::string>());
      const ArchiveFile* f = ar.find(name);
      if (!f) throw Error("manifest.json: layer \"" + l.get<std::string>() + "\" is not in the archive");
      img.layer_files.push_back(f);
      img.layer_names.push_back(name);
    }
    if (m.contains("RepoTags") && m["RepoTags"].is_array())
      for (auto& t : m["RepoTags"]) {
        if (!t.is_string()) continue;
        img.tags.push_back(parse_reference(t.get<std::string>()).full());
      }
    out.push_back(std::move(img));
  }
  return out;
}

// A blob named by a descriptor, verified: present, right digest, right size.
const ArchiveFile& oci_blob(const ExtractedArchive& ar, const nlohmann::json& descriptor, const std::string& what) {
  if (!descriptor.is_object() || !descriptor.contains("digest") || !descriptor["digest"].is_string())
    throw Error(what + ": malformed descriptor " + descriptor.dump());
  std::string digest = descriptor["digest"].get<std::string>();
  if (!is_sha256_digest(digest)) throw Error(what + ": unsupported digest \"" + digest + "\"");
  std::string name = "blobs/sha256/" + digest.substr(7);
  const ArchiveFile* f = ar.find(name);
  if (!f) throw Error(what + ": blob " + digest + " is not in the archive (" + name + ")");
  if (f->digest != digest) throw Error(what + ": blob " + digest + " digest mismatch: its content has digest " + f->digest);
  if (descriptor.contains("size") && descriptor["size"].is_number_unsigned() && descriptor["size"].get<uint64_t>() != f->size)
    throw Error(what + ": blob " + digest + " size mismatch: descriptor says " + std::to_string(descriptor["size"].get<uint64_t>()) +
                ", file has " + std::to_string(f->size));
  return *f;
}

void read_oci_manifest(const ExtractedArchive& ar, const nlohmann::json& descriptor, std::vector<std::string> tags,
                       std::vector<PendingImage>& out, int depth) {
  if (depth > 4) throw Error("index.json: image indexes nested too deep");
  std::string media = descriptor.value("mediaType", "");
  const ArchiveFile& blob = oci_blob(ar, descriptor, "index.json");
  nlohmann::json doc = parse_json(read_file(blob.path), "manifest " + descriptor["digest"].get<std::string>());
  if (media == kOciIndex || media == kDockerManifestList || (doc.is_object() && doc.contains("manifests"))) {
    // A multi-platform index: take this host's platform, else the first entry.
    const nlohmann::json* chosen = nullptr;
    for (auto& m : doc.value("manifests", nlohmann::json::array())) {
      if (!chosen) chosen = &m;
      if (m.contains("platform") && m["platform"].value("os", "") == "linux" && m["platform"].value("architecture", "") == "amd64") {
        chosen = &m;
        break;
      }
    }
    if (!chosen) throw Error("image index " + descriptor["digest"].get<std::string>() + " lists no manifests");
    read_oci_manifest(ar, *chosen, tags, out, depth + 1);
    return;
  }
  std::string what = "manifest " + descriptor["digest"].get<std::string>();
  if (!doc.is_object() || !doc.contains("config") || !doc.contains("layers") || !doc["layers"].is_array())
    throw Error(what + ": malformed: needs \"config\" and \"layers\"");
  PendingImage img;
  img.config_bytes = read_file(oci_blob(ar, doc["config"], what).path);
  img.diff_ids = config_diff_ids(img.config_bytes, "config " + doc["config"].value("digest", ""));
  if (img.diff_ids.size() != doc["layers"].size())
    throw Error(what + ": config lists " + std::to_string(img.diff_ids.size()) + " DiffIDs but the manifest has " +
                std::to_string(doc["layers"].size()) + " layers");
  for (auto& l : doc["layers"]) {
    const ArchiveFile& f = oci_blob(ar, l, what);
    img.layer_files.push_back(&f);
    img.layer_names.push_back(l["digest"].get<std::string>());
  }
  img.tags = std::move(tags);
  out.push_back(std::move(img));
}

std::vector<PendingImage> read_oci_archive(const ExtractedArchive& ar) {
  nlohmann::json index = parse_json(ar.text("index.json", "file"), "index.json");
  if (!index.is_object() || !index.contains("manifests") || !index["manifests"].is_array())
    throw Error("index.json: malformed: no \"manifests\" array");
  std::vector<PendingImage> out;
  // Several descriptors may name the same manifest (one per tag): load it once.
  std::map<std::string, size_t> by_digest;
  for (auto& d : index["manifests"]) {
    std::vector<std::string> tags;
    if (d.contains("annotations") && d["annotations"].is_object()) {
      auto& ann = d["annotations"];
      std::string name = ann.value(kContainerdNameAnnotation, "");
      if (name.empty()) name = ann.value(kRefNameAnnotation, "");
      if (!name.empty()) {
        try {
          Reference ref = parse_reference(name);
          if (ref.digest.empty()) tags.push_back(ref.full());
        } catch (const Error&) {
          // A bare tag like "latest" names no repository; load the image untagged.
        }
      }
    }
    std::string digest = d.value("digest", "");
    if (auto it = by_digest.find(digest); it != by_digest.end()) {
      for (auto& t : tags) out[it->second].tags.push_back(t);
      continue;
    }
    read_oci_manifest(ar, d, tags, out, 0);
    by_digest[digest] = out.size() - 1;
  }
  return out;
}

}  // namespace

LoadResult Store::load(int fd, const ProgressFn& progress) {
  // The archive is read (and its layers unpacked) before taking the lock: the
  // input may be a pipe from `berth save` on this very store.
  WorkDir work(dir_, "load");
  spread_directories(work.path());
  ExtractedArchive ar = extract_archive(fd, work, progress);
  spdlog::debug("load: archive extracted ({} files)", ar.files.size());
  std::vector<PendingImage> images;
  if (ar.find("manifest.json"))
    images = read_docker_archive(ar);
  else if (ar.find("index.json"))
    images = read_oci_archive(ar);
  else
    throw Error("not an image archive: neither manifest.json (docker save) nor index.json (OCI layout) is in it");
  if (images.empty()) throw Error("the image archive holds no images");

  StoreLock lock(dir_, true);
  Index index = Index::read(dir_);
  // Verify and unpack every layer first; only then touch the store. Layers
  // are independent directories, so they unpack in parallel: creating many
  // small files is bound by filesystem latency, not by one CPU.
  std::vector<std::pair<std::string, const ArchiveFile*>> todo;
  std::set<std::string> seen;
  for (auto& img : images)
    for (size_t i = 0; i < img.diff_ids.size(); ++i)
      if (seen.insert(img.diff_ids[i]).second) todo.emplace_back(img.diff_ids[i], img.layer_files[i]);
  std::mutex progress_mutex;
  ProgressFn serialized;
  if (progress)
    serialized = [&](const ProgressEvent& ev) {
      std::lock_guard<std::mutex> guard(progress_mutex);
      progress(ev);
    };
  std::vector<StagedLayer> results(todo.size());
  std::vector<std::exception_ptr> failures(todo.size());
  std::atomic<size_t> next_layer{0};
  auto worker = [&] {
    for (size_t i; (i = next_layer++) < todo.size();) {
      try {
        results[i] = stage_layer(dir_, work, todo[i].second->path, todo[i].second->digest, todo[i].first, serialized);
      } catch (...) {
        failures[i] = std::current_exception();
        next_layer = todo.size();  // no point starting more
      }
    }
  };
  size_t threads = std::min<size_t>(todo.size(), std::max(2u, std::min(4u, std::thread::hardware_concurrency())));
  std::vector<std::thread> pool;
  try {
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  } catch (const std::system_error&) {
    // No more threads to be had (a pids limit): those running take all the layers.
  }
  worker();
  for (auto& t : pool) t.join();
  for (auto& f : failures)
    if (f) std::rethrow_exception(f);
  std::map<std::string, StagedLayer> staged;
  for (size_t i = 0; i < todo.size(); ++i) staged[todo[i].first] = std::move(results[i]);
  spdlog::debug("load: {} layers verified and unpacked", staged.size());
  std::vector<const StagedLayer*> to_commit;
  for (auto& [d, layer] : staged) to_commit.push_back(&layer);
  commit_layers(dir_, to_commit);
  LoadResult result;
  for (auto& img : images) {
    std::string id = register_image(dir_, index, img.config_bytes, img.tags);
    if (img.tags.empty()) result.untagged.push_back(id);
    for (auto& t : img.tags) result.tagged.push_back(familiar_name(t));
  }
  index.write(dir_);
  spdlog::debug("load: committed");
  return result;
}

void Store::save(const std::vector<std::string>& names, ArchiveFormat format, int out_fd, const ProgressFn& progress) {
  if (names.empty()) throw UsageError("save: name at least one image");
  StoreLock lock(dir_, false);
  Index index = Index::read(dir_);
  // Image ID -> the tags to write for it, in the order first named.
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::string>> tags;
  for (auto& name : names) {
    std::string id = resolve_in_index(index, name);
    if (!tags.count(id)) {
      order.push_back(id);
      tags[id];
    }
    try {
      Reference ref = parse_reference(name);
      if (ref.digest.empty() && index.tags.count(ref.full()) && index.tags.at(ref.full()) == id) {
        auto& list = tags[id];
        if (std::find(list.begin(), list.end(), ref.full()) == list.end()) list.push_back(ref.full());
      }
    } catch (const Error&) {
    }
  }

  TarWriter tar(out_fd);
  tar.add_directory("blobs/");
  tar.add_directory("blobs/sha256/");
  std::set<std::string> written;
  nlohmann::json docker_manifest = nlohmann::json::array();
  nlohmann::json repositories = nlohmann::json::object();
  nlohmann::json oci_index = {{"schemaVersion", 2}, {"mediaType", kOciIndex}, {"manifests", nlohmann::json::array()}};
  for (auto& id : order) {
    const ImageRecord& rec = index.images.at(id);
    nlohmann::json layers = nlohmann::json::array(), layer_paths = nlohmann::json::array();
    for (auto& d : rec.diff_ids) {
      LayerMeta meta = read_layer_meta(dir_, d);
      // The Docker format names uncompressed tars by DiffID: a compressed
      // blob is decompressed into the archive, its DiffID verified on the
      // way. The OCI layout carries the blob as stored, with its media type.
      bool inflate = format == ArchiveFormat::Docker && meta.blob.compressed();
      const std::string& digest = inflate ? d : meta.blob.digest;
      uint64_t size = inflate ? meta.tar_size : meta.blob.size;
      std::string name = "blobs/sha256/" + digest_hex(digest);
      layers.push_back({{"mediaType", inflate ? kOciLayerTar : meta.blob.media_type}, {"digest", digest}, {"size", size}});
      layer_paths.push_back(name);
      if (!written.insert(digest).second) continue;
      std::string shown = short_id(d);
      auto advance = [&](uint64_t done) {
        if (progress) progress(ProgressEvent{ProgressEvent::Kind::Advance, "Saving layer", shown, done, size});
      };
      if (progress) progress(ProgressEvent{ProgressEvent::Kind::Start, "Saving layer", shown, 0, size});
      if (!inflate) {
        tar.add_file(name, blob_path(dir_, digest), advance);
      } else {
        std::string blob = blob_path(dir_, meta.blob.digest);
        tar.add_stream(name, size, [&](int fd) {
          UniqueFd in(::open(blob.c_str(), O_RDONLY | O_CLOEXEC));
          if (!in) throw_errno("cannot open " + blob);
          DecompressResult r = decompress_stream(in.get(), fd, "layer " + d + " (blob " + meta.blob.digest + ")", [&](uint64_t done) {
            advance(meta.blob.size ? done * size / meta.blob.size : done);
          });
          if (r.diff_id != d || r.output_size != size)
            throw Error("layer " + d + ": its stored blob " + meta.blob.digest + " decompresses to " + std::to_string(r.output_size) +
                        " bytes with digest " + r.diff_id + ", not the layer's DiffID and size (" + std::to_string(size) +
                        " bytes): the store is damaged");
          return r.output_size;
        });
      }
      if (progress) progress(ProgressEvent{ProgressEvent::Kind::Done, "Saving layer", shown, size, size});
    }
    std::string config = read_file(blob_path(dir_, id));
    if (written.insert(id).second) tar.add_bytes("blobs/sha256/" + digest_hex(id), config);
    nlohmann::json manifest = {{"schemaVersion", 2},
                               {"mediaType", kOciManifest},
                               {"config", {{"mediaType", kOciConfig}, {"digest", id}, {"size", config.size()}}},
                               {"layers", layers}};
    std::string manifest_bytes = manifest.dump();
    std::string manifest_digest = sha256_digest(manifest_bytes);
    if (written.insert(manifest_digest).second) tar.add_bytes("blobs/sha256/" + digest_hex(manifest_digest), manifest_bytes);
    nlohmann::json descriptor = {{"mediaType", kOciManifest}, {"digest", manifest_digest}, {"size", manifest_bytes.size()}};
    nlohmann::json repo_tags = nlohmann::json::array();
    if (tags[id].empty()) oci_index["manifests"].push_back(descriptor);
    for (auto& t : tags[id]) {
      Reference ref = parse_reference(t);
      nlohmann::json tagged = descriptor;
      tagged["annotations"] = {{kContainerdNameAnnotation, ref.full()}, {kRefNameAnnotation, ref.tag}};
      oci_index["manifests"].push_back(tagged);
      repo_tags.push_back(ref.familiar());
      if (!rec.diff_ids.empty()) repositories[ref.familiar_repository()][ref.tag] = digest_hex(rec.diff_ids.back());
    }
    docker_manifest.push_back({{"Config", "blobs/sha256/" + digest_hex(id)},
                               {"RepoTags", repo_tags.empty() ? nlohmann::json(nullptr) : repo_tags},
                               {"Layers", layer_paths}});
  }
  tar.add_bytes("index.json", oci_index.dump() + "\n");
  if (format == ArchiveFormat::Docker) {
    tar.add_bytes("manifest.json", docker_manifest.dump() + "\n");
    if (!repositories.empty()) tar.add_bytes("repositories", repositories.dump() + "\n");
  }
  tar.add_bytes("oci-layout", "{\"imageLayoutVersion\":\"1.0.0\"}");
  tar.finish();
}

}  // namespace berth::images
