#include "images/create_workers.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <system_error>
#include <utility>

#include "base/error.h"
#include "base/write_all.h"

namespace berth::images::detail {

namespace {

// Bounds what a layer holds in memory for its workers (a pull unpacks up
// to 4 layers at once) and how long wait_idle can take.
constexpr size_t kMaxQueuedBytes = 256 << 10;
constexpr size_t kMaxQueuedJobs = 64;
// A sleeping worker is woken once its queue holds this much, not for each
// job: a worker faster than the unpack slept and woke for every file (two
// futex calls and two context switches a file, ~10% of a 200 MB pull's CPU
// time on 2 cores). Whatever is queued below that is started as soon as
// the unpack waits (for room, or for the workers to finish).
constexpr size_t kWakeJobs = 8;
constexpr size_t kWakeBytes = 64 << 10;

}  // namespace

CreateWorkers::CreateWorkers(unsigned workers, std::string layer, bool owner_must_succeed, bool hold)
    : layer_(std::move(layer)), owner_must_succeed_(owner_must_succeed), queues_(workers), queue_bytes_(workers), hold_(hold) {
  for (unsigned i = 0; i < workers; ++i) work_cv_.push_back(std::make_unique<std::condition_variable>());
  try {
    for (unsigned i = 0; i < workers; ++i) threads_.emplace_back([this, i] { run(i); });
  } catch (const std::system_error&) {
    // A pids limit: the workers that started do the work, as many queues
    // as they (no job is queued yet; shrinking moves none of theirs).
    if (threads_.empty()) throw;
    std::lock_guard<std::mutex> lock(mu_);
    queues_.resize(threads_.size());
    queue_bytes_.resize(threads_.size());
    work_cv_.resize(threads_.size());
  } catch (...) {
    stop_and_join();
    throw;
  }
}

CreateWorkers::~CreateWorkers() { stop_and_join(); }

void CreateWorkers::stop_and_join() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  for (auto& cv : work_cv_) cv->notify_all();
  for (auto& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void CreateWorkers::rethrow_locked() {
  if (error_) std::rethrow_exception(error_);
}

void CreateWorkers::submit(FileJob job) {
  size_t index = std::hash<std::string>{}(job.key) % queues_.size();
  bool wake;
  {
    std::unique_lock<std::mutex> lock(mu_);
    auto room = [&] { return error_ || (queued_bytes_ < kMaxQueuedBytes && pending_ < kMaxQueuedJobs); };
    if (!room()) {
      release_locked();
      main_cv_.wait(lock, room);
      waiting_ = false;
    }
    rethrow_locked();
    ++busy_[job.key];
    ++pending_;
    queued_bytes_ += job.data.size();
    queue_bytes_[index] += job.data.size();
    queues_[index].push_back(std::move(job));
    wake = queues_[index].size() >= kWakeJobs || queue_bytes_[index] >= kWakeBytes;
  }
  if (wake) work_cv_[index]->notify_one();
}

bool CreateWorkers::busy_with(const std::string& key) const {
  std::lock_guard<std::mutex> lock(mu_);
  return busy_.count(key) != 0;
}

bool CreateWorkers::busy_with_prefix(const std::vector<std::string>& parts) const {
  std::string key;
  std::lock_guard<std::mutex> lock(mu_);
  if (busy_.empty()) return false;
  for (const auto& p : parts) {
    if (!key.empty()) key += '/';
    key += p;
    if (busy_.count(key)) return true;
  }
  return false;
}

void CreateWorkers::wait_idle() {
  std::unique_lock<std::mutex> lock(mu_);
  if (pending_) {
    release_locked();
    main_cv_.wait(lock, [&] { return pending_ == 0; });
    waiting_ = false;
  }
  rethrow_locked();
}

void CreateWorkers::release_locked() {
  waiting_ = true;
  for (size_t i = 0; i < queues_.size(); ++i)
    if (!queues_[i].empty()) work_cv_[i]->notify_one();
}

void CreateWorkers::run(size_t index) {
  auto& queue = queues_[index];
  auto& cv = *work_cv_[index];
  for (;;) {
    FileJob job;
    bool skip;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv.wait(lock, [&] { return stop_ || (!queue.empty() && (!hold_ || waiting_)); });
      if (stop_) return;
      job = std::move(queue.front());
      queue.pop_front();
      queue_bytes_[index] -= job.data.size();
      skip = error_ != nullptr;  // the unpack fails anyway: make nothing more
    }
    std::exception_ptr failure;
    if (!skip) {
      try {
        create(job);
      } catch (...) {
        failure = std::current_exception();
      }
    }
    bool wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (failure && !error_) error_ = failure;
      auto it = busy_.find(job.key);
      if (it != busy_.end() && --it->second == 0) busy_.erase(it);
      --pending_;
      queued_bytes_ -= job.data.size();
      // The unpack, waiting for room, is woken once half is free rather
      // than for each job (which had it queue one job and wait again).
      wake = waiting_ && (error_ || pending_ == 0 || (pending_ <= kMaxQueuedJobs / 2 && queued_bytes_ <= kMaxQueuedBytes / 2));
    }
    if (wake) main_cv_.notify_one();
  }
}

void CreateWorkers::fail(const FileJob& job, const std::string& why, int err) const {
  throw Error("layer " + layer_ + ": entry \"" + job.entry + "\": " + why, err);
}

void CreateWorkers::create(FileJob& job) const {
  constexpr int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
  int parent = job.parent->get();
  const FileMeta& meta = job.meta;
  UniqueFd fd(::openat(parent, job.name.c_str(), flags, meta.create_mode));
  if (!fd && errno == EEXIST) {
    // A later entry replaces an earlier one: a file, link or node, which
    // goes. Never a directory: its files may still be queued on other
    // workers, so the unpack replaces a directory itself, after they are done.
    if (::unlinkat(parent, job.name.c_str(), 0) != 0 && errno != ENOENT)
      fail(job, errno == EISDIR ? "cannot replace directory on a worker" : "cannot replace existing entry", errno);
    fd = UniqueFd(::openat(parent, job.name.c_str(), flags, meta.create_mode));
  }
  if (!fd) fail(job, "cannot create file", errno);
  if (!write_all(fd.get(), job.data.data(), job.data.size())) fail(job, "cannot write file", errno);
  if (meta.chown && ::fchown(fd.get(), meta.uid, meta.gid) != 0 && owner_must_succeed_) fail(job, "cannot set owner", errno);
  if (meta.chmod && ::fchmod(fd.get(), meta.perm) != 0) fail(job, "cannot chmod", errno);
  if (::futimens(fd.get(), meta.times) != 0) fail(job, "cannot set times", errno);
}

}  // namespace berth::images::detail
