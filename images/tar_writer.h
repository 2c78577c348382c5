// A minimal streaming tar writer for image archives: the names are short
// and known (blobs/sha256/<hex>, manifest.json), and file bodies are copied
// with sendfile so saving is a kernel-side copy of the stored blobs.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace berth::images {

class TarWriter {
 public:
  explicit TarWriter(int out_fd, int64_t mtime = 0) : fd_(out_fd), mtime_(mtime) {}
  void add_directory(const std::string& name);
  void add_bytes(const std::string& name, std::string_view data);
  // Copies the file at path (size bytes) as entry name; progress gets bytes copied so far.
  void add_file(const std::string& name, const std::string& path, const std::function<void(uint64_t)>& progress = {});
  // A file entry of size bytes whose body write_body writes straight to the
  // archive's fd, returning how many bytes it wrote (anything but size throws).
  void add_stream(const std::string& name, uint64_t size, const std::function<uint64_t(int fd)>& write_body);
  // Any entry: type '0' file, '1' hardlink, '2' symlink, '5' directory, '6' fifo
  // (link is the hardlink or symlink target). Used for layers built in memory.
  void add_entry(const std::string& name, char type, unsigned mode, std::string_view data = {},
                 const std::string& link = {}, unsigned uid = 0, unsigned gid = 0);
  // The two zero blocks that end an archive.
  void finish();

 private:
  void header(const std::string& name, char type, uint64_t size, unsigned mode, const std::string& link = {},
              unsigned uid = 0, unsigned gid = 0);
  void write_raw(const void* data, size_t size);
  void pad(uint64_t size);
  int fd_;
  int64_t mtime_;
};

}  // namespace berth::images
