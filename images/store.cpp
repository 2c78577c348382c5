#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <random>
#include <set>

#include "base/error.h"
#include "base/fs.h"
#include "base/time.h"
#include "base/log.h"
#include "base/write_all.h"
#include "images/digest.h"
#include "images/images.h"
#include "images/store_internal.h"
#include "images/unpack.h"

namespace berth::images {

namespace detail {

// ---- lock ---------------------------------------------------------------

StoreLock::StoreLock(const std::string& store_dir, bool exclusive) {
  std::string path = store_dir + "/lock";
  fd_ = UniqueFd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd_) throw_errno("cannot open image store lock " + path);
  while (::flock(fd_.get(), exclusive ? LOCK_EX : LOCK_SH) != 0) {
    if (errno != EINTR) throw_errno("cannot lock image store " + path);
  }
  if (exclusive) {
    // Work dirs are named <purpose>-<pid>-<random>. Loads fill theirs before
    // taking the lock (so `berth save | berth load` on one root cannot
    // deadlock); a work dir whose process is gone was left by a crash.
    std::string tmp = store_dir + "/tmp";
    if (DIR* d = ::opendir(tmp.c_str())) {
      std::vector<std::string> names;
      while (dirent* e = ::readdir(d))
        if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) names.push_back(e->d_name);
      ::closedir(d);
      for (auto& n : names) {
        size_t first = n.find('-'), second = n.find('-', first == std::string::npos ? 0 : first + 1);
        if (first != std::string::npos && second != std::string::npos) {
          pid_t pid = static_cast<pid_t>(std::atol(n.substr(first + 1, second - first - 1).c_str()));
          if (pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM)) continue;  // still at work
        }
        remove_tree(tmp + "/" + n);
      }
    }
  }
}

// ---- index --------------------------------------------------------------

Index Index::read(const std::string& store_dir) {
  Index index;
  std::string text;
  std::string path = store_dir + "/index.json";
  if (!read_file_if_exists(path, text)) return index;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
    nlohmann::json images = j.value("images", nlohmann::json::object());
    for (auto& [id, r] : images.items()) {
      ImageRecord rec;
      rec.diff_ids = r.value("diff_ids", std::vector<std::string>{});
      rec.repo_digests = r.value("repo_digests", std::vector<std::string>{});
      rec.created = r.value("created", "");
      rec.size = r.value("size", uint64_t{0});
      rec.last_tag_time = r.value("last_tag_time", "");
      index.images[id] = std::move(rec);
    }
    index.tags = j.value("tags", std::map<std::string, std::string>{});
    index.holders = j.value("holders", std::map<std::string, std::string>{});
    index.pending_layers = j.value("pending_layers", std::map<std::string, std::string>{});
  } catch (const nlohmann::json::exception& e) {
    throw Error("image store index " + path + " is corrupt: " + e.what());
  }
  index.hold_files = read_hold_files(store_dir);
  return index;
}

std::string holds_dir(const std::string& store_dir) { return store_dir + "/holds"; }

std::map<std::string, std::string> read_hold_files(const std::string& store_dir) {
  std::map<std::string, std::string> out;
  DIR* d = ::opendir(holds_dir(store_dir).c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    size_t dot = n.rfind('.');
    if (dot == std::string::npos || dot == 0 || n.size() - dot - 1 != 64) continue;
    out[n.substr(0, dot)] = "sha256:" + n.substr(dot + 1);
  }
  ::closedir(d);
  return out;
}

void Index::write(const std::string& store_dir) const {
  nlohmann::json j;
  j["images"] = nlohmann::json::object();
  for (auto& [id, r] : images)
    j["images"][id] = {{"diff_ids", r.diff_ids},
                       {"repo_digests", r.repo_digests},
                       {"created", r.created},
                       {"size", r.size},
                       {"last_tag_time", r.last_tag_time}};
  j["tags"] = tags;
  j["holders"] = holders;
  j["pending_layers"] = pending_layers;
  write_file_atomic(store_dir + "/index.json", j.dump(1) + "\n", 0600);
}

std::vector<std::string> Index::tags_of(const std::string& id) const {
  std::vector<std::string> out;
  for (auto& [ref, target] : tags)
    if (target == id) out.push_back(ref);
  return out;
}

std::vector<std::string> Index::holders_of(const std::string& id) const {
  std::set<std::string> out;
  for (auto* m : {&hold_files, &holders})
    for (auto& [holder, target] : *m)
      if (target == id) out.insert(holder);
  return {out.begin(), out.end()};
}

// ---- paths --------------------------------------------------------------

WorkDir::WorkDir(const std::string& store_dir, const std::string& purpose) {
  std::random_device rd;
  path_ = store_dir + "/tmp/" + purpose + "-" + std::to_string(::getpid()) + "-" + std::to_string(rd());
  if (::mkdir(path_.c_str(), 0700) != 0) throw_errno("cannot create " + path_);
}

WorkDir::~WorkDir() {
  try {
    remove_tree(path_);
  } catch (const std::exception& e) {
    spdlog::warn("{}", e.what());
  }
}

std::string blob_path(const std::string& store_dir, const std::string& digest) {
  return store_dir + "/blobs/sha256/" + digest_hex(digest);
}
std::string layer_path(const std::string& store_dir, const std::string& diff_id) {
  return store_dir + "/layers/" + digest_hex(diff_id);
}
const char* const kLayerTar = "application/vnd.oci.image.layer.v1.tar";
const char* const kLayerTarGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
const char* const kLayerTarZstd = "application/vnd.oci.image.layer.v1.tar+zstd";

std::string layer_media_type(Compression c) {
  switch (c) {
    case Compression::None: return kLayerTar;
    case Compression::Gzip: return kLayerTarGzip;
    case Compression::Zstd: return kLayerTarZstd;
    default: return "";
  }
}

// The meta.json of a layer, parsed; an empty object when absent or unreadable.
static nlohmann::json layer_meta(const std::string& store_dir, const std::string& diff_id) {
  std::string text;
  if (!read_file_if_exists(layer_path(store_dir, diff_id) + "/meta.json", text)) return nlohmann::json();
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    return j.is_object() ? j : nlohmann::json::object();
  } catch (const nlohmann::json::exception&) {
    return nlohmann::json::object();
  }
}
// The blob digest meta names: its "blob" (berth stores the blob as it
// arrived), else the DiffID (older berth kept the uncompressed tar).
static std::string meta_blob_digest(const nlohmann::json& meta, const std::string& diff_id) {
  if (meta.contains("blob") && meta["blob"].is_object()) {
    std::string d = meta["blob"].value("digest", "");
    if (is_sha256_digest(d)) return d;
  }
  return diff_id;
}
bool layer_exists(const std::string& store_dir, const std::string& diff_id) {
  nlohmann::json meta = layer_meta(store_dir, diff_id);
  return !meta.is_null() && path_exists(blob_path(store_dir, meta_blob_digest(meta, diff_id)));
}
uint64_t layer_content_size(const std::string& store_dir, const std::string& diff_id) {
  nlohmann::json meta = layer_meta(store_dir, diff_id);
  return meta.is_object() ? meta.value("size", uint64_t{0}) : 0;
}
LayerMeta read_layer_meta(const std::string& store_dir, const std::string& diff_id) {
  nlohmann::json meta = layer_meta(store_dir, diff_id);
  if (meta.is_null()) throw Error("layer " + diff_id + " is not in the store (no " + layer_path(store_dir, diff_id) + "/meta.json)");
  LayerMeta out;
  out.diff_id = diff_id;
  out.content_size = meta.value("size", uint64_t{0});
  out.tar_size = meta.value("tar_size", uint64_t{0});
  out.blob.digest = meta_blob_digest(meta, diff_id);
  struct stat st {};
  std::string file = blob_path(store_dir, out.blob.digest);
  if (::stat(file.c_str(), &st) != 0) throw_errno("layer " + diff_id + " is missing its blob " + file);
  out.blob.size = static_cast<uint64_t>(st.st_size);
  if (out.blob.digest == diff_id) {
    out.blob.media_type = kLayerTar;
    out.tar_size = out.blob.size;
  } else {
    out.blob.media_type = meta["blob"].value("media_type", "");
    if (out.blob.media_type.empty()) throw Error("layer " + diff_id + ": meta.json names blob " + out.blob.digest + " without its media type");
    if (out.tar_size == 0) throw Error("layer " + diff_id + ": meta.json has no tar_size for its compressed blob " + out.blob.digest);
  }
  return out;
}

std::string short_id(const std::string& digest) {
  std::string hex = digest.rfind("sha256:", 0) == 0 ? digest.substr(7) : digest;
  return hex.substr(0, 12);
}

std::string now_rfc3339() { return now_rfc3339_nano(); }

int64_t parse_rfc3339(const std::string& text) {
  std::tm tm{};
  const char* rest = ::strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!rest) return 0;
  int64_t t = ::timegm(&tm);
  while (*rest == '.' || (*rest >= '0' && *rest <= '9')) ++rest;
  if ((*rest == '+' || *rest == '-') && std::strlen(rest) >= 6) {
    int hours = std::atoi(std::string(rest + 1, 2).c_str());
    int minutes = std::atoi(std::string(rest + 4, 2).c_str());
    int64_t offset = hours * 3600 + minutes * 60;
    t += *rest == '+' ? -offset : offset;
  }
  return t;
}

// ---- layers -------------------------------------------------------------

static void emit(const ProgressFn& progress, ProgressEvent::Kind kind, const std::string& action, const std::string& id,
                 uint64_t done, uint64_t total) {
  if (!progress) return;
  ProgressEvent ev;
  ev.kind = kind;
  ev.action = action;
  ev.id = id;
  ev.done = done;
  ev.total = total;
  progress(ev);
}

StagedLayer stage_layer(const std::string& store_dir, WorkDir& work, const std::string& src_path,
                        const std::string& known_digest, const std::string& expected_diff_id,
                        const ProgressFn& progress, const std::string& name) {
  StagedLayer staged;
  std::string label = !name.empty() ? name : expected_diff_id.empty() ? "layer" : "layer " + expected_diff_id;
  std::string unnamed = !name.empty() ? name : "(new)";
  UniqueFd src(::open(src_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!src) throw_errno("cannot open " + src_path);
  struct stat st {};
  ::fstat(src.get(), &st);
  std::string shown = short_id(expected_diff_id.empty() ? (known_digest.empty() ? "sha256:new" : known_digest) : expected_diff_id);
  Compression compression = detect_compression(src.get());
  std::string media_type = layer_media_type(compression);
  uint64_t total = static_cast<uint64_t>(st.st_size);
  // A layer the store has already: nothing to unpack.
  auto already_stored = [&](const std::string& diff_id) {
    staged.diff_id = diff_id;
    staged.already_stored = true;
    emit(progress, ProgressEvent::Kind::AlreadyExists, "Loading layer", shown, 0, 0);
    return staged;
  };
  // The work dir the layer unpacks into.
  auto start_unpack = [&] {
    staged.dir = work.next_name("layer-");
    make_dirs(staged.dir + "/diff");
    ::chmod((staged.dir + "/diff").c_str(), 0755);
    emit(progress, ProgressEvent::Kind::Start, "Loading layer", shown, 0, total);
  };
  std::string blob_file = src_path;
  std::string diff_id;
  if (compression == Compression::Gzip || compression == Compression::Zstd) {
    // Kept as it arrived: the compressed file becomes the blob, and the
    // layer unpacks from it in one pass that also hashes the DiffID.
    if (!expected_diff_id.empty() && layer_exists(store_dir, expected_diff_id)) return already_stored(expected_diff_id);
    start_unpack();
    StreamUnpackResult r = unpack_layer_stream(
        fd_reader(src.get(), src_path), -1, staged.dir + "/diff", expected_diff_id.empty() ? unnamed : expected_diff_id, known_digest.empty(),
        [&](uint64_t done) { emit(progress, ProgressEvent::Kind::Advance, "Loading layer", shown, done, total); });
    if (!expected_diff_id.empty() && r.diff_id != expected_diff_id)
      throw Error("layer " + expected_diff_id + ": DiffID mismatch: the layer content has digest " + r.diff_id);
    staged.diff_id = r.diff_id;
    staged.blob_file = src_path;
    staged.blob = LayerBlob{known_digest.empty() ? r.input_digest : known_digest, media_type, static_cast<uint64_t>(st.st_size)};
    staged.content_size = r.content_size;
    staged.tar_size = r.tar_size;
    emit(progress, ProgressEvent::Kind::Done, "Loading layer", shown, total, total);
    if (layer_exists(store_dir, staged.diff_id)) staged.already_stored = true;
    return staged;
  }
  if (compression != Compression::None) {
    // bzip2 and xz have no OCI media type: such a layer is stored as its tar.
    blob_file = work.next_name("decompressed-");
    UniqueFd out(::open(blob_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!out) throw_errno("cannot create " + blob_file);
    DecompressResult r = decompress_stream(src.get(), out.get(), label, [&](uint64_t done) {
      emit(progress, ProgressEvent::Kind::Advance, "Decompressing layer", shown, done, static_cast<uint64_t>(st.st_size));
    });
    diff_id = r.diff_id;
    src = UniqueFd(::open(blob_file.c_str(), O_RDONLY | O_CLOEXEC));
    if (!src) throw_errno("cannot open " + blob_file);
    ::fstat(src.get(), &st);
    ::unlink(src_path.c_str());  // the compressed copy is no longer needed; frees disk early
  } else if (!known_digest.empty()) {
    diff_id = known_digest;
  }
  if (!expected_diff_id.empty() && !diff_id.empty() && diff_id != expected_diff_id)
    throw Error("layer " + expected_diff_id + ": DiffID mismatch: the layer content has digest " + diff_id);
  if (!diff_id.empty() && layer_exists(store_dir, diff_id)) return already_stored(diff_id);
  total = static_cast<uint64_t>(st.st_size);  // the decompressed tar's, when it was decompressed
  start_unpack();
  // The bytes were hashed already when the digest is known: the tar in our
  // work dir is private to us, so unpacking need not hash it again.
  UnpackResult r = unpack_layer(src.get(), staged.dir + "/diff", expected_diff_id.empty() ? (diff_id.empty() ? unnamed : diff_id) : expected_diff_id,
                                [&](uint64_t done) { emit(progress, ProgressEvent::Kind::Advance, "Loading layer", shown, done, total); },
                                diff_id.empty());
  if (diff_id.empty()) {
    diff_id = r.diff_id;
    if (!expected_diff_id.empty() && diff_id != expected_diff_id)
      throw Error("layer " + expected_diff_id + ": DiffID mismatch: the layer content has digest " + diff_id);
  }
  staged.diff_id = diff_id;
  staged.blob_file = blob_file;
  staged.blob = LayerBlob{diff_id, kLayerTar, r.tar_size};
  staged.content_size = r.content_size;
  staged.tar_size = r.tar_size;
  emit(progress, ProgressEvent::Kind::Done, "Loading layer", shown, total, total);
  if (layer_exists(store_dir, staged.diff_id)) staged.already_stored = true;
  return staged;
}

static void move_layer_into_store(const std::string& store_dir, const StagedLayer& layer);

void commit_layer(const std::string& store_dir, const StagedLayer& layer) { commit_layers(store_dir, {&layer}); }

void commit_layers(const std::string& store_dir, const std::vector<const StagedLayer*>& layers, bool tree_durable) {
  std::vector<const StagedLayer*> todo;
  for (auto* layer : layers)
    if (!layer->already_stored && !layer_exists(store_dir, layer->diff_id)) todo.push_back(layer);
  if (todo.empty()) return;
  // The layers' files, blobs and meta.json reach the disk before anything
  // names them: after a power cut the index never points at a half-written
  // layer. One syncfs flushes every staged layer at once (no fsync per
  // meta.json: that was two journal commits a layer). A pull's trees are
  // recorded as unsynced instead: their blobs, durable, can make them again.
  for (auto* layer : todo) write_layer_meta(*layer);
  if (tree_durable || !record_unsynced(store_dir, todo)) {
    // This syncfs also settles what earlier pulls of this boot left unsynced.
    std::vector<std::string> settled = unsynced_records_of_this_boot(store_dir);
    UniqueFd fd(::open(todo.front()->dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd || ::syncfs(fd.get()) != 0) throw_errno("cannot flush layer " + todo.front()->diff_id + " to disk");
    forget_unsynced_records(settled);
  }
  for (auto* layer : todo) move_layer_into_store(store_dir, *layer);
  // The renames reach the disk before the index the caller writes next names the layers.
  for (const char* sub : {"blobs/sha256", "layers"}) {
    std::string d = store_dir + "/" + sub;
    UniqueFd fd(::open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd || ::fsync(fd.get()) != 0) throw_errno("cannot flush " + d + " to disk");
  }
}

void write_layer_meta(const StagedLayer& layer) {
  nlohmann::json meta = {{"diff_id", layer.diff_id}, {"size", layer.content_size}, {"tar_size", layer.tar_size}};
  meta["blob"] = {{"digest", layer.blob.digest}, {"media_type", layer.blob.media_type}, {"size", layer.blob.size}};
  std::string text = meta.dump() + "\n";
  std::string path = layer.dir + "/meta.json";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd || !write_all(fd.get(), text.data(), text.size()) || ::close(fd.release()) != 0) throw_errno("cannot write " + path);
}

// Renames the staged layer's blob and directory into the store.
static void move_layer_into_store(const std::string& store_dir, const StagedLayer& layer) {
  // The blob first: a layer directory in the store always has its blob
  // (a crash between the renames leaves a blob no layer names, swept by
  // the next rmi or prune).
  std::string blob = blob_path(store_dir, layer.blob.digest);
  if (::rename(layer.blob_file.c_str(), blob.c_str()) != 0) throw_errno("cannot move layer blob into " + blob);
  std::string dest = layer_path(store_dir, layer.diff_id);
  remove_tree(dest);  // a leftover of a crash between these renames
  if (::rename(layer.dir.c_str(), dest.c_str()) != 0) throw_errno("cannot move layer into " + dest);
}

std::string register_image(const std::string& store_dir, Index& index, const std::string& config_bytes,
                           const std::vector<std::string>& full_tags) {
  std::string id = sha256_digest(config_bytes);
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(config_bytes);
  } catch (const nlohmann::json::exception& e) {
    throw Error("image config " + id + " is not valid JSON: " + e.what());
  }
  std::string blob = blob_path(store_dir, id);
  if (!path_exists(blob)) write_file_atomic(blob, config_bytes, 0644);
  ImageRecord& rec = index.images[id];
  rec.diff_ids.clear();
  if (config.contains("rootfs") && config["rootfs"].contains("diff_ids"))
    for (auto& d : config["rootfs"]["diff_ids"]) rec.diff_ids.push_back(d.get<std::string>());
  rec.created = config.value("created", "");
  rec.size = 0;
  for (auto& d : rec.diff_ids) rec.size += layer_content_size(store_dir, d);
  for (auto& tag : full_tags) {
    index.tags[tag] = id;
    rec.last_tag_time = now_rfc3339();
  }
  return id;
}

}  // namespace detail

using namespace detail;

// ---- Store --------------------------------------------------------------

Store::Store(std::string root) : dir_(path_join(root, "image")) {
  for (const char* sub : {"blobs/sha256", "layers", "tmp"}) make_dirs(path_join(dir_, sub), 0700);
}

// Resolution order as docker: a full ID, a reference (tag or digest), a unique ID prefix.
std::string detail::resolve_in_index(const Index& index, const std::string& name) {
  if (is_sha256_digest(name)) {
    if (index.images.count(name)) return name;
    throw Error("No such image: " + name);
  }
  try {
    Reference ref = parse_reference(name);
    if (!ref.digest.empty()) {
      for (auto& [id, rec] : index.images)
        for (auto& d : rec.repo_digests)
          if (d == ref.repository() + "@" + ref.digest) return id;
    } else if (auto it = index.tags.find(ref.full()); it != index.tags.end()) {
      return it->second;
    }
  } catch (const Error&) {
    // not a reference; maybe an ID prefix
  }
  std::string prefix = name.rfind("sha256:", 0) == 0 ? name.substr(7) : name;
  if (!prefix.empty() && prefix.find_first_not_of("0123456789abcdef") == std::string::npos) {
    std::string found;
    for (auto& [id, rec] : index.images)
      if (id.compare(7, prefix.size(), prefix) == 0) {
        if (!found.empty()) throw Error("ambiguous image ID prefix \"" + name + "\": matches several images");
        found = id;
      }
    if (!found.empty()) return found;
  }
  throw Error("No such image: " + name);
}

static ImageSummary summarize(const Index& index, const std::string& id) {
  const ImageRecord& rec = index.images.at(id);
  ImageSummary s;
  s.id = id;
  s.repo_tags = index.tags_of(id);
  s.repo_digests = rec.repo_digests;
  s.created = rec.created;
  s.created_unix = parse_rfc3339(rec.created);
  s.size = rec.size;
  s.diff_ids = rec.diff_ids;
  s.holders = index.holders_of(id);
  return s;
}

std::vector<ImageSummary> Store::list() const {
  StoreLock lock(dir_, false);
  Index index = Index::read(dir_);
  std::vector<ImageSummary> out;
  for (auto& [id, rec] : index.images) out.push_back(summarize(index, id));
  std::stable_sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.created_unix > b.created_unix; });
  return out;
}

std::string Store::resolve(const std::string& name) const {
  StoreLock lock(dir_, false);
  return resolve_in_index(Index::read(dir_), name);
}

ImageSummary Store::summary(const std::string& name) const {
  StoreLock lock(dir_, false);
  Index index = Index::read(dir_);
  return summarize(index, resolve_in_index(index, name));
}

std::string Store::config_bytes(const std::string& name) const {
  StoreLock lock(dir_, false);
  Index index = Index::read(dir_);
  return read_file(blob_path(dir_, resolve_in_index(index, name)));
}

// docker inspect shows every field of its container config struct, defaults included.
static nlohmann::json docker_container_config(const nlohmann::json& image_config) {
  nlohmann::json c = image_config.contains("config") && image_config["config"].is_object() ? image_config["config"] : nlohmann::json::object();
  static const std::pair<const char*, nlohmann::json> defaults[] = {
      {"Hostname", ""},      {"Domainname", ""},       {"User", ""},          {"AttachStdin", false}, {"AttachStdout", false},
      {"AttachStderr", false}, {"Tty", false},         {"OpenStdin", false},  {"StdinOnce", false},   {"Env", nullptr},
      {"Cmd", nullptr},      {"Image", ""},            {"Volumes", nullptr},  {"WorkingDir", ""},     {"Entrypoint", nullptr},
      {"OnBuild", nullptr},  {"Labels", nullptr}};
  for (auto& [key, value] : defaults)
    if (!c.contains(key)) c[key] = value;
  return c;
}

nlohmann::json Store::inspect(const std::string& name) const {
  StoreLock lock(dir_, false);
  Index index = Index::read(dir_);
  std::string id = resolve_in_index(index, name);
  ImageSummary s = summarize(index, id);
  nlohmann::json config = nlohmann::json::parse(read_file(blob_path(dir_, id)));
  nlohmann::json tags = nlohmann::json::array(), digests = nlohmann::json::array();
  for (auto& t : s.repo_tags) tags.push_back(familiar_name(t));
  for (auto& d : s.repo_digests) digests.push_back(familiar_name(d));
  std::string lower;
  for (auto it = s.diff_ids.rbegin(); it != s.diff_ids.rend(); ++it)
    lower += (lower.empty() ? "" : ":") + layer_path(dir_, *it) + "/diff";
  nlohmann::json j = {
      {"Id", id},
      {"RepoTags", tags},
      {"RepoDigests", digests},
      {"Parent", ""},
      {"Comment", config.value("comment", "")},
      {"Created", config.value("created", "")},
      {"DockerVersion", config.value("docker_version", "")},
      {"Author", config.value("author", "")},
      {"Config", docker_container_config(config)},
      {"Architecture", config.value("architecture", "")},
      {"Os", config.value("os", "")},
      {"Size", s.size},
      {"GraphDriver", {{"Name", "overlay"}, {"Data", {{"LowerDir", lower}}}}},
      {"RootFS", {{"Type", "layers"}, {"Layers", s.diff_ids}}},
      {"Metadata", {{"LastTagTime", index.images.at(id).last_tag_time.empty() ? "0001-01-01T00:00:00Z" : index.images.at(id).last_tag_time}}},
  };
  if (config.contains("variant")) j["Variant"] = config["variant"];
  return j;
}

void Store::tag(const std::string& source, const std::string& target) {
  Reference ref = parse_reference(target);
  if (!ref.digest.empty()) throw Error("tag: refusing to create a tag with a digest reference: " + target);
  StoreLock lock(dir_, true);
  Index index = Index::read(dir_);
  std::string id = resolve_in_index(index, source);
  index.tags[ref.full()] = id;
  index.images[id].last_tag_time = now_rfc3339();
  index.write(dir_);
}

// Deletes files of images no longer in the index: their config blobs, and
// every layer no remaining image (or pending commit) uses. Also sweeps what a
// crash may have left between the renames and the index write.
static void collect_garbage(const std::string& dir, const Index& index, RemoveReport& report) {
  std::set<std::string> live_blobs, live_layers;
  // A live layer keeps its blob: the one its meta names (as pulled), or
  // the tar named by its DiffID (older berth).
  auto keep_layer = [&](const std::string& d) {
    if (!live_layers.insert(digest_hex(d)).second) return;
    live_blobs.insert(digest_hex(d));
    live_blobs.insert(digest_hex(meta_blob_digest(layer_meta(dir, d), d)));
  };
  for (auto& [id, rec] : index.images) {
    live_blobs.insert(digest_hex(id));
    for (auto& d : rec.diff_ids) keep_layer(d);
  }
  for (auto& [d, when] : index.pending_layers) keep_layer(d);
  for (auto& hex : list_directory(dir + "/layers")) {
    if (live_layers.count(hex)) continue;
    report.reclaimed += layer_content_size(dir, "sha256:" + (hex.size() == 64 ? hex : std::string(64, '0')));
    remove_tree(dir + "/layers/" + hex);
    report.deleted.push_back("sha256:" + hex);
  }
  for (auto& hex : list_directory(dir + "/blobs/sha256")) {
    if (live_blobs.count(hex)) continue;
    if (::unlink((dir + "/blobs/sha256/" + hex).c_str()) != 0 && errno != ENOENT) throw_errno("cannot remove blob " + hex);
  }
}

RemoveReport Store::remove(const std::string& name, bool force) {
  StoreLock lock(dir_, true);
  Index index = Index::read(dir_);
  std::string id = resolve_in_index(index, name);
  RemoveReport report;
  std::vector<std::string> holders = index.holders_of(id);
  std::vector<std::string> tags = index.tags_of(id);

  std::optional<Reference> by_reference;
  try {
    Reference ref = parse_reference(name);
    if (ref.digest.empty() && index.tags.count(ref.full()) && index.tags.at(ref.full()) == id) by_reference = ref;
  } catch (const Error&) {
  }

  bool delete_image = true;
  if (by_reference) {
    if (tags.size() > 1) {
      index.tags.erase(by_reference->full());
      report.untagged.push_back(by_reference->familiar());
      delete_image = false;
    } else {
      if (!holders.empty() && !force)
        throw Error("conflict: unable to remove repository reference \"" + name + "\" (must force) - container " +
                    holders.front() + " is using its referenced image " + short_id(id));
      index.tags.erase(by_reference->full());
      report.untagged.push_back(by_reference->familiar());
      delete_image = holders.empty();
    }
  } else {
    std::set<std::string> repos;
    for (auto& t : tags) repos.insert(parse_reference(t).repository());
    if (repos.size() > 1 && !force)
      throw Error("conflict: unable to delete " + short_id(id) + " (must be forced) - image is referenced in multiple repositories");
    if (!holders.empty() && !force)
      throw Error("conflict: unable to delete " + short_id(id) + " (must be forced) - image is being used by container " + holders.front());
    for (auto& t : tags) {
      index.tags.erase(t);
      report.untagged.push_back(familiar_name(t));
    }
    for (auto& d : index.images[id].repo_digests) report.untagged.push_back(familiar_name(d));
    // A held image stays (its layers are in use); it is only untagged, even with -f.
    delete_image = holders.empty();
  }
  if (delete_image) {
    for (auto& d : index.images[id].repo_digests) report.untagged.push_back(familiar_name(d));
    index.images.erase(id);
    report.deleted.push_back(id);
  }
  index.write(dir_);
  if (delete_image) collect_garbage(dir_, index, report);
  return report;
}

RemoveReport Store::prune(bool all) {
  StoreLock lock(dir_, true);
  Index index = Index::read(dir_);
  RemoveReport report;
  std::vector<std::string> doomed;
  for (auto& [id, rec] : index.images) {
    if (!index.holders_of(id).empty()) continue;
    if (!all && !index.tags_of(id).empty()) continue;
    doomed.push_back(id);
  }
  for (auto& id : doomed) {
    for (auto& t : index.tags_of(id)) {
      index.tags.erase(t);
      report.untagged.push_back(familiar_name(t));
    }
    index.images.erase(id);
    report.deleted.push_back(id);
  }
  index.write(dir_);
  collect_garbage(dir_, index, report);
  return report;
}

std::vector<std::string> Store::layer_dirs(const std::string& image) const {
  StoreLock lock(dir_, false);
  Index index = Index::read(dir_);
  const ImageRecord& rec = index.images.at(resolve_in_index(index, image));
  std::vector<std::string> out;
  for (auto it = rec.diff_ids.rbegin(); it != rec.diff_ids.rend(); ++it) out.push_back(layer_path(dir_, *it) + "/diff");
  return out;
}

// A hold is an empty file, holds/<holder>.<image hex>: taking or dropping
// one rewrites nothing and frees no data block. Taken under the shared
// lock, so rmi and prune (exclusive) see it or fail to find the image.
// Not fsync'd, like the container it stands for (runtime's config.json);
// reconciler::sync_image_holds restores a hold a crash lost before rmi.
std::string Store::acquire(const std::string& image, const std::string& holder_id) {
  if (holder_id.empty() || holder_id[0] == '.' || holder_id.find('/') != std::string::npos)
    throw Error("invalid image holder id \"" + holder_id + "\"");
  StoreLock lock(dir_, false);
  Index index = Index::read(dir_);
  std::string id = resolve_in_index(index, image);
  std::string dir = holds_dir(dir_);
  std::string name = holder_id + "." + digest_hex(id);
  if (auto it = index.hold_files.find(holder_id); it != index.hold_files.end() && it->second != id)
    ::unlink((dir + "/" + holder_id + "." + digest_hex(it->second)).c_str());
  std::string path = dir + "/" + name;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  if (!fd && errno == ENOENT) {
    make_dirs(dir, 0700);
    fd.reset(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  }
  if (!fd) throw_errno("cannot create image hold " + path);
  return id;
}

void Store::release(const std::string& holder_id) {
  // No lock for the files: an rmi that still saw the hold only kept the image.
  for (auto& [holder, id] : read_hold_files(dir_))
    if (holder == holder_id) {
      std::string path = holds_dir(dir_) + "/" + holder + "." + digest_hex(id);
      if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("cannot remove image hold " + path);
    }
  Index index;
  {
    StoreLock lock(dir_, false);
    index = Index::read(dir_);
  }
  if (!index.holders.count(holder_id)) return;
  // A hold kept in index.json by an older berth.
  StoreLock lock(dir_, true);
  index = Index::read(dir_);
  if (index.holders.erase(holder_id)) index.write(dir_);
}

std::string Store::add_layer_from_tar(int fd, const ProgressFn& progress) {
  WorkDir work(dir_, "layer");
  std::string tar = work.next_name("input-");
  DecompressResult input;
  {
    UniqueFd out(::open(tar.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!out) throw_errno("cannot create " + tar);
    input = decompress_stream(fd, out.get(), "layer");
  }
  StoreLock lock(dir_, true);
  Index index = Index::read(dir_);
  StagedLayer layer = stage_layer(dir_, work, tar, input.diff_id, input.diff_id, progress);
  commit_layer(dir_, layer);
  index.pending_layers[layer.diff_id] = now_rfc3339();
  index.write(dir_);
  return layer.diff_id;
}

std::string Store::create_image(nlohmann::json config, const std::vector<std::string>& diff_ids,
                                const std::optional<Reference>& reference) {
  StoreLock lock(dir_, true);
  Index index = Index::read(dir_);
  for (auto& d : diff_ids)
    if (!layer_exists(dir_, d)) throw Error("create image: layer " + d + " is not in the store");
  config["rootfs"] = {{"type", "layers"}, {"diff_ids", diff_ids}};
  if (!config.contains("created")) config["created"] = now_rfc3339();
  std::vector<std::string> tags;
  if (reference) tags.push_back(reference->full());
  std::string id = register_image(dir_, index, config.dump(), tags);
  for (auto& d : diff_ids) index.pending_layers.erase(d);
  index.write(dir_);
  return id;
}

static std::string host_architecture() {
  utsname u{};
  ::uname(&u);
  std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  if (m.rfind("armv7", 0) == 0) return "arm";
  if (m == "i686" || m == "i386") return "386";
  return m;
}

std::string Store::import_rootfs(int fd, const ImportOptions& options, const ProgressFn& progress) {
  // Parse the changes first: a typo must not cost an unpack.
  nlohmann::json container_config = nlohmann::json::object();
  apply_changes(container_config, options.changes);
  // Read the input before locking: a slow producer must not hold up the store.
  // It is kept as it came: a gzip or zstd rootfs becomes the layer's blob.
  WorkDir work(dir_, "import");
  std::string input = work.next_name("input-");
  // Hashed as it is copied: the input's digest (the DiffID of a plain tar,
  // the blob digest of a compressed one) names the layer in the progress
  // and lets a plain tar the store already has skip its unpack.
  Sha256 input_hash;
  {
    UniqueFd out(::open(input.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!out) throw_errno("cannot create " + input);
    std::vector<char> buf(1 << 20);
    uint64_t done = 0;
    for (;;) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno("import " + options.source_name + ": cannot read");
      if (n == 0) break;
      if (!write_all(out.get(), buf.data(), static_cast<size_t>(n))) throw_errno("cannot write " + input);
      input_hash.update(buf.data(), static_cast<size_t>(n));
      done += static_cast<uint64_t>(n);
      if (progress) progress(ProgressEvent{ProgressEvent::Kind::Advance, "Importing", options.source_name, done, 0});
    }
  }
  StoreLock lock(dir_, true);
  Index index = Index::read(dir_);
  StagedLayer layer = stage_layer(dir_, work, input, input_hash.finish(), "", progress, "import " + options.source_name);
  commit_layer(dir_, layer);
  std::string now = now_rfc3339();
  nlohmann::json config = {
      {"architecture", host_architecture()},
      {"os", "linux"},
      {"created", now},
      {"config", container_config},
      {"history", nlohmann::json::array({{{"created", now},
                                          {"comment", options.message.empty() ? "Imported from " + options.source_name : options.message}}})},
      {"rootfs", {{"type", "layers"}, {"diff_ids", {layer.diff_id}}}},
  };
  if (!options.message.empty()) config["comment"] = options.message;
  std::vector<std::string> tags;
  if (options.reference) {
    if (!options.reference->digest.empty()) throw Error("import: the reference must not have a digest");
    tags.push_back(options.reference->full());
  }
  std::string id = register_image(dir_, index, config.dump(), tags);
  index.write(dir_);
  return id;
}

}  // namespace berth::images
