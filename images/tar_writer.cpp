#include "images/tar_writer.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "base/fs.h"

namespace berth::images {

void TarWriter::write_raw(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size) {
    ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot write archive");
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void TarWriter::pad(uint64_t size) {
  static const char zeros[512] = {};
  size_t rem = size % 512;
  if (rem) write_raw(zeros, 512 - rem);
}

static void octal(char* field, size_t width, uint64_t value) {
  // width-1 octal digits and a NUL, as ustar wants.
  for (size_t i = width - 1; i-- > 0;) {
    field[i] = static_cast<char>('0' + (value & 7));
    value >>= 3;
  }
  field[width - 1] = 0;
}

void TarWriter::header(const std::string& name, char type, uint64_t size, unsigned mode, const std::string& link,
                       unsigned uid, unsigned gid) {
  if (name.size() > 100 || link.size() > 100) throw Error("archive entry name too long: " + name);
  char h[512] = {};
  std::memcpy(h, name.data(), name.size());
  octal(h + 100, 8, mode);
  octal(h + 108, 8, uid);
  octal(h + 116, 8, gid);
  if (size < 077777777777ULL) {
    octal(h + 124, 12, size);
  } else {  // GNU base-256 for sizes of 8 GiB and up
    h[124] = static_cast<char>(0x80);
    for (int i = 11; i >= 1; --i) {
      h[124 + i] = static_cast<char>(size & 0xff);
      size >>= 8;
    }
  }
  octal(h + 136, 12, static_cast<uint64_t>(mtime_));
  h[156] = type;
  std::memcpy(h + 157, link.data(), link.size());
  std::memcpy(h + 257, "ustar", 6);
  std::memcpy(h + 263, "00", 2);
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(h + 148, 8, "%06o", sum);
  h[155] = ' ';
  write_raw(h, sizeof h);
}

void TarWriter::add_directory(const std::string& name) { header(name, '5', 0, 0755); }

void TarWriter::add_bytes(const std::string& name, std::string_view data) {
  header(name, '0', data.size(), 0644);
  write_raw(data.data(), data.size());
  pad(data.size());
}

void TarWriter::add_file(const std::string& name, const std::string& path, const std::function<void(uint64_t)>& progress) {
  UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) throw_errno("cannot open " + path);
  struct stat st {};
  if (::fstat(in.get(), &st) != 0) throw_errno("cannot stat " + path);
  uint64_t size = static_cast<uint64_t>(st.st_size);
  header(name, '0', size, 0644);
  uint64_t done = 0;
  bool use_sendfile = true;
  std::vector<char> buf;
  while (done < size) {
    size_t chunk = static_cast<size_t>(std::min<uint64_t>(size - done, 16u << 20));
    ssize_t n = -1;
    if (use_sendfile) {
      n = ::sendfile(fd_, in.get(), nullptr, chunk);
      if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
        use_sendfile = false;
        continue;
      }
    } else {
      if (buf.empty()) buf.resize(1 << 20);
      n = ::read(in.get(), buf.data(), std::min(chunk, buf.size()));
      if (n > 0) write_raw(buf.data(), static_cast<size_t>(n));
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("cannot copy " + path + " into the archive");
    }
    if (n == 0) throw Error("cannot copy " + path + ": file shrank while saving");
    done += static_cast<uint64_t>(n);
    if (progress) progress(done);
  }
  pad(size);
}

void TarWriter::add_stream(const std::string& name, uint64_t size, const std::function<uint64_t(int fd)>& write_body) {
  header(name, '0', size, 0644);
  uint64_t wrote = write_body(fd_);
  if (wrote != size)
    throw Error("archive entry " + name + ": " + std::to_string(wrote) + " bytes written, its header says " + std::to_string(size));
  pad(size);
}

void TarWriter::add_entry(const std::string& name, char type, unsigned mode, std::string_view data, const std::string& link,
                          unsigned uid, unsigned gid) {
  header(name, type, data.size(), mode, link, uid, gid);
  write_raw(data.data(), data.size());
  pad(data.size());
}

void TarWriter::finish() {
  static const char zeros[1024] = {};
  write_raw(zeros, sizeof zeros);
}

}  // namespace berth::images
