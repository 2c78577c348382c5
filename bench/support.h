// What the C++ bench programs share: timing, failing loudly, a work dir
// removed at exit, and generated file contents (random or compressible).
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>

#include "base/fs.h"
#include "tests/support/run.h"

namespace berth::bench {

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Thrown, not exit(): unwinding stops a private dockerd or registry.
inline void must(const berth::test::Result& r, const std::string& what) {
  if (r.exit_code != 0)
    throw std::runtime_error(what + " failed (" + std::to_string(r.exit_code) + "):\n" + r.out + "\n" + r.err);
}

// `dir` is removed when the program exits (also after a failure) unless `keep`.
inline void remove_at_exit(const std::string& dir, bool keep) {
  static std::string work_dir;
  work_dir = keep ? "" : dir;
  std::atexit([] {
    if (!work_dir.empty()) berth::test::run({"/bin/rm", "-rf", work_dir});
  });
}

// A fresh ext4 filesystem (mkfs defaults: with a journal, as a server's
// disk) in a sparse file under dir, mounted at dir/fs; unmounted at exit
// (before remove_at_exit removes dir: call this after it). Returns dir/fs.
// direct_io: the loop device reads and writes the file around the page
// cache (losetup --direct-io), so what is written is cached once, as on a
// disk, not a second time as the file's content.
inline std::string mount_fresh_ext4(const std::string& dir, size_t size_mb, bool direct_io = false) {
  static std::string mount_point;
  std::string image = dir + "/fs.img";
  must(berth::test::run({"/usr/bin/truncate", "-s", std::to_string(size_mb) + "M", image}), "truncate");
  must(berth::test::run({"/usr/sbin/mkfs.ext4", "-q", "-F", image}), "mkfs.ext4");
  std::string mnt = dir + "/fs";
  berth::make_dirs(mnt);
  static std::string loop_device;
  if (direct_io) {
    berth::test::Result dev = berth::test::run({"/usr/sbin/losetup", "--find", "--show", "--direct-io=on", image});
    must(dev, "losetup --direct-io=on");
    loop_device = dev.out.substr(0, dev.out.find('\n'));
    must(berth::test::run({"/bin/mount", loop_device, mnt}), "mount " + loop_device);
  } else {
    must(berth::test::run({"/bin/mount", "-o", "loop", image, mnt}), "mount -o loop");
  }
  mount_point = mnt;
  std::atexit([] {
    berth::test::run({"/bin/umount", mount_point});
    if (!loop_device.empty()) berth::test::run({"/usr/sbin/losetup", "-d", loop_device});
  });
  return mnt;
}

inline void write_file(const std::string& path, const std::string& data) {
  berth::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd || ::write(fd.get(), data.data(), data.size()) != static_cast<ssize_t>(data.size()))
    throw std::runtime_error("cannot write " + path);
}

// Incompressible content.
inline std::string random_bytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

// Text that compresses the way source and config files do.
inline std::string text_bytes(std::mt19937_64& rng, size_t n) {
  static const char* words[] = {"berth ", "layer ", "image ", "compose ", "overlay ", "digest ", "sha256 ", "tar\n"};
  std::string s;
  s.reserve(n + 16);
  while (s.size() < n) s += words[rng() % 8];
  s.resize(n);
  return s;
}

}  // namespace berth::bench
