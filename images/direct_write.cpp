#include "images/direct_write.h"

#include "base/write_all.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <system_error>

namespace berth::images::detail {

DirectWrites::DirectWrites(int fd) : fd_(fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return;
  flags_ = flags & ~O_DIRECT;
  direct_ = (flags & O_DIRECT) || ::fcntl(fd, F_SETFL, flags | O_DIRECT) == 0;
}

bool DirectWrites::stop_direct() {
  if (!direct_) return true;
  if (::fcntl(fd_, F_SETFL, flags_) != 0) return false;
  direct_ = false;
  return true;
}

bool DirectWrites::write(const char* data, size_t n, uint64_t offset) {
  while (direct_ && n) {
    ssize_t w = ::pwrite(fd_, data, n, static_cast<off_t>(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && errno == EINVAL) {
      // O_DIRECT accepted at open but not for this write (or a short write
      // left the rest unaligned): the rest through the page cache.
      if (!stop_direct()) return false;
      break;
    }
    if (w == 0) errno = ENOSPC;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return berth::pwrite_all(fd_, data, n, offset);
}

void DirectFileWriter::FreeBlocks::operator()(char* p) const { std::free(p); }

DirectFileWriter::~DirectFileWriter() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool DirectFileWriter::start(int fd) {
  out_.emplace(fd);
  if (!out_->direct()) {
    out_.reset();
    return false;
  }
  if (!blocks_) {
    blocks_.reset(static_cast<char*>(std::aligned_alloc(DirectWrites::kAlign, 2 * kBlock)));
    if (!blocks_) throw std::bad_alloc();
  }
  filling_ = 0;
  used_ = 0;
  at_ = 0;
  std::lock_guard<std::mutex> lock(mu_);
  error_ = 0;
  return true;
}

int DirectFileWriter::append(const char* p, size_t n) {
  while (n) {
    size_t chunk = std::min(n, kBlock - used_);
    std::memcpy(block(filling_) + used_, p, chunk);
    used_ += chunk;
    p += chunk;
    n -= chunk;
    if (used_ == kBlock)
      if (int e = hand_over()) return e;
  }
  return 0;
}

int DirectFileWriter::hand_over() {
  Job job{filling_, used_, at_};
  at_ += used_;
  used_ = 0;
  filling_ ^= 1;
  if (!thread_.joinable() && !no_thread_) {
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error&) {
      no_thread_ = true;
    }
  }
  if (no_thread_) return out_->write(block(job.block), job.size, job.offset) ? 0 : errno;
  std::unique_lock<std::mutex> lock(mu_);
  busy_[job.block] = true;
  jobs_.push_back(job);
  cv_.notify_all();
  // The block to fill next may still be on its way to the disk.
  cv_.wait(lock, [&] { return !busy_[filling_]; });
  return error_;
}

int DirectFileWriter::wait_all() {
  if (no_thread_ || !thread_.joinable()) return 0;
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return !busy_[0] && !busy_[1]; });
  return error_;
}

int DirectFileWriter::finish() {
  if (int e = wait_all()) return e;
  size_t aligned = used_ & ~(DirectWrites::kAlign - 1);
  if (aligned && !out_->write(block(filling_), aligned, at_)) return errno;
  if (!out_->stop_direct()) return errno;
  if (used_ > aligned && !out_->write(block(filling_) + aligned, used_ - aligned, at_ + aligned)) return errno;
  at_ += used_;
  used_ = 0;
  out_.reset();
  return 0;
}

void DirectFileWriter::abandon() {
  wait_all();
  if (out_) out_->stop_direct();
  out_.reset();
}

void DirectFileWriter::run() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return quit_ || !jobs_.empty(); });
    if (jobs_.empty()) return;
    Job job = jobs_.front();
    jobs_.pop_front();
    bool skip = error_ != 0;  // the file fails anyway
    lock.unlock();
    int e = 0;
    if (!skip && !out_->write(block(job.block), job.size, job.offset)) e = errno;
    lock.lock();
    if (e && !error_) error_ = e;
    busy_[job.block] = false;
    cv_.notify_all();
  }
}

}  // namespace berth::images::detail
