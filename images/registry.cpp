// pull and push over the OCI distribution API, on top of the store's layer
// staging (the same verify-and-unpack path `load` uses).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <cstdlib>
#include <cstring>
#include <map>
#include <exception>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <system_error>
#include <thread>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "images/digest.h"
#include "images/direct_write.h"
#include "images/registry.h"
#include "images/registry_internal.h"
#include "images/store_internal.h"

namespace berth::images {

using namespace detail;

namespace {

constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
constexpr const char* kDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
constexpr const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
constexpr const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
constexpr const char* kAccept =
    "Accept: application/vnd.docker.distribution.manifest.v2+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

nlohmann::json parse_json(const std::string& text, const std::string& what) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(what + ": malformed JSON: " + e.what());
  }
}

// Serializes progress calls from the layer workers.
struct Progress {
  explicit Progress(const ProgressFn& f) : fn(f) {}
  const ProgressFn& fn;
  std::mutex mutex;
  void operator()(ProgressEvent::Kind kind, const std::string& action, const std::string& digest, uint64_t done = 0,
                  uint64_t total = 0) {
    if (!fn) return;
    std::lock_guard<std::mutex> guard(mutex);
    fn(ProgressEvent{kind, action, short_id(digest), done, total});
  }
};

struct Manifest {
  std::string bytes;
  std::string digest;
  std::string media_type;
  nlohmann::json doc;
};

// GET a manifest by tag or digest; verifies its digest when one is expected.
Manifest get_manifest(RegistryClient& client, const std::string& reference, const std::string& expected_digest,
                      const std::string& shown) {
  HttpRequest req;
  req.url = "/v2/" + client.repository() + "/manifests/" + reference;
  req.headers.push_back(kAccept);
  HttpResponse r = client.send(req);
  if (r.status == 404) throw Error("manifest for " + shown + " not found: manifest unknown (registry " + client.registry() + ")");
  if (r.status != 200) client.fail(r, "fetching the manifest of " + shown);
  Manifest m;
  m.bytes = std::move(r.body);
  m.digest = sha256_digest(m.bytes);
  if (!expected_digest.empty() && m.digest != expected_digest)
    throw Error("manifest for " + shown + " from " + client.registry() + ": digest mismatch: expected " + expected_digest + ", got " + m.digest);
  std::string header = r.header("docker-content-digest");
  if (header.rfind("sha256:", 0) == 0 && header != m.digest)
    throw Error("manifest for " + shown + " from " + client.registry() + ": content has digest " + m.digest +
                " but the registry says " + header);
  m.doc = parse_json(m.bytes, "manifest for " + shown);
  if (!m.doc.is_object()) throw Error("manifest for " + shown + ": not a JSON object");
  m.media_type = m.doc.value("mediaType", "");
  if (m.media_type.empty()) {
    m.media_type = r.header("content-type");
    if (auto semi = m.media_type.find(';'); semi != std::string::npos) m.media_type.resize(semi);
  }
  if (m.doc.value("schemaVersion", 0) == 1)
    throw Error("manifest for " + shown + " uses the deprecated Docker schema 1 format, which berth does not support");
  return m;
}

bool is_index(const Manifest& m) {
  return m.media_type == kOciIndex || m.media_type == kDockerManifestList ||
         (m.doc.contains("manifests") && !m.doc.contains("layers"));
}

std::string platform_text(const Platform& p) { return p.os + "/" + p.architecture + (p.variant.empty() ? "" : "/" + p.variant); }

const nlohmann::json& select_platform(const Manifest& index, const Platform& want, const std::string& shown) {
  const nlohmann::json* fallback = nullptr;
  if (!index.doc.contains("manifests") || !index.doc["manifests"].is_array()) throw Error("manifest list for " + shown + " has no \"manifests\" array");
  for (auto& m : index.doc["manifests"]) {
    if (!m.is_object() || !m.contains("platform") || !m["platform"].is_object()) continue;
    auto& p = m["platform"];
    if (p.value("os", "") != want.os || p.value("architecture", "") != want.architecture) continue;
    std::string variant = p.value("variant", "");
    if (!want.variant.empty() && variant != want.variant) continue;
    // With no variant asked, prefer the entry without one (or the first).
    if (want.variant.empty() && !variant.empty()) {
      if (!fallback) fallback = &m;
      continue;
    }
    return m;
  }
  if (fallback) return *fallback;
  throw Error("no matching manifest for " + platform_text(want) + " in the manifest list entries of " + shown);
}

struct Descriptor {
  std::string media_type;
  std::string digest;
  int64_t size = -1;
};

Descriptor descriptor(const nlohmann::json& j, const std::string& what) {
  if (!j.is_object() || !j.contains("digest") || !j["digest"].is_string()) throw Error(what + ": malformed descriptor " + j.dump());
  Descriptor d;
  d.digest = j["digest"].get<std::string>();
  if (!is_sha256_digest(d.digest)) throw Error(what + ": unsupported digest \"" + d.digest + "\"");
  d.media_type = j.value("mediaType", "");
  if (j.contains("size") && j["size"].is_number_integer()) d.size = j["size"].get<int64_t>();
  return d;
}

// Downloads one blob, hashing while it streams; into memory (sink empty) or
// through sink. A connection dropped mid-blob is resumed where it stopped
// (Range: bytes=N-, up to kResumes times); a server that answers the Range
// with the whole blob (200) makes restart() rewind the sink. Throws unless
// the content matches the digest (and size).
constexpr int kResumes = 4;

void get_blob(RegistryClient& client, const Descriptor& d, const std::string& what,
              const std::function<void(const char*, size_t)>& sink, std::string* memory, Progress* progress) {
  Sha256 hash;
  uint64_t received = 0, reported = 0;
  uint64_t skip = 0;  // bytes of a repeated answer that were consumed already
  const std::string where = what + " " + d.digest + " from " + client.registry() + "/" + client.repository();
  HttpRequest req;
  req.url = "/v2/" + client.repository() + "/blobs/" + d.digest;
  req.retry_transport = false;  // a retry would stream the blob into the sink twice; resumed below
  if (memory) req.max_body = 16u << 20;
  // A resumed request answered with the whole blob (200): the bytes already
  // consumed (hashed, and maybe unpacked by now) are skipped; if the second
  // answer differs from the first, the digest check at the end fails.
  req.on_stream = [&](long status) { skip = status == 200 ? received : 0; };
  req.sink = [&](const char* data, size_t n) {
    if (skip) {
      size_t drop = static_cast<size_t>(std::min<uint64_t>(skip, n));
      skip -= drop;
      data += drop;
      n -= drop;
      if (n == 0) return true;
    }
    hash.update(data, n);
    received += n;
    if (d.size >= 0 && received > static_cast<uint64_t>(d.size)) return false;
    if (memory) {
      memory->append(data, n);
    } else {
      sink(data, n);
    }
    if (progress && received - reported >= (512u << 10)) {
      reported = received;
      (*progress)(ProgressEvent::Kind::Advance, "Downloading", d.digest, received, d.size < 0 ? 0 : static_cast<uint64_t>(d.size));
    }
    return true;
  };
  HttpResponse r;
  for (int resumes = 0;; ++resumes) {
    uint64_t from = received;
    req.headers.clear();
    if (from > 0) req.headers.push_back("Range: bytes=" + std::to_string(from) + "-");
    try {
      r = client.send(req);
    } catch (const TransportError& e) {
      if (resumes < kResumes && !e.connect_failure && !e.tls_failure && received > 0) {
        spdlog::debug("{}: connection dropped after {} bytes ({}); resuming", where, received, e.what());
        continue;
      }
      throw;
    } catch (const Error& e) {
      if (d.size >= 0 && received > static_cast<uint64_t>(d.size))
        throw Error(where + " is larger than its descriptor says (" + std::to_string(d.size) + " bytes); refusing it");
      throw;
    }
    if (from > 0 && r.status == 206) {
      std::string range = r.header("content-range");  // "bytes FROM-TO/TOTAL"
      if (range.rfind("bytes " + std::to_string(from) + "-", 0) != 0)
        throw Error(where + ": asked to resume at byte " + std::to_string(from) + " but the registry sent Content-Range \"" + range + "\"");
      break;
    }
    if (from > 0 && r.status == 200) {  // the whole blob again, its first `from` bytes skipped
      if (skip) throw Error(where + ": the registry sent the blob again but it ended before byte " + std::to_string(from));
      break;
    }
    if (r.status != 200) client.fail(r, "downloading " + what + " " + d.digest);
    break;
  }
  std::string got = hash.finish();
  if (got != d.digest)
    throw Error(where + ": digest mismatch: the downloaded content has digest " + got + "; refusing it");
  if (d.size >= 0 && received != static_cast<uint64_t>(d.size))
    throw Error(where + ": size mismatch: expected " + std::to_string(d.size) + " bytes, got " + std::to_string(received));
}

std::string target_of(const Reference& ref) { return ref.digest.empty() ? ref.tag : ref.digest; }

// A layer's blob writer or unpack thread could not start (a pids limit):
// the pull puts the layer back for when other threads have ended.
struct NoThread : Error {
  using Error::Error;
};

// A layer's bytes on their way from its download to the disk (the blob)
// and to its unpack, copied once: the download fills aligned blocks that
// the blob's writer thread and the unpacking thread both read where they
// are, and a block is filled again once both are done with it. The
// download waits while no block is free (the disk or the unpack is
// behind), so a layer's memory is kBlocks blocks whatever its size; it
// never waits on the disk while the unpack keeps up. (A channel to the
// unpack and a buffer for the disk, each with its own copy, cost two more
// copies of every byte: ~8% of a 200 MB pull's CPU time.)
//
// The blob is written around the page cache (O_DIRECT) where the
// filesystem allows it: the store keeps it only to push or save it later,
// so caching it only cost a copy into freshly allocated page cache and the
// kernel's writeback of it. The last, partial block goes through the page
// cache. A filesystem that refuses O_DIRECT (tmpfs) gets buffered writes,
// started on their way to the disk every kWritebackBytes. finish() makes
// the blob durable (fdatasync): it is what the layer's tree, left to the
// kernel's writeback, is rebuilt from after a crash.
class LayerPipe {
 public:
  static constexpr size_t kBlock = 256u << 10;
  // 1 MiB a layer: 6 blocks pulled no faster (A/B, 9 rounds) and cost
  // 2 MiB of peak RSS; while the download waits, the socket's buffer
  // fills, not the pipe.
  static constexpr size_t kBlocks = 4;
  static constexpr uint64_t kWritebackBytes = 8u << 20;

  // path: where the blob is written; what: the layer, as errors name it.
  LayerPipe(std::string path, std::string what) : path_(std::move(path)), what_(std::move(what)) {
    fd_ = UniqueFd(::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
    if (!fd_) throw_errno(what_ + ": cannot create its blob in " + path_dirname(path_));
    disk_.emplace(fd_.get());
    for (size_t i = 0; i < kBlocks; ++i) {
      char* p = static_cast<char*>(std::aligned_alloc(detail::DirectWrites::kAlign, kBlock));
      if (!p) throw Error(what_ + ": cannot allocate a buffer for its blob");
      blocks_.push_back(Block{std::unique_ptr<char, Free>(p)});
      free_.push_back(i);
    }
    try {
      writer_ = std::thread([this] { write_to_disk(); });
    } catch (const std::system_error& e) {
      throw NoThread(what_ + ": cannot start a thread to write its blob: " + e.what());
    }
  }
  ~LayerPipe() { stop_writer(true); }
  LayerPipe(const LayerPipe&) = delete;
  LayerPipe& operator=(const LayerPipe&) = delete;

  // The download's side: the next bytes of the blob. False when the
  // unpack has stopped reading (it failed; nothing more is wanted).
  // Throws the disk's error.
  bool write(const char* data, size_t n) {
    if (reader_gone_.load(std::memory_order_relaxed)) return false;
    if (head_.size() < 8) head_.append(data, std::min(n, 8 - head_.size()));
    size_ += n;
    while (n) {
      if (filling_ < 0 && (filling_ = take_free()) < 0) return false;
      size_t chunk = std::min(n, kBlock - used_);
      std::memcpy(blocks_[filling_].data.get() + used_, data, chunk);
      used_ += chunk;
      data += chunk;
      n -= chunk;
      if (used_ == kBlock) publish();
    }
    return true;
  }
  // The download ended cleanly: the unpack gets the rest and then the end
  // of its stream; returns once the blob is complete and durable. Throws
  // the disk's error.
  void finish() {
    if (used_) publish();
    end_stream(nullptr);
    stop_writer(false);
    if (disk_error_) std::rethrow_exception(disk_error_);
    if (::fdatasync(fd_.get()) != 0) throw_errno(what_ + ": cannot flush its blob to disk in " + path_dirname(path_));
  }
  // The download failed: the unpack gets `failure` once it has read what
  // came before; the blob is abandoned (the caller removes it).
  void fail(std::exception_ptr failure) {
    end_stream(std::move(failure));
    stop_writer(true);
  }

  // The unpack's side, a BorrowFn: the next block (valid until the next
  // call), 0 at the clean end; rethrows the download's error.
  size_t borrow(const char** data) {
    std::unique_lock<std::mutex> lock(mutex_);
    if (lent_ >= 0) release(lent_);
    lent_ = -1;
    unpack_cv_.wait(lock, [&] { return !to_unpack_.empty() || ended_; });
    if (to_unpack_.empty()) {
      if (failure_) std::rethrow_exception(failure_);
      *data = nullptr;
      return 0;
    }
    lent_ = to_unpack_.front();
    to_unpack_.pop_front();
    *data = blocks_[lent_].data.get();
    return blocks_[lent_].size;
  }
  // The unpack stopped (done, or failed): the blocks it has not read go back.
  void close_read() {
    std::lock_guard<std::mutex> lock(mutex_);
    reader_gone_ = true;
    if (lent_ >= 0) release(lent_);
    lent_ = -1;
    for (int b : to_unpack_) release(b);
    to_unpack_.clear();
    free_cv_.notify_all();
  }

  uint64_t size() const { return size_; }
  // The first bytes written (up to 8): what compression the blob has.
  const std::string& head() const { return head_; }

 private:
  struct Free {
    void operator()(char* p) const { std::free(p); }
  };
  struct Block {
    std::unique_ptr<char, Free> data;
    size_t size = 0;
    int users = 0;  // the disk and the unpack, until each is done with it
  };

  // A free block (waiting for one), or -1 once the unpack has gone.
  int take_free() {
    std::unique_lock<std::mutex> lock(mutex_);
    free_cv_.wait(lock, [&] { return !free_.empty() || disk_error_ || reader_gone_; });
    if (disk_error_) std::rethrow_exception(disk_error_);
    if (reader_gone_) return -1;
    int b = free_.back();
    free_.pop_back();
    return b;
  }
  // Hands the block being filled to the disk and to the unpack.
  void publish() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      Block& b = blocks_[filling_];
      b.size = used_;
      b.users = reader_gone_ ? 1 : 2;
      to_disk_.push_back(filling_);
      if (!reader_gone_) to_unpack_.push_back(filling_);
    }
    disk_cv_.notify_one();
    unpack_cv_.notify_one();
    filling_ = -1;
    used_ = 0;
  }
  void end_stream(std::exception_ptr failure) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (ended_) return;
      ended_ = true;
      failure_ = std::move(failure);
    }
    unpack_cv_.notify_all();
  }
  // Under mutex_.
  void release(int b) {
    if (--blocks_[b].users == 0) {
      free_.push_back(b);
      free_cv_.notify_one();
    }
  }
  // Waits for the writer to write what it was given (or, abandoning, to drop it).
  void stop_writer(bool abandon) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      if (abandon) abandon_ = true;
    }
    disk_cv_.notify_all();
    if (writer_.joinable()) writer_.join();
  }
  // The writer thread: writes the blocks in order until stopped with none left.
  void write_to_disk() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      disk_cv_.wait(lock, [&] { return !to_disk_.empty() || stopping_; });
      if (to_disk_.empty()) return;
      int b = to_disk_.front();
      to_disk_.pop_front();
      bool skip = abandon_ || disk_error_;
      lock.unlock();
      std::exception_ptr failed;
      if (!skip) {
        try {
          const Block& block = blocks_[b];
          if (block.size < kBlock && !disk_->stop_direct()) throw_errno(what_ + ": cannot write its blob in " + path_dirname(path_));  // the tail: buffered
          write_block(block.data.get(), block.size);
        } catch (...) {
          failed = std::current_exception();
        }
      }
      lock.lock();
      if (failed && !disk_error_) {
        disk_error_ = failed;
        free_cv_.notify_all();
      }
      release(b);
    }
  }
  void write_block(const char* data, size_t n) {
    if (!disk_->write(data, n, offset_)) throw_errno(what_ + ": cannot write its blob in " + path_dirname(path_));
    offset_ += n;
    if (disk_->direct()) return;
    // Writeback starts now rather than at finish()'s fdatasync.
    if (offset_ - flushing_ >= kWritebackBytes) {
      ::sync_file_range(fd_.get(), static_cast<off_t>(flushing_), static_cast<off_t>(offset_ - flushing_), SYNC_FILE_RANGE_WRITE);
      flushing_ = offset_;
    }
  }

  std::string path_, what_;
  UniqueFd fd_;
  std::vector<Block> blocks_;  // fixed once made: their data pointers stay put
  // The download's side.
  int filling_ = -1;    // the block being filled
  size_t used_ = 0;     // bytes in it
  uint64_t size_ = 0;   // bytes given to write()
  std::string head_;
  // Shared, under mutex_.
  std::mutex mutex_;
  std::condition_variable free_cv_, disk_cv_, unpack_cv_;
  std::vector<int> free_;
  std::deque<int> to_disk_, to_unpack_;
  int lent_ = -1;  // the block the unpack is reading
  bool ended_ = false;  // the download ended (failure_ says how)
  std::exception_ptr failure_;
  std::atomic<bool> reader_gone_{false};
  bool stopping_ = false, abandon_ = false;
  std::exception_ptr disk_error_;
  // The writer thread's side (and finish()'s, once it has stopped).
  std::optional<detail::DirectWrites> disk_;  // on fd_
  uint64_t offset_ = 0;    // bytes written to the file
  uint64_t flushing_ = 0;  // writeback started up to here (buffered writes)
  std::thread writer_;
};

// Thrown into the download when the unpack stopped reading (its own error is the one reported).
struct UnpackStopped : Error {
  UnpackStopped() : Error("the unpack stopped") {}
};

}  // namespace

namespace {

// One pull of ref from one endpoint: its registry or one of its mirrors.
PullResult pull_from(Store& store, const Reference& ref, const std::string& endpoint, const RegistryOptions& options,
                     const ProgressFn& progress_fn) {
  const std::string dir = store.directory();
  std::string shown = ref.familiar();
  RegistryClient client(endpoint, ref.path, "pull", options);
  Progress progress(progress_fn);
  // The pull's timeline, at debug level: seconds since the pull started.
  const auto started = std::chrono::steady_clock::now();
  auto at = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(); };

  Manifest manifest = get_manifest(client, target_of(ref), ref.digest, shown);
  spdlog::debug("pull {}: +{:.3f}s manifest {}", shown, at(), manifest.digest);
  std::string manifest_digest = manifest.digest;  // what the reference names (the list, for multi-platform images)
  if (is_index(manifest)) {
    Descriptor chosen = descriptor(select_platform(manifest, options.platform, shown), "manifest list for " + shown);
    manifest = get_manifest(client, chosen.digest, chosen.digest, shown);
    if (is_index(manifest)) throw Error("manifest " + chosen.digest + " for " + shown + " is another index; nested indexes are not supported");
  }
  const std::string what = "manifest " + manifest.digest + " for " + shown;
  if (!manifest.doc.contains("config") || !manifest.doc.contains("layers") || !manifest.doc["layers"].is_array())
    throw Error(what + ": malformed: needs \"config\" and \"layers\" (media type \"" + manifest.media_type + "\")");
  Descriptor config_desc = descriptor(manifest.doc["config"], what);
  std::vector<Descriptor> layers;
  for (auto& l : manifest.doc["layers"]) {
    Descriptor d = descriptor(l, what);
    if (d.media_type.find("nondistributable") != std::string::npos || d.media_type.find("foreign") != std::string::npos)
      throw Error(what + ": layer " + d.digest + " is a foreign (non-distributable) layer, which berth does not fetch");
    layers.push_back(d);
  }

  // A config the store already holds (the image was pulled or loaded
  // before) is not fetched again: a repeated pull transfers no blob.
  std::string config_bytes;
  if (!read_file_if_exists(blob_path(dir, config_desc.digest), config_bytes) || sha256_digest(config_bytes) != config_desc.digest) {
    config_bytes.clear();
    get_blob(client, config_desc, "image config", {}, &config_bytes, nullptr);
  }
  spdlog::debug("pull {}: +{:.3f}s config {}", shown, at(), config_desc.digest);
  nlohmann::json config = parse_json(config_bytes, "image config " + config_desc.digest);
  std::vector<std::string> diff_ids;
  if (config.contains("rootfs") && config["rootfs"].is_object() && config["rootfs"].contains("diff_ids") &&
      config["rootfs"]["diff_ids"].is_array())
    for (auto& d : config["rootfs"]["diff_ids"])
      if (d.is_string() && is_sha256_digest(d.get<std::string>())) diff_ids.push_back(d.get<std::string>());
  if (diff_ids.size() != layers.size())
    throw Error("image config " + config_desc.digest + " lists " + std::to_string(diff_ids.size()) + " DiffIDs but " + what + " has " +
                std::to_string(layers.size()) + " layers");

  // Only the layers the store lacks are fetched. Each layer goes through in
  // one pass: its worker downloads (hashing the compressed bytes as they
  // stream) into a LayerPipe, whose writer thread writes them as they came
  // as the layer's blob and from which a second thread decompresses and
  // unpacks them, hashing the DiffID. Both digests are checked before anything is committed; on
  // any error the work dir (partial blob and tree) goes with `work`.
  WorkDir work(dir, "pull");
  spread_directories(work.path());  // each layer dir in a block group of its own
  // ext4 starts looking for such a group at a hash of the directory's name:
  // the same names in every pull would land every pull in the same group
  // (the one a removed image just freed, see spread_directories).
  const std::string layer_stem = "layer-" + std::to_string(std::random_device{}()) + "-";
  std::vector<size_t> todo;
  std::set<std::string> seen;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!seen.insert(diff_ids[i]).second) continue;
    if (layer_exists(dir, diff_ids[i])) {
      progress(ProgressEvent::Kind::AlreadyExists, "Already exists", layers[i].digest);
    } else {
      progress(ProgressEvent::Kind::Start, "Pulling fs layer", layers[i].digest);
      todo.push_back(i);
    }
  }
  std::vector<StagedLayer> staged(todo.size());
  std::vector<std::exception_ptr> failures(todo.size());
  size_t next = 0;  // the next of todo to take (under schedule, below)
  const size_t threads = std::min<size_t>(todo.size(), std::max(1u, options.parallel));
  // With two layers or more under way their threads keep the cores busy: a
  // layer's unpack thread hashes its tar (DiffID) itself. Handing each 64
  // KiB block to a hashing thread and back cost ~2 context switches a block
  // (a 200 MB pull: 9000 switches, 2900 without) and ~10% of the pull's
  // CPU time on 2 cores, and gained nothing there.
  const bool hash_on_thread = threads < 2;
  auto pull_layer = [&](size_t i, StagedLayer& out) {
    const std::string& expected = diff_ids[i];
    out.diff_id = expected;
    out.blob_file = work.next_name("blob-");
    out.dir = work.next_name(layer_stem);
    make_dirs(out.dir + "/diff");
    ::chmod((out.dir + "/diff").c_str(), 0755);
    LayerPipe pipe(out.blob_file, "layer " + expected + " (blob " + layers[i].digest + ")");
    spdlog::debug("pull {}: +{:.3f}s layer {}: download starts", shown, at(), short_id(layers[i].digest));
    StreamUnpackResult unpacked;
    std::exception_ptr unpack_failure, download_failure;
    std::thread unpacker;
    auto unpack = [&] {
      try {
        unpacked = unpack_layer_stream([&](const char** data) { return pipe.borrow(data); }, -1, out.dir + "/diff", expected, false, {},
                                       false, hash_on_thread);
      } catch (...) {
        unpack_failure = std::current_exception();
      }
      pipe.close_read();
      if (!unpack_failure) spdlog::debug("pull {}: +{:.3f}s layer {}: unpacked", shown, at(), short_id(layers[i].digest));
    };
    try {
      unpacker = std::thread(unpack);
    } catch (const std::system_error& e) {
      throw NoThread("layer " + expected + " (blob " + layers[i].digest + "): cannot start a thread to unpack it: " + e.what());
    }
    try {
      get_blob(client, layers[i], "layer",
               [&](const char* data, size_t n) {
                 if (!pipe.write(data, n)) throw UnpackStopped();
               },
               nullptr, &progress);
      pipe.finish();
      spdlog::debug("pull {}: +{:.3f}s layer {}: downloaded ({} bytes)", shown, at(), short_id(layers[i].digest), pipe.size());
      progress(ProgressEvent::Kind::Advance, "Download complete", layers[i].digest);
    } catch (const UnpackStopped&) {
      pipe.fail(std::current_exception());
    } catch (...) {
      download_failure = std::current_exception();
      pipe.fail(download_failure);
    }
    unpacker.join();
    // The download's own error first (a digest mismatch, a dropped registry):
    // the unpack failed only because its stream did.
    if (download_failure) std::rethrow_exception(download_failure);
    if (unpack_failure) std::rethrow_exception(unpack_failure);
    if (unpacked.diff_id != expected)
      throw Error("layer " + expected + " (blob " + layers[i].digest + "): DiffID mismatch: the layer content has digest " + unpacked.diff_id);
    std::string media_type = layer_media_type(detect_compression(pipe.head()));
    out.blob = LayerBlob{layers[i].digest, media_type.empty() ? layers[i].media_type : media_type, pipe.size()};
    out.content_size = unpacked.content_size;
    out.tar_size = unpacked.tar_size;
  };
  // Under a pids limit a layer may find no thread for its blob writer or
  // unpack (NoThread): a pool worker then leaves, freeing its own thread,
  // and another takes the layer again; this (the calling) thread, which
  // cannot free itself, puts it back while others run. Alone, a worker
  // tries again a few times, 1 ms apart (a thread that has ended is counted
  // against the limit a moment longer), and then fails the pull.
  std::mutex schedule;
  std::deque<size_t> again;  // layers whose threads could not start
  size_t active = 0;
  auto give_up = [&](size_t k) {  // under schedule: the pull fails; start no more layers
    failures[k] = std::current_exception();
    next = todo.size();
    again.clear();
  };
  auto worker = [&](bool pooled) {
    for (;;) {
      size_t k;
      {
        std::lock_guard<std::mutex> lock(schedule);
        if ((k = next++) >= todo.size()) {
          if (again.empty()) {
            --active;
            return;
          }
          k = again.front();
          again.pop_front();
        }
      }
      size_t i = todo[k];
      for (int tries = 1;; ++tries) {
        try {
          pull_layer(i, staged[k]);
          progress(ProgressEvent::Kind::Done, "Pull complete", layers[i].digest);
        } catch (const NoThread&) {
          enum { Leave, PutBack, Retry, Fail } what;
          {
            std::lock_guard<std::mutex> lock(schedule);
            if (active > 1) {
              again.push_back(k);
              what = pooled ? Leave : PutBack;
              if (pooled) --active;
            } else if (tries < 20) {
              what = Retry;
            } else {
              give_up(k);
              what = Fail;
            }
          }
          if (what == Leave) return;
          if (what == Fail) break;
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
          if (what == PutBack) break;
          continue;
        } catch (...) {
          std::lock_guard<std::mutex> lock(schedule);
          give_up(k);
        }
        break;
      }
    }
  };
  std::vector<std::thread> pool;
  {
    // Held while the pool starts: a worker counts in `active` before it can leave.
    std::lock_guard<std::mutex> lock(schedule);
    active = 1;
    try {
      for (size_t t = 1; t < threads; ++t) {
        pool.emplace_back(worker, true);
        ++active;
      }
    } catch (const std::system_error&) {
      // No more threads to be had (a pids limit): those running take all the layers.
    }
  }
  if (threads) worker(false);
  for (auto& t : pool) t.join();
  for (auto& f : failures)
    if (f) std::rethrow_exception(f);

  StoreLock lock(dir, true);
  Index index = Index::read(dir);
  bool existed = index.images.count(config_desc.digest) > 0;
  std::vector<const StagedLayer*> to_commit;
  for (auto& s : staged) to_commit.push_back(&s);
  spdlog::debug("pull {}: +{:.3f}s layers staged", shown, at());
  // The blobs are on the disk (LayerPipe::finish); the trees are left to
  // the kernel's writeback, recorded as unsynced until they are known to be
  // there (recover_unsynced_layers): the pull writes durably what `skopeo
  // copy` does, and a crash costs an unpack from the blob, not the layer.
  commit_layers(dir, to_commit, false);
  spdlog::debug("pull {}: +{:.3f}s layers committed", shown, at());
  std::vector<std::string> tags;
  if (!ref.tag.empty()) tags.push_back(ref.full());
  bool retagged = !ref.tag.empty() && (!index.tags.count(ref.full()) || index.tags.at(ref.full()) != config_desc.digest);
  std::string id = register_image(dir, index, config_bytes, tags);
  std::string repo_digest = ref.repository() + "@" + manifest_digest;
  auto& digests = index.images[id].repo_digests;
  if (std::find(digests.begin(), digests.end(), repo_digest) == digests.end()) digests.push_back(repo_digest);
  index.write(dir);
  spdlog::debug("pull {}: +{:.3f}s image registered", shown, at());
  PullResult result;
  result.image_id = id;
  result.manifest_digest = manifest_digest;
  result.downloaded = !todo.empty() || !existed || retagged;
  return result;
}

}  // namespace

PullResult pull_image(Store& store, const Reference& ref, const RegistryOptions& options, const ProgressFn& progress_fn) {
  check_not_blocked(ref.domain, options);
  if (auto it = options.mirrors.find(ref.domain); it != options.mirrors.end()) {
    for (auto& mirror : it->second) {
      try {
        return pull_from(store, ref, mirror, options, progress_fn);
      } catch (const Error& e) {
        // A mirror is a cache: whatever goes wrong there, the origin decides.
        spdlog::info("mirror {} of {}: {}; trying the next", mirror, ref.domain, e.what());
      }
    }
  }
  return pull_from(store, ref, ref.domain, options, progress_fn);
}

PushResult push_image(Store& store, const Reference& ref, const RegistryOptions& options, const ProgressFn& progress_fn) {
  const std::string dir = store.directory();
  std::string shown = ref.familiar();
  ImageSummary image = store.summary(ref.full());
  std::string config_bytes = store.config_bytes(image.id);
  RegistryClient client(ref.domain, ref.path, "pull,push", options);
  Progress progress(progress_fn);

  // Repositories on the same registry that already hold a blob: those the
  // store's images with that layer were pushed to or pulled from (their
  // RepoDigests and tags). A blob there is mounted, not uploaded.
  // Each layer is sent as the store keeps it: the blob as pulled or loaded
  // (compressed, with its own digest and media type), or the uncompressed
  // tar of layers berth made or stored before it kept blobs as they came.
  std::map<std::string, std::vector<std::string>> mount_sources;  // blob digest -> repositories
  std::map<std::string, LayerBlob> blobs;                          // DiffID -> its blob
  {
    StoreLock lock(dir, false);
    Index index = Index::read(dir);
    for (auto& d : image.diff_ids)
      if (!blobs.count(d)) blobs[d] = read_layer_meta(dir, d).blob;
    std::map<std::string, std::set<std::string>> repos_of_image;
    for (auto& [id, record] : index.images)
      for (auto& rd : record.repo_digests) repos_of_image[id].insert(rd.substr(0, rd.find('@')));
    for (auto& [tag, id] : index.tags) {
      try {
        repos_of_image[id].insert(parse_reference(tag).repository());
      } catch (const Error&) {
      }
    }
    const std::string prefix = ref.domain + "/";
    for (auto& d : image.diff_ids) {
      auto& list = mount_sources[blobs[d].digest];
      for (auto& [id, record] : index.images) {
        if (std::find(record.diff_ids.begin(), record.diff_ids.end(), d) == record.diff_ids.end()) continue;
        for (auto& repo : repos_of_image[id])
          if (repo.rfind(prefix, 0) == 0 && repo != ref.repository() &&
              std::find(list.begin(), list.end(), repo.substr(prefix.size())) == list.end())
            list.push_back(repo.substr(prefix.size()));
      }
    }
  }

  // Sends one blob unless the registry has it: HEAD; then a cross-repository
  // mount when another repository of the registry may hold it; else POST and
  // the content, in one PUT ?digest= (monolithic) or in PATCH chunks of
  // options.upload_chunk bytes then an empty PUT ?digest=.
  enum class Sent { Exists, Mounted, Uploaded };
  auto push_blob = [&](const std::string& digest, const std::string& file, const std::string* bytes, const std::string& what,
                       uint64_t size) -> Sent {
    HttpRequest head;
    head.method = "HEAD";
    head.url = "/v2/" + client.repository() + "/blobs/" + digest;
    HttpResponse r = client.send(head);
    if (r.status == 200) return Sent::Exists;
    if (r.status != 404) client.fail(r, "checking " + what + " " + digest);
    std::string location;
    auto sources = mount_sources.find(digest);
    for (size_t i = 0; sources != mount_sources.end() && i < sources->second.size() && location.empty(); ++i) {
      HttpRequest mount;
      mount.method = "POST";
      mount.url = "/v2/" + client.repository() + "/blobs/uploads/?mount=" + std::string("sha256%3A") + digest_hex(digest) +
                  "&from=" + sources->second[i];
      r = client.send(mount);
      if (r.status == 201) return Sent::Mounted;
      // 202: the registry could not mount and started an upload instead.
      if (r.status == 202) location = r.header("location");
      else spdlog::debug("mounting {} from {}: HTTP {}", digest, sources->second[i], r.status);
    }
    if (location.empty()) {
      HttpRequest post;
      post.method = "POST";
      post.url = "/v2/" + client.repository() + "/blobs/uploads/";
      r = client.send(post);
      if (r.status != 202) client.fail(r, "starting the upload of " + what + " " + digest);
      location = r.header("location");
    }
    if (location.empty()) throw Error("registry " + client.registry() + " started an upload but sent no Location");
    bool chunked = !bytes && options.upload_chunk > 0 && size > options.upload_chunk;
    for (uint64_t offset = 0; chunked && offset < size;) {
      uint64_t n = std::min<uint64_t>(options.upload_chunk, size - offset);
      HttpRequest patch;
      patch.method = "PATCH";
      patch.url = location;
      patch.headers.push_back("Content-Type: application/octet-stream");
      patch.headers.push_back("Content-Range: " + std::to_string(offset) + "-" + std::to_string(offset + n - 1));
      patch.body_file = file;
      patch.body_offset = offset;
      patch.body_length = static_cast<int64_t>(n);
      r = client.send(patch);
      if (r.status != 202) client.fail(r, "uploading bytes " + std::to_string(offset) + "-" + std::to_string(offset + n - 1) + " of " + what + " " + digest);
      location = r.header("location");
      if (location.empty()) throw Error("registry " + client.registry() + " took a chunk of " + digest + " but sent no Location for the next");
      offset += n;
      progress(ProgressEvent::Kind::Advance, "Pushing", digest, offset, size);
    }
    HttpRequest put;
    put.method = "PUT";
    put.url = location + (location.find('?') == std::string::npos ? "?" : "&") + "digest=" + std::string("sha256%3A") + digest_hex(digest);
    put.headers.push_back("Content-Type: application/octet-stream");
    if (bytes)
      put.body = *bytes;
    else if (!chunked) {
      put.body_file = file;
      uint64_t reported = 0;
      put.on_upload = [&, reported](uint64_t sent) mutable {
        if (sent - reported < (512u << 10) && sent != size) return;
        reported = sent;
        progress(ProgressEvent::Kind::Advance, "Pushing", digest, sent, size);
      };
    }
    r = client.send(put);
    if (r.status != 201 && r.status != 204) client.fail(r, "uploading " + what + " " + digest);
    return Sent::Uploaded;
  };

  nlohmann::json layers = nlohmann::json::array();
  std::set<std::string> done;
  for (auto& diff_id : image.diff_ids) {
    const LayerBlob& blob = blobs.at(diff_id);
    const std::string& d = blob.digest;
    std::string file = blob_path(dir, d);
    uint64_t size = blob.size;
    layers.push_back({{"mediaType", blob.media_type}, {"digest", d}, {"size", size}});
    if (!done.insert(d).second) continue;
    progress(ProgressEvent::Kind::Start, "Preparing", d, 0, size);
    switch (push_blob(d, file, nullptr, "layer", size)) {
      case Sent::Exists: progress(ProgressEvent::Kind::AlreadyExists, "Layer already exists", d); break;
      case Sent::Mounted: progress(ProgressEvent::Kind::Done, "Mounted from " + mount_sources[d].front(), d, size, size); break;
      case Sent::Uploaded: progress(ProgressEvent::Kind::Done, "Pushed", d, size, size); break;
    }
  }
  push_blob(image.id, "", &config_bytes, "image config", config_bytes.size());
  nlohmann::json manifest = {{"schemaVersion", 2},
                             {"mediaType", kOciManifest},
                             {"config", {{"mediaType", kOciConfig}, {"digest", image.id}, {"size", config_bytes.size()}}},
                             {"layers", layers}};
  std::string bytes = manifest.dump();
  PushResult result;
  result.manifest_digest = sha256_digest(bytes);
  result.manifest_size = bytes.size();
  HttpRequest put;
  put.method = "PUT";
  put.url = "/v2/" + client.repository() + "/manifests/" + (ref.tag.empty() ? result.manifest_digest : ref.tag);
  put.headers.push_back(std::string("Content-Type: ") + kOciManifest);
  put.body = bytes;
  HttpResponse r = client.send(put);
  if (r.status != 201 && r.status != 200 && r.status != 202) client.fail(r, "uploading the manifest of " + shown);

  StoreLock lock(dir, true);
  Index index = Index::read(dir);
  if (auto it = index.images.find(image.id); it != index.images.end()) {
    std::string repo_digest = ref.repository() + "@" + result.manifest_digest;
    auto& digests = it->second.repo_digests;
    if (std::find(digests.begin(), digests.end(), repo_digest) == digests.end()) {
      digests.push_back(repo_digest);
      index.write(dir);
    }
  }
  return result;
}

std::vector<std::string> search_catalog(const std::string& registry, const std::string& term, const RegistryOptions& options,
                                        size_t limit) {
  if (registry == "docker.io")
    throw Error("search: Docker Hub has no catalog API; berth searches registries that offer /v2/_catalog (name one: REGISTRY/TERM)");
  RegistryClient client(registry, "", "", options);
  std::vector<std::string> found;
  std::string url = "/v2/_catalog?n=1000";
  for (int page = 0; !url.empty(); ++page) {
    if (page >= 1000) throw Error("search: " + registry + "'s catalog has more than 1000 pages; giving up");
    HttpRequest req;
    req.url = url;
    HttpResponse r = client.send(req);
    if (r.status == 404 || r.status == 405)
      throw Error("search: registry " + registry + " does not offer the catalog API (GET /v2/_catalog answered HTTP " + std::to_string(r.status) + ")");
    if (r.status != 200) client.fail(r, "listing the catalog");
    nlohmann::json j = parse_json(r.body, "the catalog of " + registry);
    if (!j.is_object() || !j.contains("repositories") || !(j["repositories"].is_array() || j["repositories"].is_null()))
      throw Error("search: the catalog of " + registry + " has no \"repositories\" list");
    if (j["repositories"].is_array())
      for (auto& name : j["repositories"])
        if (name.is_string() && name.get<std::string>().find(term) != std::string::npos) found.push_back(name.get<std::string>());
    // Link: </v2/_catalog?last=x&n=1000>; rel="next"
    url.clear();
    std::string link = r.header("link");
    if (link.find("rel=\"next\"") != std::string::npos && link.find('<') != std::string::npos) {
      size_t a = link.find('<') + 1, b = link.find('>', a);
      if (b != std::string::npos) url = link.substr(a, b - a);
    }
  }
  std::sort(found.begin(), found.end());
  if (limit && found.size() > limit) found.resize(limit);
  return found;
}

}  // namespace berth::images
