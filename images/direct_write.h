// Writing a file around the page cache (O_DIRECT) where its filesystem
// allows it, for big data berth writes once and does not read back soon:
// a layer's blob as it downloads, and a layer's big files as they unpack.
// It saves the copy into page cache the kernel must first allocate (on a
// VM, memory the host may have to back first: ~2.7 ms/MB here) and its
// writeback later. Anything the kernel will not take direct goes through
// the page cache, so the caller never fails for want of O_DIRECT.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace berth::images::detail {

class DirectWrites {
 public:
  static constexpr size_t kAlign = 4096;  // of data, size and offset, for any filesystem berth meets

  // Turns O_DIRECT on for fd, open for writing (direct() is false when the
  // filesystem refuses it).
  explicit DirectWrites(int fd);
  bool direct() const { return direct_; }
  // Writes all n bytes at offset. While direct(), data, n and offset are
  // kAlign-aligned. A write the kernel refuses direct anyway (EINVAL) turns
  // direct() off and goes, as everything after it, through the page cache.
  // False on an error (errno says which).
  bool write(const char* data, size_t n, uint64_t offset);
  // What follows goes through the page cache (an unaligned tail). False on
  // an error (errno).
  bool stop_direct();

 private:
  int fd_;
  int flags_ = 0;  // fd's flags without O_DIRECT
  bool direct_ = false;
};

// A file written from its start in kBlock blocks around the page cache,
// on a thread of its own while the caller fills the next block (a write
// waits for the disk: ~0.25 ms per block here, which on the caller's
// thread held a layer's unpack to ~1 GB/s). The unaligned tail goes
// through the page cache. Two blocks of memory, allocated on first use;
// one writer thread, started on first use and kept for the next files
// (without a thread to be had, a pids limit, the caller writes).
class DirectFileWriter {
 public:
  static constexpr size_t kBlock = 256u << 10;

  DirectFileWriter() = default;
  ~DirectFileWriter();
  DirectFileWriter(const DirectFileWriter&) = delete;
  DirectFileWriter& operator=(const DirectFileWriter&) = delete;

  // Starts writing fd (open for writing, empty) from offset 0: false when
  // its filesystem refuses O_DIRECT (fd is left as it was).
  bool start(int fd);
  // Appends n bytes: 0, or the errno of a failed write (of these bytes or
  // of earlier ones).
  int append(const char* p, size_t n);
  // Writes what is left (the unaligned tail through the page cache) and
  // waits for every write: 0 or an errno. fd is back without O_DIRECT.
  int finish();
  // Waits for the writes handed over so far and forgets the file: call it
  // before fd is closed on a path that skipped finish().
  void abandon();
  // Bytes appended since start().
  uint64_t offset() const { return at_ + used_; }

 private:
  struct FreeBlocks {
    void operator()(char* p) const;
  };
  char* block(int b) const { return blocks_.get() + static_cast<size_t>(b) * kBlock; }
  int hand_over();  // the filling block to the writer; then waits for the other one
  int wait_all();
  void run();

  std::optional<DirectWrites> out_;
  std::unique_ptr<char, FreeBlocks> blocks_;  // 2 * kBlock, aligned
  int filling_ = 0;
  size_t used_ = 0;  // bytes in the filling block
  uint64_t at_ = 0;  // the file offset of the filling block
  // Shared with the writer, under mu_.
  struct Job {
    int block;
    size_t size;
    uint64_t offset;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> jobs_;
  bool busy_[2] = {false, false};
  int error_ = 0;
  bool quit_ = false;
  std::thread thread_;
  bool no_thread_ = false;
};

}  // namespace berth::images::detail
