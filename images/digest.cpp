#include "images/digest.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

#include "base/error.h"
#include "base/fs.h"
#include "images/reference.h"

namespace berth::images {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
  ~Impl() {
    if (ctx) EVP_MD_CTX_free(ctx);
  }
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  if (!impl_->ctx || EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr) != 1) throw Error("sha256: cannot initialize OpenSSL digest");
}
Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(const void* data, size_t size) {
  if (size && EVP_DigestUpdate(impl_->ctx, data, size) != 1) throw Error("sha256: digest update failed");
}

std::string Sha256::finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(impl_->ctx, md, &len) != 1) throw Error("sha256: digest final failed");
  static const char* hex = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

std::string sha256_digest(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.finish();
}

std::string sha256_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("cannot open " + path);
  Sha256 h;
  std::vector<char> buf(1 << 20);
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot read " + path);
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
  }
  return h.finish();
}

std::string digest_hex(std::string_view digest) {
  if (!is_sha256_digest(digest)) throw Error("invalid digest \"" + std::string(digest) + "\" (want sha256:<64 hex digits>)");
  return std::string(digest.substr(7));
}

namespace {
constexpr size_t kInlineBelow = 16 << 10;
}  // namespace

struct Sha256Behind::Impl {
  Sha256 hash;
  bool on_thread = true;
  std::mutex mutex;
  std::condition_variable cv;
  const void* data = nullptr;
  size_t size = 0;
  bool busy = false, quit = false;
  std::thread worker;

  void run() {
    std::unique_lock<std::mutex> lock(mutex);
    for (;;) {
      cv.wait(lock, [&] { return busy || quit; });
      if (!busy) return;
      const void* d = data;
      size_t n = size;
      lock.unlock();
      hash.update(d, n);
      lock.lock();
      busy = false;
      cv.notify_all();
    }
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mutex);
    cv.wait(lock, [&] { return !busy; });
  }
  void stop() {
    if (!worker.joinable()) return;
    {
      std::lock_guard<std::mutex> lock(mutex);
      quit = true;
    }
    cv.notify_all();
    worker.join();
  }
};

Sha256Behind::Sha256Behind(bool on_thread) : impl_(std::make_unique<Impl>()) { impl_->on_thread = on_thread; }

Sha256Behind::~Sha256Behind() {
  impl_->wait();
  impl_->stop();
}

void Sha256Behind::update(const void* data, size_t size) {
  if (!size) return;
  if (!impl_->on_thread) {
    impl_->hash.update(data, size);
    return;
  }
  impl_->wait();
  // A small block costs less to hash here (16 KiB: ~10 us) than to hand over
  // (a wake-up each way); a stream read a few bytes at a time would spend its
  // time in futexes.
  if (size < kInlineBelow) {
    impl_->hash.update(data, size);
    return;
  }
  if (!impl_->worker.joinable()) {
    try {
      impl_->worker = std::thread([impl = impl_.get()] { impl->run(); });
    } catch (const std::system_error&) {
      impl_->on_thread = false;  // no thread to be had (a pids limit): hash here, as without one
      impl_->hash.update(data, size);
      return;
    }
  }
  {
    std::lock_guard<std::mutex> lock(impl_->mutex);
    impl_->data = data;
    impl_->size = size;
    impl_->busy = true;
  }
  impl_->cv.notify_all();
}

void Sha256Behind::wait() { impl_->wait(); }

std::string Sha256Behind::finish() {
  impl_->wait();
  impl_->stop();
  return impl_->hash.finish();
}

}  // namespace berth::images
