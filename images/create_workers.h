// Internal to the unpack (unpack.cpp): threads that create a layer's small
// regular files while the unpack reads on. A layer of many small files
// (node_modules, site-packages) spends most of its time in the kernel
// creating them, one at a time on the reading thread; with workers, the
// tar is read and inflated on one thread and the files are created on
// others.
//
// Ordering: jobs of one path run on one worker, in the order submitted, so
// a name the tar repeats ends as its last entry says. Everything else the
// unpack does itself, after waiting for any job on the paths it touches
// (busy_with / busy_with_prefix, then wait_idle).
#pragma once

#include <sys/types.h>
#include <time.h>

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/fs.h"

namespace berth::images::detail {

// How a regular file of a layer is made, on a worker or by the unpack: it
// is created with create_mode, then chowned, chmoded to perm and stamped.
struct FileMeta {
  mode_t create_mode = 0600;
  mode_t perm = 0;
  bool chmod = false;  // fchmod to perm after the chown (setuid bits, a mode the umask would cut)
  bool chown = false;
  uid_t uid = 0;
  gid_t gid = 0;
  timespec times[2] = {};
};

// A small regular file of a layer, read whole.
struct FileJob {
  std::shared_ptr<const UniqueFd> parent;  // its directory
  std::string key;                         // its path below the layer root ("a/b/f")
  std::string name;                        // its name in parent
  std::string entry;                       // the tar entry's name, for errors
  std::string data;
  FileMeta meta;
};

class CreateWorkers {
 public:
  // Throws std::system_error when not one worker thread can start.
  // layer names the layer in errors; owner_must_succeed: a failed chown is
  // an error (root), else ignored (as tar does unprivileged). hold (tests):
  // a worker starts a job only while the unpack waits (for room or idle).
  CreateWorkers(unsigned workers, std::string layer, bool owner_must_succeed, bool hold = false);
  // Stops and joins the workers; jobs not yet started are dropped.
  ~CreateWorkers();
  CreateWorkers(const CreateWorkers&) = delete;
  CreateWorkers& operator=(const CreateWorkers&) = delete;

  // Queues job; waits while too much is queued. Throws a worker's error.
  void submit(FileJob job);
  // Whether a job for key is queued or running.
  bool busy_with(const std::string& key) const;
  // Whether a job is queued or running for parts[0], parts[0]/parts[1], ...
  bool busy_with_prefix(const std::vector<std::string>& parts) const;
  // Waits until every job is done. Throws the first worker error.
  void wait_idle();
  // The worker threads running: fewer than asked when no more could start.
  size_t workers() const { return threads_.size(); }

  static constexpr size_t kMaxFileSize = 64 << 10;  // what counts as small

 private:
  void stop_and_join();
  void run(size_t index);
  void create(FileJob& job) const;
  [[noreturn]] void fail(const FileJob& job, const std::string& why, int err) const;
  void rethrow_locked();
  void release_locked();  // the unpack is about to wait: held workers may go

  const std::string layer_;
  const bool owner_must_succeed_;
  mutable std::mutex mu_;
  std::condition_variable main_cv_;  // the unpack waits for room or for idle
  std::vector<std::unique_ptr<std::condition_variable>> work_cv_;
  std::vector<std::deque<FileJob>> queues_;
  std::vector<size_t> queue_bytes_;  // data bytes in each queue
  std::unordered_map<std::string, unsigned> busy_;  // key -> jobs queued or running
  size_t pending_ = 0;                              // jobs queued or running
  size_t queued_bytes_ = 0;
  bool stop_ = false;
  const bool hold_;
  bool waiting_ = false;  // the unpack waits in submit or wait_idle
  std::exception_ptr error_;
  std::vector<std::thread> threads_;
};

}  // namespace berth::images::detail
