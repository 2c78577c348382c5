#include "images/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string_view>
#include <system_error>
#include <thread>
#include <unordered_set>
#include <vector>

#include "base/error.h"
#include "base/fs.h"
#include "base/write_all.h"
#include "images/create_workers.h"
#include "images/direct_write.h"
#include "images/digest.h"

namespace berth::images {

ReadFn fd_reader(int fd, const std::string& what) {
  return [fd, what](char* buf, size_t cap) -> size_t {
    for (;;) {
      ssize_t n = ::read(fd, buf, cap);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno(what.empty() ? std::string("read failed") : "cannot read " + what);
      return static_cast<size_t>(n);
    }
  };
}

namespace {

constexpr size_t kWritebackEvery = 8 << 20;  // decompress_stream starts writing its output back every 8 MiB
constexpr size_t kReadBuffer = 1 << 20;  // big reads: fewer syscalls, libarchive hands out big blocks
// A ReadFn source (a gzip blob being loaded or rebuilt) is read 256 KiB at a
// time: a smaller buffer than an fd's keeps a layer's memory down. (A
// pull's download lends its own blocks: no buffer here.)
constexpr size_t kStreamReadBuffer = 256 << 10;

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
using ArchivePtr = std::unique_ptr<archive, ArchiveDeleter>;


// Feeds libarchive from a source (an fd, a stream another thread fills, or
// one that lends its blocks) while hashing and counting every byte it reads.
struct HashingReader {
  explicit HashingReader(int fd) : source(fd_reader(fd)), from_fd(true), buffer(kReadBuffer) {}
  explicit HashingReader(ReadFn f) : source(std::move(f)), buffer(kStreamReadBuffer) {}
  explicit HashingReader(BorrowFn f) : lend(std::move(f)) {}
  // The hash may still be reading buffer, which is destroyed before it.
  ~HashingReader() { hash.wait(); }
  HashingReader(const HashingReader&) = delete;
  HashingReader& operator=(const HashingReader&) = delete;
  ReadFn source;
  BorrowFn lend;  // set instead of source: blocks are read where they are
  bool from_fd = false;
  bool hashing = true;
  Sha256Behind hash;  // hashes a block while libarchive unpacks it
  uint64_t bytes = 0;
  uint64_t last_report = 0;
  const BytesProgress* progress = nullptr;
  std::vector<char> buffer;  // where source reads to (empty with lend)
  const char* block = nullptr;  // the current block: in buffer, or lent
  int error = 0;

  // The source's exception, kept while libarchive unwinds (it must not pass through C).
  std::exception_ptr failure;

  // Bytes peek() read ahead (the current block), handed out (and hashed)
  // by the next fill().
  size_t pending = 0;

  // The source's next block, not hashed or counted.
  size_t next_block() {
    if (lend) return lend(&block);
    block = buffer.data();
    return source(buffer.data(), buffer.size());
  }

  // The first bytes of the stream, read ahead without consuming them: to
  // detect the compression. At least want of them unless the stream is
  // shorter, or (a lending source) its first block is.
  std::string_view peek(size_t want) {
    if (lend) {
      if (pending == 0) pending = lend(&block);
      return std::string_view(block, pending);
    }
    block = buffer.data();
    while (pending < want) {
      size_t n = source(buffer.data() + pending, buffer.size() - pending);
      if (n == 0) break;
      pending += n;
    }
    return std::string_view(buffer.data(), pending);
  }

  // The next block of the source in block (0 bytes at its end), hashed
  // behind and counted. Throws what the source throws.
  size_t fill() {
    hash.wait();  // the last block's hashing still reads it
    size_t n = pending;
    pending = 0;
    if (n == 0) n = next_block();
    if (hashing) hash.update(block, n);
    bytes += n;
    if (progress && *progress && (bytes - last_report >= (4u << 20) || n == 0)) {
      last_report = bytes;
      (*progress)(bytes);
    }
    return n;
  }

  // fill() as libarchive's read callback.
  static la_ssize_t read(archive*, void* self_ptr, const void** out) {
    auto* self = static_cast<HashingReader*>(self_ptr);
    size_t n;
    try {
      n = self->fill();
    } catch (const Error& e) {
      self->error = e.err() ? e.err() : EIO;
      self->failure = std::current_exception();
      return -1;
    } catch (...) {
      self->error = EIO;
      self->failure = std::current_exception();
      return -1;
    }
    *out = self->block;
    return static_cast<la_ssize_t>(n);
  }

  // Hashes what libarchive did not read (padding after the end-of-archive blocks).
  void drain() {
    for (;;) {
      hash.wait();
      size_t n = pending;
      pending = 0;
      if (n == 0) n = next_block();
      if (n == 0) break;
      if (hashing) hash.update(block, n);
      bytes += n;
    }
    if (progress && *progress) (*progress)(bytes);
  }

  // A source that failed says why itself (a download error, say), not libarchive.
  void rethrow_failure() const {
    if (failure && !from_fd) std::rethrow_exception(failure);
  }
};

std::string archive_error(archive* a, const HashingReader& reader) {
  reader.rethrow_failure();
  if (reader.error) return Error::errno_text(reader.error);
  const char* s = archive_error_string(a);
  return s ? s : "unknown archive error";
}

// The uncompressed stream of an input in any compression (or none), block
// by block.
class Decompressor {
 public:
  virtual ~Decompressor() = default;
  // The next block of the uncompressed stream, valid until the next call
  // (false at its end). Throws "<what>: cannot decompress: <why>", or the
  // source's own error as it is.
  virtual bool next(const void** block, size_t* size) = 0;
  // Whether a block stays valid through the following next() too (two
  // buffers used in turn), so that hashing it can overlap decompressing.
  virtual bool keeps_previous_block() const { return false; }
};

// Any compression libarchive's filters know, or none: its "raw" format's
// one entry is the uncompressed stream.
class ArchiveDecompressor final : public Decompressor {
 public:
  ArchiveDecompressor(HashingReader& input, const std::string& what) : input_(input), what_(what), a_(archive_read_new()) {
    archive_read_support_filter_all(a_.get());
    archive_read_support_format_raw(a_.get());
    archive_read_support_format_empty(a_.get());
    if (archive_read_open(a_.get(), &input_, nullptr, &HashingReader::read, nullptr) != ARCHIVE_OK)
      throw Error(what_ + ": cannot read: " + archive_error(a_.get(), input_));
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(a_.get(), &entry);
    if (r == ARCHIVE_EOF) eof_ = true;  // an empty input: an empty stream
    else if (r != ARCHIVE_OK) throw Error(what_ + ": cannot decompress: " + archive_error(a_.get(), input_));
  }

  bool next(const void** block, size_t* size) override {
    *size = 0;
    while (!eof_) {
      la_int64_t offset;
      int r = archive_read_data_block(a_.get(), block, size, &offset);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) throw Error(what_ + ": cannot decompress: " + archive_error(a_.get(), input_));
      if (*size) return true;
    }
    eof_ = true;
    *size = 0;
    return false;
  }

 private:
  HashingReader& input_;
  std::string what_;
  ArchivePtr a_;
  bool eof_ = false;
};

// ISA-L's inflate, dlopen'ed on first use as libarchive and libcurl are
// (commands that never unpack a layer never map it). Null when the
// library is missing: gzip then goes through libarchive (zlib), slower.
struct IsalInflate {
  decltype(&::isal_inflate_init) init;
  decltype(&::isal_inflate_reset) reset;
  decltype(&::isal_inflate) inflate;
};

const IsalInflate* isal() {
  static const IsalInflate* loaded = []() -> const IsalInflate* {
    void* lib = ::dlopen("libisal.so.2", RTLD_NOW | RTLD_LOCAL);  // Debian's libisal2
    if (!lib) return nullptr;
    static IsalInflate f{reinterpret_cast<decltype(&::isal_inflate_init)>(::dlsym(lib, "isal_inflate_init")),
                         reinterpret_cast<decltype(&::isal_inflate_reset)>(::dlsym(lib, "isal_inflate_reset")),
                         reinterpret_cast<decltype(&::isal_inflate)>(::dlsym(lib, "isal_inflate"))};
    return f.init && f.reset && f.inflate ? &f : nullptr;
  }();
  return loaded;
}

// gzip through Intel's ISA-L (igzip), about 3x zlib's inflate speed, the
// largest CPU cost of a pull after sha256. Members follow each other
// (pigz, concatenated files); each one's CRC-32 and length are checked.
// After a member, bytes that cannot start another (not 0x1f) end the
// stream and are ignored, as gzip(1) ignores trailing zeros and
// libarchive any trailer: the blob digest still covers them.
class GzipDecompressor final : public Decompressor {
 public:
  GzipDecompressor(const IsalInflate& isal, HashingReader& input, const std::string& what)
      : isal_(isal), input_(input), what_(what), state_(std::make_unique<inflate_state>()) {
    isal_.init(state_.get());
    state_->crc_flag = ISAL_GZIP;
  }

  bool keeps_previous_block() const override { return true; }

  bool next(const void** block, size_t* size) override {
    *size = 0;
    if (done_) return false;
    std::vector<uint8_t>& out = out_[turn_];
    turn_ ^= 1;
    inflate_state& st = *state_;
    st.next_out = out.data();
    st.avail_out = static_cast<uint32_t>(out.size());
    while (st.avail_out) {
      if (st.block_state == ISAL_BLOCK_FINISH) {  // a member ended, its trailer checked
        if (!st.avail_in && !input_end_) feed();
        if (!st.avail_in || st.next_in[0] != 0x1f) {
          done_ = true;
          break;
        }
        next_member();
      }
      if (!st.avail_in && !input_end_) feed();
      uint32_t in_before = st.avail_in, out_before = st.avail_out;
      int block_before = st.block_state;
      int r = isal_.inflate(&st);
      if (r < 0) fail(r);
      if (st.avail_in == in_before && st.avail_out == out_before && st.block_state == block_before) {
        if (input_end_) throw Error(what_ + ": cannot decompress: truncated gzip input");
        if (st.avail_in) throw Error(what_ + ": cannot decompress: gzip decoder made no progress");
      }
    }
    *block = out.data();
    *size = out.size() - st.avail_out;
    if (*size == 0) return false;  // done_ is set: nothing came after the last block
    return true;
  }

 private:
  static constexpr size_t kOutBlock = 64 << 10;  // x2 per layer being pulled: peak RSS counts (issue 7: < 30 MiB)

  void feed() {
    size_t n;
    try {
      n = input_.fill();
    } catch (const Error& e) {
      if (!input_.from_fd) throw;  // a download's own error, as it is
      throw Error(what_ + ": cannot read: " + (e.err() ? Error::errno_text(e.err()) : std::string(e.what())));
    }
    state_->next_in = reinterpret_cast<uint8_t*>(const_cast<char*>(input_.block));
    state_->avail_in = static_cast<uint32_t>(n);
    if (n == 0) input_end_ = true;
  }

  // Starts the member that follows a finished one (a reset forgets the buffers).
  void next_member() {
    inflate_state& st = *state_;
    uint8_t* in = st.next_in;
    uint32_t in_size = st.avail_in;
    uint8_t* out = st.next_out;
    uint32_t out_size = st.avail_out;
    isal_.reset(&st);
    st.crc_flag = ISAL_GZIP;
    st.next_in = in;
    st.avail_in = in_size;
    st.next_out = out;
    st.avail_out = out_size;
  }

  [[noreturn]] void fail(int code) {
    const char* why = "gzip decoding failed";
    switch (code) {
      case ISAL_INVALID_BLOCK: why = "corrupt gzip data (invalid deflate block)"; break;
      case ISAL_INVALID_SYMBOL: why = "corrupt gzip data (invalid deflate code)"; break;
      case ISAL_INVALID_LOOKBACK: why = "corrupt gzip data (distance too far back)"; break;
      case ISAL_INVALID_WRAPPER: why = "invalid gzip header"; break;
      case ISAL_UNSUPPORTED_METHOD: why = "unsupported gzip compression method"; break;
      case ISAL_INCORRECT_CHECKSUM: why = "gzip checksum mismatch (the CRC-32 or length in a member's trailer)"; break;
    }
    throw Error(what_ + ": cannot decompress: " + why);
  }

  const IsalInflate& isal_;
  HashingReader& input_;
  std::string what_;
  std::unique_ptr<inflate_state> state_;
  std::vector<uint8_t> out_[2] = {std::vector<uint8_t>(kOutBlock), std::vector<uint8_t>(kOutBlock)};
  int turn_ = 0;
  bool input_end_ = false;
  bool done_ = false;
};

// The decompressor for what input starts with: gzip by ISA-L,
// anything else (or gzip without ISA-L) by libarchive.
std::unique_ptr<Decompressor> open_decompressor(HashingReader& input, const std::string& what) {
  std::string_view head;
  try {
    head = input.peek(2);
  } catch (const Error& e) {
    if (!input.from_fd) throw;
    throw Error(what + ": cannot read: " + (e.err() ? Error::errno_text(e.err()) : std::string(e.what())));
  }
  if (head.size() >= 2 && head[0] == '\x1f' && head[1] == '\x8b' && isal())
    return std::make_unique<GzipDecompressor>(*isal(), input, what);
  return std::make_unique<ArchiveDecompressor>(input, what);
}

void write_all(int fd, const void* data, size_t size, const std::string& what) {
  if (!berth::write_all(fd, static_cast<const char*>(data), size)) throw_errno("cannot write " + what);
}

// The process umask, read without changing it (umask(2) cannot read it
// alone, and flipping it would race other threads creating files).
mode_t current_umask() {
  static const mode_t mask = [] {
    std::string status;
    if (read_file_if_exists("/proc/self/status", status)) {
      size_t at = status.find("\nUmask:");
      if (at != std::string::npos) return static_cast<mode_t>(std::strtoul(status.c_str() + at + 8, nullptr, 8));
    }
    return static_cast<mode_t>(07777);  // unknown: every mode is set explicitly
  }();
  return mask;
}

// Opens the directory at rel below root in one syscall, refusing any
// symlink on the way and anything outside root. -1 with errno set when it
// cannot (the caller then walks component by component for a precise error).
int open_dir_beneath(int root, const std::string& rel) {
  open_how how{};
  how.flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  return static_cast<int>(::syscall(SYS_openat2, root, rel.c_str(), &how, sizeof how));
}

}  // namespace

Compression detect_compression(int fd) {
  char m[6] = {};
  ssize_t n = ::pread(fd, m, sizeof m, 0);
  return detect_compression(std::string_view(m, n > 0 ? static_cast<size_t>(n) : 0));
}

Compression detect_compression(std::string_view head) {
  const auto* m = reinterpret_cast<const unsigned char*>(head.data());
  size_t n = head.size();
  if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) return Compression::Gzip;
  if (n >= 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd) return Compression::Zstd;
  if (n >= 3 && m[0] == 'B' && m[1] == 'Z' && m[2] == 'h') return Compression::Bzip2;
  if (n >= 6 && m[0] == 0xfd && std::memcmp(m + 1, "7zXZ", 4) == 0 && m[5] == 0) return Compression::Xz;
  return Compression::None;
}

const char* to_string(Compression c) {
  switch (c) {
    case Compression::None: return "none";
    case Compression::Gzip: return "gzip";
    case Compression::Zstd: return "zstd";
    case Compression::Bzip2: return "bzip2";
    case Compression::Xz: return "xz";
  }
  return "?";
}

DecompressResult decompress_stream(int in_fd, int out_fd, const std::string& what, const BytesProgress& progress) {
  HashingReader reader(in_fd);
  reader.progress = &progress;
  std::unique_ptr<Decompressor> decompressor = open_decompressor(reader, what);
  DecompressResult result;
  Sha256Behind out_hash;  // hashes a block while the next one is written (and decompressed, when the decompressor allows)
  const void* block;
  size_t size;
  uint64_t flushing = 0;
  for (;;) {
    if (!decompressor->keeps_previous_block()) out_hash.wait();
    if (!decompressor->next(&block, &size)) break;
    out_hash.update(block, size);
    write_all(out_fd, block, size, what);
    result.output_size += size;
    // The store keeps the tar and syncs it before the commit: the disk starts on it now.
    if (result.output_size - flushing >= kWritebackEvery) {
      ::sync_file_range(out_fd, static_cast<off_t>(flushing), static_cast<off_t>(result.output_size - flushing), SYNC_FILE_RANGE_WRITE);
      flushing = result.output_size;
    }
  }
  reader.drain();
  result.input_digest = reader.hash.finish();
  result.input_size = reader.bytes;
  result.diff_id = out_hash.finish();
  return result;
}

void remove_tree(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) throw Error("cannot remove " + path + ": " + ec.message());
}

namespace {

// Splits an archive path into safe components, or throws naming the entry.
std::vector<std::string> safe_components(const std::string& raw, const std::string& layer, const char* role) {
  auto fail = [&](const std::string& why) -> std::vector<std::string> {
    throw Error("layer " + layer + ": " + role + " \"" + raw + "\": " + why);
  };
  if (!raw.empty() && raw[0] == '/') return fail("absolute path");
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= raw.size()) {
    size_t slash = raw.find('/', start);
    std::string part = raw.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part == "..") return fail("path escapes the layer (\"..\")");
    if (!part.empty() && part != ".") parts.push_back(std::move(part));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return parts;
}

std::string join_parts(const std::vector<std::string>& parts, size_t count) {
  std::string out;
  for (size_t i = 0; i < count; ++i) out += (i ? "/" : "") + parts[i];
  return out;
}

using detail::CreateWorkers;
using detail::FileJob;
using detail::FileMeta;

// Small files go to worker threads once a layer has had this many of
// them: a layer of a few files does not start threads. As many workers as
// CPUs, at most 3 (files of one directory contend for its lock), none on
// one CPU. One worker on 2 CPUs only moves the creates off the reading
// thread: nothing gained for a plain tar, where reading costs little.
unsigned default_create_workers() {
  unsigned cpus = std::thread::hardware_concurrency();
  return cpus < 2 ? 0 : std::min(3u, cpus);
}
std::atomic<unsigned> g_create_workers{default_create_workers()};
std::atomic<unsigned> g_create_workers_after{64};
std::atomic<bool> g_create_workers_hold{false};

struct DeferredDirTime {
  std::vector<std::string> parts;
  timespec times[2];
};

class Unpacker {
 public:
  Unpacker(const std::string& dest, const std::string& layer, bool writeback) : dest_(dest), layer_(layer), writeback_(writeback) {
    root_ = UniqueFd(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!root_) throw_errno("cannot open " + dest);
    is_root_ = ::geteuid() == 0;
    euid_ = ::geteuid();
    egid_ = ::getegid();
    umask_ = current_umask();
  }

  uint64_t content_size = 0;

  void entry(archive* a, archive_entry* e) {
    const char* raw_name = archive_entry_pathname(e);
    if (!raw_name) throw Error("layer " + layer_ + ": an entry has an unreadable name");
    entry_name_ = raw_name;
    std::vector<std::string> parts = safe_components(entry_name_, layer_, "entry");
    const char* hardlink = archive_entry_hardlink(e);
    mode_t type = archive_entry_filetype(e);
    if (parts.empty()) {  // "./": the layer root's own metadata
      if (type == AE_IFDIR) apply_dir_metadata(root_.get(), e, parts);
      return;
    }
    const std::string key = join_parts(parts, parts.size());
    std::string name = parts.back();
    parts.pop_back();
    int parent = parent_fd(parts);
    if (type == AE_IFREG && !hardlink && name.rfind(".wh.", 0) != 0 && hand_over(a, e, key, name)) return;
    // From here on, this entry's own path is touched: after any worker's job on it.
    settle(key);

    if (name.rfind(".wh.", 0) == 0) {
      if (name == ".wh..wh..opq") {
        if (::fsetxattr(parent, "trusted.overlay.opaque", "y", 1, 0) != 0) fail_errno("cannot mark directory opaque");
        return;
      }
      if (name.rfind(".wh..wh.", 0) == 0) return;  // aufs bookkeeping (.wh..wh.plnk etc.): no meaning for overlayfs
      std::string target = name.substr(4);
      if (target.empty() || target == "." || target == "..") fail("bad whiteout name");
      settle(parts.empty() ? target : join_parts(parts, parts.size()) + "/" + target);
      remove_existing(parent, target, false);
      if (::mknodat(parent, target.c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0) fail_errno("cannot create whiteout");
      return;
    }

    if (hardlink) {
      std::vector<std::string> target = safe_components(hardlink, layer_, "hardlink target");
      if (target.empty()) fail("hardlink to the layer root");
      settle(join_parts(target, target.size()));
      std::string target_name = target.back();
      target.pop_back();
      UniqueFd target_parent = walk(target, false);
      if (!target_parent) fail("hardlink target \"" + std::string(hardlink) + "\" is not in the layer");
      struct stat st {};
      if (::fstatat(target_parent.get(), target_name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        fail("hardlink target \"" + std::string(hardlink) + "\" is not in the layer");
      if (S_ISDIR(st.st_mode)) fail("hardlink to a directory");
      remove_existing(parent, name, false);
      if (::linkat(target_parent.get(), target_name.c_str(), parent, name.c_str(), 0) != 0) fail_errno("cannot create hardlink");
      return;
    }

    switch (type) {
      case AE_IFDIR: {
        struct stat st {};
        bool exists = ::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
        if (exists && !S_ISDIR(st.st_mode)) {
          remove_existing(parent, name, false);
          exists = false;
        }
        if (!exists && ::mkdirat(parent, name.c_str(), 0700) != 0) fail_errno("cannot create directory");
        dir_keys_.insert(key);
        UniqueFd dir(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!dir) fail_errno("cannot open directory");
        parts.push_back(name);
        apply_dir_metadata(dir.get(), e, parts);
        return;
      }
      case AE_IFREG: {
        // Create first; only a name already taken (rare) costs the extra remove and retry.
        constexpr int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
        FileMeta meta = file_meta(e);
        UniqueFd fd(::openat(parent, name.c_str(), flags, meta.create_mode));
        if (!fd && errno == EEXIST) {
          remove_existing(parent, name, false);
          fd = UniqueFd(::openat(parent, name.c_str(), flags, meta.create_mode));
        }
        if (!fd) fail_errno("cannot create file");
        write_data(a, fd.get(), archive_entry_size(e));
        content_size += static_cast<uint64_t>(archive_entry_size(e));
        // The disk starts on a big file now, while the next ones are
        // unpacked, rather than at the store's syncfs (which then waited
        // ~0.25 s for a 200 MB pull). Small files are left to that syncfs:
        // kicking each one cost more system time than it saved.
        if (writeback_ && archive_entry_size(e) >= kWritebackMin) ::sync_file_range(fd.get(), 0, 0, SYNC_FILE_RANGE_WRITE);
        if (meta.chown) set_owner(fd.get(), "", e, 0);
        if (meta.chmod && ::fchmod(fd.get(), meta.perm) != 0) fail_errno("cannot chmod");
        set_xattrs_fd(fd.get(), e);
        if (::futimens(fd.get(), meta.times) != 0) fail_errno("cannot set times");
        return;
      }
      case AE_IFLNK: {
        remove_existing(parent, name, false);
        const char* target = archive_entry_symlink(e);
        if (::symlinkat(target ? target : "", parent, name.c_str()) != 0) fail_errno("cannot create symlink");
        content_size += target ? std::strlen(target) : 0;  // docker counts a symlink's size too
        finish_non_regular(parent, name, e, false);
        return;
      }
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO: {
        remove_existing(parent, name, false);
        dev_t dev = type == AE_IFIFO ? 0 : makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
        if (::mknodat(parent, name.c_str(), type | (archive_entry_perm(e) & 07777), dev) != 0) {
          if (errno == EPERM && !is_root_ && type != AE_IFIFO) return;  // unprivileged: devices cannot be made; skip as rootless docker does
          fail_errno("cannot create device node");
        }
        finish_non_regular(parent, name, e, true);
        return;
      }
      default:
        fail("unsupported entry type");
    }
  }

  void finish() {
    if (workers_) workers_->wait_idle();
    // Directory mtimes last: creating their children changed them.
    // A directory a later entry replaced (by a symlink, say) is refused by
    // openat2 or not found: nothing to stamp. No fsync here: the store
    // flushes every staged layer with one syncfs before it commits them.
    for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
      if (it->parts.empty()) {
        ::futimens(root_.get(), it->times);
        continue;
      }
      UniqueFd dir(open_dir_beneath(root_.get(), join_parts(it->parts, it->parts.size())));
      if (dir) ::futimens(dir.get(), it->times);
    }
  }

 private:
  [[noreturn]] void fail(const std::string& why) {
    throw Error("layer " + layer_ + ": entry \"" + entry_name_ + "\": " + why);
  }
  [[noreturn]] void fail_errno(const std::string& why) {
    throw Error("layer " + layer_ + ": entry \"" + entry_name_ + "\": " + why, errno);
  }

  static timespec entry_mtime(archive_entry* e) {
    if (!archive_entry_mtime_is_set(e)) return timespec{0, UTIME_NOW};
    return timespec{archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
  }
  static timespec entry_atime(archive_entry* e) {
    if (!archive_entry_atime_is_set(e)) return entry_mtime(e);
    return timespec{archive_entry_atime(e), archive_entry_atime_nsec(e)};
  }

  // Opens the directory at parts below the root, one component at a time
  // with O_NOFOLLOW, so no symlink is ever followed. With create, missing
  // directories are made (0755, as docker does); otherwise returns an empty fd.
  UniqueFd walk(const std::vector<std::string>& parts, bool create) {
    UniqueFd current(::fcntl(root_.get(), F_DUPFD_CLOEXEC, 0));
    for (size_t i = 0; i < parts.size(); ++i) {
      int fd = ::openat(current.get(), parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT && create) {
        if (::mkdirat(current.get(), parts[i].c_str(), 0755) != 0 && errno != EEXIST) fail_errno("cannot create parent directory");
        fd = ::openat(current.get(), parts[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      }
      if (fd < 0) {
        int err = errno;
        if (err == ENOENT && !create) return UniqueFd();
        struct stat st {};
        if (::fstatat(current.get(), parts[i].c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
          fail("path goes through symlink \"" + join_parts(parts, i + 1) + "\"");
        if (err == ENOTDIR) fail("parent \"" + join_parts(parts, i + 1) + "\" is not a directory");
        errno = err;
        fail_errno("cannot open parent \"" + join_parts(parts, i + 1) + "\"");
      }
      current = UniqueFd(fd);
    }
    return current;
  }

  // The parent directory fd, cached because tar entries come grouped by directory.
  int parent_fd(const std::vector<std::string>& parts) {
    std::string key = join_parts(parts, parts.size());
    if (cached_fd_ && key == cached_key_) return cached_fd_->get();
    // A worker may still be making a file where this path needs a directory.
    if (workers_ && workers_->busy_with_prefix(parts)) workers_->wait_idle();
    // Usually the directory exists and one openat2 finds it; a missing
    // directory or a refused path (a symlink on the way) takes the walk,
    // which creates parents and names the offending component.
    int fd = key.empty() ? -1 : open_dir_beneath(root_.get(), key);
    cached_fd_ = std::make_shared<UniqueFd>(fd >= 0 ? UniqueFd(fd) : walk(parts, true));
    cached_key_ = key;
    // Each directory on the way is known now: no worker is handed a file
    // that replaces one (it could remove it under another worker's jobs).
    for (size_t i = 1; i <= parts.size(); ++i) dir_keys_.insert(join_parts(parts, i));
    return cached_fd_->get();
  }

  // A file that needs no chown and whose mode the umask leaves alone is
  // created with its final mode: no fchmod (setuid/setgid bits always get
  // one, after the chown that would clear them).
  FileMeta file_meta(archive_entry* e) const {
    FileMeta m;
    m.perm = archive_entry_perm(e) & 07777;
    m.chown = !owner_matches(e);
    m.chmod = m.chown || (m.perm & 07000) != 0 || (m.perm & umask_) != 0;
    m.create_mode = m.chmod ? 0600 : m.perm;
    m.uid = static_cast<uid_t>(archive_entry_uid(e));
    m.gid = static_cast<gid_t>(archive_entry_gid(e));
    m.times[0] = entry_atime(e);
    m.times[1] = entry_mtime(e);
    return m;
  }

  // Waits for the workers when one has a job on key.
  void settle(const std::string& key) {
    if (workers_ && workers_->busy_with(key)) workers_->wait_idle();
  }

  // A small regular file goes, read whole, to a worker that creates it,
  // once the layer has had enough of them to be worth threads. Not: files
  // with xattrs, or a name known as a directory here. Returns
  // false when the entry is left to the caller.
  bool hand_over(archive* a, archive_entry* e, const std::string& key, const std::string& name) {
    la_int64_t size = archive_entry_size(e);
    if (size < 0 || static_cast<size_t>(size) > CreateWorkers::kMaxFileSize || archive_entry_xattr_reset(e) > 0 || dir_keys_.count(key))
      return false;
    if (!workers_) {
      unsigned workers = g_create_workers.load();
      if (workers == 0 || no_workers_ || ++small_files_ <= g_create_workers_after.load()) return false;
      try {
        workers_ = std::make_unique<CreateWorkers>(workers, layer_, is_root_, g_create_workers_hold.load());
      } catch (const std::system_error&) {
        no_workers_ = true;  // no thread to be had (a pids limit): this thread makes every file, as without workers
        return false;
      }
    }
    FileJob job;
    job.parent = cached_fd_;
    job.key = key;
    job.name = name;
    job.entry = entry_name_;
    job.data.reserve(static_cast<size_t>(size));
    for_each_data_block(a, [&](const char* p, size_t len, la_int64_t offset) {
      if (offset < static_cast<la_int64_t>(job.data.size()) || offset + static_cast<la_int64_t>(len) > size)
        fail("data does not match the entry's size");
      job.data.resize(static_cast<size_t>(offset));  // a hole (sparse entry) is written as zeros: at most 64 KiB
      job.data.append(p, len);
    });
    job.data.resize(static_cast<size_t>(size));
    job.meta = file_meta(e);
    content_size += static_cast<uint64_t>(size);
    workers_->submit(std::move(job));
    return true;
  }

  // A later entry replaces an earlier one of the same name (directories merge).
  void remove_existing(int parent, const std::string& name, bool keep_dir) {
    struct stat st {};
    if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
    if (S_ISDIR(st.st_mode)) {
      if (keep_dir) return;
      if (workers_) workers_->wait_idle();  // its files may still be being made
      // The cached fd is always this entry's parent, so removing a child of it leaves the cache valid.
      std::string path = "/proc/self/fd/" + std::to_string(parent) + "/" + name;
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
      if (ec) fail("cannot replace directory: " + ec.message());
      return;
    }
    if (::unlinkat(parent, name.c_str(), 0) != 0) fail_errno("cannot replace existing entry");
  }

  void write_data(archive* a, int fd, la_int64_t size) {
    if (size >= kDirectMin && !no_direct_) {
      write_data_direct(a, fd, size);
      return;
    }
    la_int64_t written_end = 0;
    for_each_data_block(a, [&](const char* p, size_t len, la_int64_t offset) {
      if (!berth::pwrite_all(fd, p, len, static_cast<uint64_t>(offset))) fail_errno("cannot write file");
      written_end = std::max(written_end, offset + static_cast<la_int64_t>(len));
    });
    // Sparse files end in a hole that no block covers.
    if (written_end < size && ::ftruncate(fd, size) != 0) fail_errno("cannot size file");
  }

  // Calls f(data, size, offset) for each block of the entry's data (a
  // sparse entry's offsets skip its holes).
  template <class F>
  void for_each_data_block(archive* a, F&& f) {
    const void* block;
    size_t len;
    la_int64_t offset;
    for (;;) {
      int r = archive_read_data_block(a, &block, &len, &offset);
      if (r == ARCHIVE_EOF) return;
      if (r < ARCHIVE_WARN) fail(std::string("cannot read data: ") + (archive_error_string(a) ? archive_error_string(a) : "?"));
      f(static_cast<const char*>(block), len, offset);
    }
  }

  // A big file goes around the page cache (see direct_write.h), but for
  // the part after a hole (a sparse file), which goes through it.
  void write_data_direct(archive* a, int fd, la_int64_t size) {
    if (!direct_) direct_ = std::make_unique<detail::DirectFileWriter>();
    detail::DirectFileWriter& out = *direct_;
    if (!out.start(fd)) {
      no_direct_ = true;  // this filesystem: the next big files as the small ones
      write_data(a, fd, size);
      return;
    }
    struct Settle {  // no write of the writer's outlives this fd
      detail::DirectFileWriter& out;
      ~Settle() { out.abandon(); }
    } settle{out};
    auto check = [&](int err) {
      if (err) {
        errno = err;
        fail_errno("cannot write file");
      }
    };
    bool streaming = true;
    la_int64_t written_end = 0;
    for_each_data_block(a, [&](const char* p, size_t len, la_int64_t offset) {
      written_end = std::max(written_end, offset + static_cast<la_int64_t>(len));
      if (streaming && offset != static_cast<la_int64_t>(out.offset())) {  // a hole
        check(out.finish());
        streaming = false;
      }
      if (streaming)
        check(out.append(p, len));
      else if (!berth::pwrite_all(fd, p, len, static_cast<uint64_t>(offset)))
        fail_errno("cannot write file");
    });
    if (streaming) check(out.finish());
    if (written_end < size && ::ftruncate(fd, size) != 0) fail_errno("cannot size file");
  }

  bool owner_matches(archive_entry* e) const {
    return static_cast<uid_t>(archive_entry_uid(e)) == euid_ && static_cast<gid_t>(archive_entry_gid(e)) == egid_;
  }

  void set_owner(int fd, const std::string& name, archive_entry* e, int flags) {
    uid_t uid = static_cast<uid_t>(archive_entry_uid(e));
    gid_t gid = static_cast<gid_t>(archive_entry_gid(e));
    if (uid == euid_ && gid == egid_) return;  // new entries are ours already: one syscall less per file
    int r = name.empty() ? ::fchown(fd, uid, gid) : ::fchownat(fd, name.c_str(), uid, gid, flags);
    if (r != 0 && is_root_) fail_errno("cannot set owner");
  }

  static bool skip_xattr(const char* name) {
    // overlayfs reads trusted.overlay.* itself; a layer must not smuggle in redirects or opaque marks.
    return std::strncmp(name, "trusted.overlay.", 16) == 0;
  }

  void set_xattrs_fd(int fd, archive_entry* e) {
    if (archive_entry_xattr_reset(e) == 0) return;
    const char* name;
    const void* value;
    size_t size;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
      if (skip_xattr(name)) continue;
      if (::fsetxattr(fd, name, value, size, 0) != 0 && is_root_ && errno != ENOTSUP)
        fail_errno(std::string("cannot set xattr ") + name);
    }
  }

  void apply_dir_metadata(int dir_fd, archive_entry* e, const std::vector<std::string>& parts) {
    set_owner(dir_fd, "", e, 0);
    if (::fchmod(dir_fd, archive_entry_perm(e) & 07777) != 0) fail_errno("cannot chmod directory");
    set_xattrs_fd(dir_fd, e);
    DeferredDirTime d{parts, {entry_atime(e), entry_mtime(e)}};
    dir_times_.push_back(std::move(d));
  }

  void finish_non_regular(int parent, const std::string& name, archive_entry* e, bool chmod) {
    set_owner(parent, name, e, AT_SYMLINK_NOFOLLOW);
    if (chmod && ::fchmodat(parent, name.c_str(), archive_entry_perm(e) & 07777, 0) != 0) fail_errno("cannot chmod");
    if (archive_entry_xattr_reset(e) > 0) {
      // No fd can be opened on a symlink or device without following or opening it; name it through the parent fd.
      std::string path = "/proc/self/fd/" + std::to_string(parent) + "/" + name;
      const char* xname;
      const void* value;
      size_t size;
      while (archive_entry_xattr_next(e, &xname, &value, &size) == ARCHIVE_OK) {
        if (skip_xattr(xname)) continue;
        if (::lsetxattr(path.c_str(), xname, value, size, 0) != 0 && is_root_ && errno != ENOTSUP && errno != EPERM)
          fail_errno(std::string("cannot set xattr ") + xname);
      }
    }
    timespec t[2] = {entry_atime(e), entry_mtime(e)};
    ::utimensat(parent, name.c_str(), t, AT_SYMLINK_NOFOLLOW);
  }

  std::string dest_;
  std::string layer_;
  std::string entry_name_;
  UniqueFd root_;
  bool is_root_ = false;
  uid_t euid_ = 0;
  gid_t egid_ = 0;
  mode_t umask_ = 07777;
  bool writeback_ = false;
  static constexpr la_int64_t kWritebackMin = 64 << 10;
  // Files this big are written around the page cache (each unpack holding
  // two blocks of 256 KiB for it: peak RSS counts, issue 7).
  static constexpr la_int64_t kDirectMin = 1 << 20;
  std::unique_ptr<detail::DirectFileWriter> direct_;
  bool no_direct_ = false;
  std::shared_ptr<UniqueFd> cached_fd_;  // shared with the jobs made in it
  std::string cached_key_;
  std::vector<DeferredDirTime> dir_times_;
  std::unordered_set<std::string> dir_keys_;  // every directory made or passed through
  unsigned small_files_ = 0;
  bool no_workers_ = false;
  // Last: destroyed first, so that no worker outlives what its jobs use.
  std::unique_ptr<CreateWorkers> workers_;
};

}  // namespace

namespace {

// Hands libarchive's tar reader the uncompressed blocks of a decompressing
// (raw format) archive, hashing them and copying them to the tar file.
struct TeeReader {
  explicit TeeReader(bool hash_on_thread) : hash(hash_on_thread) {}
  Decompressor* inner = nullptr;
  int tar_fd = -1;
  Sha256Behind hash;  // hashes a block while it is written and unpacked (on_thread), or at once
  uint64_t bytes = 0;
  bool eof = false;
  std::exception_ptr failure;

  // The hash may still be reading a block of inner's.
  ~TeeReader() { hash.wait(); }

  // The next uncompressed block (size 0 at the end). Throws the decompressor's errors.
  void next(const void** block, size_t* size) {
    *size = 0;
    if (eof) return;
    // The last block may be overwritten by the next one while it is still being hashed.
    if (!inner->keeps_previous_block()) hash.wait();
    if (!inner->next(block, size)) {
      eof = true;
      *size = 0;
      return;
    }
    hash.update(*block, *size);
    bytes += *size;
    if (tar_fd >= 0) write_all(tar_fd, *block, *size, "the layer tar");
  }

  static la_ssize_t read(archive*, void* self_ptr, const void** out) {
    auto* self = static_cast<TeeReader*>(self_ptr);
    size_t size = 0;
    try {
      self->next(out, &size);
    } catch (...) {
      self->failure = std::current_exception();
      return -1;
    }
    return static_cast<la_ssize_t>(size);
  }

  void drain() {
    const void* block;
    size_t size;
    while (!eof) next(&block, &size);
  }
};

StreamUnpackResult unpack_from(HashingReader& input, int tar_fd, const std::string& dest_dir, const std::string& layer_name,
                               bool hash_input, const BytesProgress& progress, bool start_writeback, bool hash_on_thread) {
  const std::string what = "layer " + layer_name;
  input.progress = &progress;
  input.hashing = hash_input;
  std::unique_ptr<Decompressor> inner = open_decompressor(input, what);
  TeeReader tee(hash_on_thread);
  tee.inner = inner.get();
  tee.tar_fd = tar_fd;

  ArchivePtr a(archive_read_new());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_empty(a.get());
  auto tar_error = [&]() -> std::string {
    if (tee.failure) std::rethrow_exception(tee.failure);
    const char* s = archive_error_string(a.get());
    return s ? s : "unknown archive error";
  };
  if (archive_read_open(a.get(), &tee, nullptr, &TeeReader::read, nullptr) != ARCHIVE_OK)
    throw Error(what + ": cannot read: " + tar_error());
  Unpacker unpacker(dest_dir, layer_name, start_writeback);
  try {
    for (;;) {
      archive_entry* entry = nullptr;
      int r = archive_read_next_header(a.get(), &entry);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) throw Error(what + ": not a valid tar: " + tar_error());
      unpacker.entry(a.get(), entry);
    }
  } catch (const Error&) {
    if (tee.failure) std::rethrow_exception(tee.failure);  // the source's own error says more than "cannot read data"
    throw;
  }
  if (tee.failure) std::rethrow_exception(tee.failure);
  unpacker.finish();
  tee.drain();  // padding after the end-of-archive blocks
  input.drain();
  StreamUnpackResult result;
  if (hash_input) result.input_digest = input.hash.finish();
  result.input_size = input.bytes;
  result.diff_id = tee.hash.finish();
  result.tar_size = tee.bytes;
  result.content_size = unpacker.content_size;
  return result;
}

}  // namespace

StreamUnpackResult unpack_layer_stream(const ReadFn& read, int tar_fd, const std::string& dest_dir, const std::string& layer_name,
                                       bool hash_input, const BytesProgress& progress, bool start_writeback, bool hash_on_thread) {
  HashingReader input(read);
  return unpack_from(input, tar_fd, dest_dir, layer_name, hash_input, progress, start_writeback, hash_on_thread);
}

StreamUnpackResult unpack_layer_stream(const BorrowFn& borrow, int tar_fd, const std::string& dest_dir, const std::string& layer_name,
                                       bool hash_input, const BytesProgress& progress, bool start_writeback, bool hash_on_thread) {
  HashingReader input(borrow);
  return unpack_from(input, tar_fd, dest_dir, layer_name, hash_input, progress, start_writeback, hash_on_thread);
}

UnpackResult unpack_layer(int tar_fd, const std::string& dest_dir, const std::string& layer_name,
                          const BytesProgress& progress, bool compute_digest, bool start_writeback) {
  ArchivePtr a(archive_read_new());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_empty(a.get());
  HashingReader reader(tar_fd);
  reader.progress = &progress;
  reader.hashing = compute_digest;
  if (archive_read_open(a.get(), &reader, nullptr, &HashingReader::read, nullptr) != ARCHIVE_OK)
    throw Error("layer " + layer_name + ": cannot read: " + archive_error(a.get(), reader));
  Unpacker unpacker(dest_dir, layer_name, start_writeback);
  for (;;) {
    archive_entry* entry = nullptr;
    int r = archive_read_next_header(a.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) throw Error("layer " + layer_name + ": not a valid tar: " + archive_error(a.get(), reader));
    unpacker.entry(a.get(), entry);
  }
  unpacker.finish();
  reader.drain();
  UnpackResult result;
  if (compute_digest) result.diff_id = reader.hash.finish();
  result.tar_size = reader.bytes;
  result.content_size = unpacker.content_size;
  return result;
}

CreateWorkersSetting set_create_workers(unsigned workers, unsigned after, bool hold) {
  return {g_create_workers.exchange(workers), g_create_workers_after.exchange(after), g_create_workers_hold.exchange(hold)};
}

void spread_directories(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  int flags = 0;
  if (!fd || ::ioctl(fd.get(), FS_IOC_GETFLAGS, &flags) != 0 || (flags & FS_TOPDIR_FL)) return;
  flags |= FS_TOPDIR_FL;
  ::ioctl(fd.get(), FS_IOC_SETFLAGS, &flags);  // unsupported (ENOTTY, EOPNOTSUPP): nothing changes
}

}  // namespace berth::images
