// Layer tar handling: decompression with digests, and unpacking a layer
// into a directory in the overlayfs form, refusing anything that could
// write outside that directory.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace berth::images {

// Called with the number of input bytes consumed so far.
using BytesProgress = std::function<void(uint64_t)>;
// A byte source: fills up to cap bytes of buf, returns how many (0 at the
// end of the stream). Throws berth::Error on failure.
using ReadFn = std::function<size_t(char* buf, size_t cap)>;
// A byte source that lends its own memory rather than copying into the
// caller's: points *data at its next block and returns its size (0 at the
// end of the stream, again at every later call). The block stays valid
// until the next call. Throws berth::Error on failure.
using BorrowFn = std::function<size_t(const char** data)>;
// Reads fd; errors name `what` ("cannot read WHAT").
ReadFn fd_reader(int fd, const std::string& what = "");

enum class Compression { None, Gzip, Zstd, Bzip2, Xz };
// Looks at the first bytes of the file at fd (pread, offset 0).
Compression detect_compression(int fd);
// Looks at the first bytes of a stream (6 are enough).
Compression detect_compression(std::string_view head);
const char* to_string(Compression c);

struct DecompressResult {
  std::string input_digest;  // sha256 of the bytes read (the compressed blob)
  std::string diff_id;       // sha256 of the uncompressed stream written
  uint64_t input_size = 0;
  uint64_t output_size = 0;
};

// gzip (ISA-L's inflate) may have several members, each one's CRC-32 and
// length checked; after a member, bytes that start no other are ignored
// (but hashed). Other compressions go through libarchive's filters.

// Streams in_fd (tar, gzip, zstd, bzip2 or xz; detected) uncompressed to
// out_fd, a file the disk starts writing every 8 MiB (the store syncs it).
// `what` names the stream in errors (e.g. "layer sha256:ab12..").
DecompressResult decompress_stream(int in_fd, int out_fd, const std::string& what,
                                   const BytesProgress& progress = {});

struct UnpackResult {
  std::string diff_id;        // sha256 of every byte read from tar_fd
  uint64_t tar_size = 0;      // bytes read from tar_fd
  uint64_t content_size = 0;  // sum of regular file and symlink sizes (docker's layer Size)
};

// Unpacks the uncompressed tar read from tar_fd into dest_dir (an existing,
// empty directory). Whiteouts ".wh.NAME" become 0:0 character devices and
// ".wh..wh..opq" sets trusted.overlay.opaque=y on its directory. Rejects,
// naming `layer_name` and the entry: absolute names, "..", entries whose
// path passes through a symlink, hardlinks to targets outside the layer.
// On error dest_dir is left partially filled; the caller removes it.
// With compute_digest false (the caller verified the bytes already) diff_id is left empty.
// With start_writeback, the disk starts writing each big file (64 KiB and
// more) as soon as it is unpacked, so that the syncfs the store does
// before it commits a layer waits less; false leaves all to the kernel (as
// tar -x does). Files of 1 MiB and more are written around the page cache
// (O_DIRECT, see direct_write.h) where the filesystem takes it, either way.
UnpackResult unpack_layer(int tar_fd, const std::string& dest_dir, const std::string& layer_name,
                          const BytesProgress& progress = {}, bool compute_digest = true, bool start_writeback = true);

struct StreamUnpackResult {
  std::string input_digest;   // sha256 of the bytes read (the compressed blob); "" unless hash_input
  std::string diff_id;        // sha256 of the uncompressed tar stream
  uint64_t input_size = 0;
  uint64_t tar_size = 0;
  uint64_t content_size = 0;
};

// One pass over a layer in any compression (tar, gzip, zstd, bzip2, xz;
// detected): decompresses what read yields, writes the uncompressed tar to
// tar_fd when >= 0 (the store passes -1: it keeps the compressed blob;
// the tests compare the copy with the input) and unpacks it
// into dest_dir exactly as unpack_layer does, hashing the tar stream (and
// the input when hash_input). The whole input is read, to its end. An error
// thrown by read is rethrown as it is; on any error dest_dir and tar_fd are
// left partially written (the caller removes them). start_writeback: as unpack_layer's.
// hash_on_thread: the tar stream is hashed on a thread of its own while it
// is unpacked (see Sha256Behind); false hashes it on the calling thread,
// for a caller that runs several unpacks at once on few cores.
StreamUnpackResult unpack_layer_stream(const ReadFn& read, int tar_fd, const std::string& dest_dir, const std::string& layer_name,
                                       bool hash_input, const BytesProgress& progress = {}, bool start_writeback = true,
                                       bool hash_on_thread = true);
// The same over blocks the source lends (a pull's download buffers): no
// copy of the input. The compression is told from the first block alone.
StreamUnpackResult unpack_layer_stream(const BorrowFn& borrow, int tar_fd, const std::string& dest_dir, const std::string& layer_name,
                                       bool hash_input, const BytesProgress& progress = {}, bool start_writeback = true,
                                       bool hash_on_thread = true);

// Both unpacks hand a layer's small regular files (up to 64 KiB, without
// xattrs) to worker threads that create them while the tar is read on,
// once the layer has had `after` of them: as many workers as CPUs, at most
// 3 (none on one CPU), after 64 by default. For tests and benchmarks:
// after 0 sends every such file to a worker; workers 0 creates all on the
// reading thread.
// hold (for tests of the ordering): a worker starts a job only when the
// queue is full or the unpack waits for it, so that the jobs are still
// queued when later entries touch their paths. Returns the setting it replaced.
struct CreateWorkersSetting {
  unsigned workers;
  unsigned after;
  bool hold;
};
CreateWorkersSetting set_create_workers(unsigned workers, unsigned after, bool hold = false);

// Removes a directory tree without following symlinks (ENOENT is fine).
void remove_tree(const std::string& path);

// Asks the filesystem to place each directory made directly in dir in a
// block group of its own (ext4's "top of directory hierarchy" flag, as
// `chattr +T`), as for independent trees: a work dir where layers are
// unpacked. On ext4 without a journal, a file's inode is searched from the
// start of its directory's group past every inode freed in the last
// minutes, so unpacking thousands of files where an image was just removed
// costs ~1 ms a file; a layer in a fresh group does not pay that.
// Best-effort: other filesystems ignore it.
void spread_directories(const std::string& dir);

}  // namespace berth::images
