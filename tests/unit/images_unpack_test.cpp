// Layer unpacking: overlayfs whiteouts, preserved metadata, path safety and digests.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <sys/mman.h>
#include <sys/mount.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <iterator>
#include <vector>

#include "base/error.h"
#include "base/fs.h"
#include "images/create_workers.h"
#include "images/digest.h"
#include "images/direct_write.h"
#include "images/tar_writer.h"
#include "images/unpack.h"
#include "tests/support/run.h"

using berth::Error;
using berth::UniqueFd;
using berth::images::TarWriter;
using berth::test::TempDir;

namespace {

#ifdef BERTH_UNPACK_ALL_WORKERS
// This binary (unit_images_unpack_workers_test) runs every test below with
// each small file of every layer created by a worker thread, as late as can be.
const bool kAllWorkers = (berth::images::set_create_workers(3, 0, true), true);
#endif

// Sets how the unpack uses worker threads for the life of one test.
class CreateWorkersFor {
 public:
  CreateWorkersFor(unsigned workers, unsigned after, bool hold = false)
      : before_(berth::images::set_create_workers(workers, after, hold)) {}
  ~CreateWorkersFor() { berth::images::set_create_workers(before_.workers, before_.after, before_.hold); }

 private:
  berth::images::CreateWorkersSetting before_;
};

std::string make_tar(const TempDir& dir, const std::string& name, const std::function<void(TarWriter&)>& fill) {
  std::string path = dir.path() + "/" + name;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  TarWriter tar(fd.get(), 1700000000);
  fill(tar);
  tar.finish();
  return path;
}

berth::images::UnpackResult unpack(const std::string& tar, const std::string& dest) {
  berth::make_dirs(dest);
  UniqueFd fd(::open(tar.c_str(), O_RDONLY | O_CLOEXEC));
  return berth::images::unpack_layer(fd.get(), dest, "sha256:test-layer");
}

// The one-pass path pull uses: a (here gzip-compressed) layer read through
// a ReadFn, its uncompressed tar copied to tar_copy.
berth::images::StreamUnpackResult unpack_stream(const std::string& tar, const std::string& dest, const std::string& tar_copy) {
  berth::make_dirs(dest);
  auto gz = berth::test::run({"/bin/gzip", "-kf", tar});
  if (gz.exit_code != 0) throw Error("gzip failed: " + gz.err);
  UniqueFd in(::open((tar + ".gz").c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd copy(::open(tar_copy.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  // Small, uneven reads: block boundaries must not matter.
  auto read = [&](char* buf, size_t cap) -> size_t {
    ssize_t n = ::read(in.get(), buf, std::min<size_t>(cap, 777));
    if (n < 0) throw Error("read failed", errno);
    return static_cast<size_t>(n);
  };
  return berth::images::unpack_layer_stream(read, copy.get(), dest, "sha256:test-layer", true);
}

// Unpacking must fail, naming the layer and the entry; in one pass from a
// compressed stream as well.
void expect_rejected(const std::function<void(TarWriter&)>& fill, const std::string& entry, const std::string& why) {
  TempDir dir;
  std::string tar = make_tar(dir, "evil.tar", fill);
  for (bool stream : {false, true}) {
    try {
      if (stream)
        unpack_stream(tar, dir.path() + "/out-stream", dir.path() + "/copy.tar");
      else
        unpack(tar, dir.path() + "/out");
      ADD_FAILURE() << "entry " << entry << " was accepted" << (stream ? " (stream)" : "");
    } catch (const Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("sha256:test-layer"), std::string::npos) << msg;
      EXPECT_NE(msg.find(entry), std::string::npos) << msg;
      EXPECT_NE(msg.find(why), std::string::npos) << msg;
    }
  }
}

// Unpacks tar into a tmpfs of size (root only) in dir: the error, or "" when it unpacked.
std::string unpack_error_on_tmpfs(const TempDir& dir, const std::string& tar, const std::string& size) {
  std::string out = dir.path() + "/small-tmpfs";
  berth::make_dirs(out);
  if (::mount("tmpfs", out.c_str(), "tmpfs", 0, ("size=" + size).c_str()) != 0) return std::string("cannot mount a tmpfs: ") + std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{out};
  UniqueFd fd(::open(tar.c_str(), O_RDONLY | O_CLOEXEC));
  try {
    berth::images::unpack_layer(fd.get(), out, "sha256:test-layer");
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

struct stat lstat_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st;
}

}  // namespace

TEST(ImagesUnpack, WhiteoutsBecomeOverlayfsForm) {
  TempDir dir;
  std::string tar = make_tar(dir, "layer.tar", [](TarWriter& t) {
    t.add_entry("etc/", '5', 0755);
    t.add_entry("etc/.wh.passwd", '0', 0644);
    t.add_entry("var/", '5', 0755);
    t.add_entry("var/cache/", '5', 0700);
    t.add_entry("var/cache/.wh..wh..opq", '0', 0644);
    t.add_entry("var/cache/kept", '0', 0644, "new");
    t.add_entry(".wh..wh.plnk", '0', 0644);  // aufs bookkeeping: ignored
  });
  std::string out = dir.path() + "/out";
  unpack(tar, out);
  struct stat st = lstat_of(out + "/etc/passwd");
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  EXPECT_EQ(st.st_rdev, makedev(0, 0));
  EXPECT_FALSE(berth::path_exists(out + "/etc/.wh.passwd"));
  char value[8] = {};
  ssize_t n = ::getxattr((out + "/var/cache").c_str(), "trusted.overlay.opaque", value, sizeof value);
  ASSERT_EQ(n, 1) << "opaque xattr missing: " << Error::errno_text(errno);
  EXPECT_EQ(value[0], 'y');
  EXPECT_FALSE(berth::path_exists(out + "/var/cache/.wh..wh..opq"));
  EXPECT_EQ(berth::read_file(out + "/var/cache/kept"), "new");
  EXPECT_FALSE(berth::path_exists(out + "/.wh..wh.plnk"));
  EXPECT_LT(::getxattr((out + "/var").c_str(), "trusted.overlay.opaque", value, sizeof value), 0);
}

TEST(ImagesUnpack, PreservesLinksNodesModesOwnersTimes) {
  TempDir dir;
  std::string tar = make_tar(dir, "layer.tar", [](TarWriter& t) {
    t.add_entry("bin/", '5', 0755);
    t.add_entry("bin/tool", '0', 04755, "#!/bin/sh\n", "", 1000, 1001);
    t.add_entry("bin/tool-again", '1', 0, {}, "bin/tool");
    t.add_entry("bin/sh", '2', 0777, {}, "tool");
    t.add_entry("bin/abs", '2', 0777, {}, "/etc/passwd");  // a symlink may point anywhere; it is never followed
    t.add_entry("run/", '5', 01777);
    t.add_entry("run/pipe", '6', 0640);
    t.add_entry("deep/a/b/file", '0', 0600, "x");  // parents missing from the tar
  });
  std::string out = dir.path() + "/out";
  auto result = unpack(tar, out);
  struct stat tool = lstat_of(out + "/bin/tool");
  EXPECT_EQ(tool.st_mode & 07777, 04755u);
  EXPECT_EQ(tool.st_uid, 1000u);
  EXPECT_EQ(tool.st_gid, 1001u);
  EXPECT_EQ(tool.st_mtime, 1700000000);
  EXPECT_EQ(lstat_of(out + "/bin/tool-again").st_ino, tool.st_ino);
  EXPECT_EQ(tool.st_nlink, 2u);
  char target[64] = {};
  ASSERT_GT(::readlink((out + "/bin/sh").c_str(), target, sizeof target), 0);
  EXPECT_STREQ(target, "tool");
  EXPECT_TRUE(S_ISLNK(lstat_of(out + "/bin/abs").st_mode));
  EXPECT_TRUE(S_ISFIFO(lstat_of(out + "/run/pipe").st_mode));
  EXPECT_EQ(lstat_of(out + "/run/pipe").st_mode & 07777, 0640u);
  EXPECT_EQ(lstat_of(out + "/run").st_mode & 07777, 01777u);
  EXPECT_EQ(lstat_of(out + "/run").st_mtime, 1700000000);  // set after its children were made
  EXPECT_EQ(berth::read_file(out + "/deep/a/b/file"), "x");
  EXPECT_EQ(result.diff_id, berth::images::sha256_file(tar));
  EXPECT_EQ(result.content_size, std::string("#!/bin/sh\nx").size() + std::string("tool/etc/passwd").size()) << "files and symlink targets";
}

TEST(ImagesUnpack, LaterEntryReplacesEarlierOne) {
  TempDir dir;
  std::string tar = make_tar(dir, "layer.tar", [](TarWriter& t) {
    t.add_entry("a", '0', 0644, "first");
    t.add_entry("a", '0', 0644, "second");
    t.add_entry("d/", '5', 0755);
    t.add_entry("d/x", '0', 0644, "x");
    t.add_entry("d", '2', 0777, {}, "elsewhere");
  });
  std::string out = dir.path() + "/out";
  unpack(tar, out);
  EXPECT_EQ(berth::read_file(out + "/a"), "second");
  EXPECT_TRUE(S_ISLNK(lstat_of(out + "/d").st_mode));
}

namespace {

// Every entry below root, one line each: path, type and mode, owner, link
// count, mtime, and the content digest, symlink target or device number. Two
// unpacks that made the same tree give the same listing.
std::vector<std::string> tree_listing(const std::string& root) {
  std::vector<std::string> lines;
  for (const auto& item : std::filesystem::recursive_directory_iterator(root)) {
    std::string path = item.path().string();
    struct stat st = lstat_of(path);
    std::string what;
    if (S_ISREG(st.st_mode)) what = berth::images::sha256_file(path);
    if (S_ISLNK(st.st_mode)) what = std::filesystem::read_symlink(path).string();
    if (S_ISCHR(st.st_mode)) what = std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
    char opaque[4] = {};
    if (S_ISDIR(st.st_mode) && ::lgetxattr(path.c_str(), "trusted.overlay.opaque", opaque, sizeof opaque) > 0) what = "opaque";
    // A whiteout keeps the time it was made at (the layer's tar has none for it).
    long mtime = S_ISCHR(st.st_mode) && st.st_rdev == 0 ? 0 : static_cast<long>(st.st_mtime);
    char line[512];
    std::snprintf(line, sizeof line, " %o %u:%u n%lu t%ld %s", st.st_mode, st.st_uid, st.st_gid, static_cast<unsigned long>(st.st_nlink),
                  mtime, what.c_str());
    lines.push_back(path.substr(root.size()) + line);
  }
  std::sort(lines.begin(), lines.end());
  return lines;
}

// The lines only one of two listings has, each marked with its side.
std::string listing_difference(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<std::string> only_a, only_b;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(only_a));
  std::set_difference(b.begin(), b.end(), a.begin(), a.end(), std::back_inserter(only_b));
  std::string out;
  for (auto& l : only_a) out += "- " + l + "\n";
  for (auto& l : only_b) out += "+ " + l + "\n";
  return out;
}

// A small file's content, told apart by its number.
// Bytes that differ at every offset, so a block written at the wrong place shows.
std::string numbered_bytes(size_t size, uint32_t seed) {
  std::string out(size, '\0');
  uint32_t x = seed;
  for (size_t i = 0; i < size; ++i) {
    x = x * 1664525u + 1013904223u;
    out[i] = static_cast<char>(x >> 24);
  }
  return out;
}

std::string small_content(int i) { return std::string(static_cast<size_t>(i * 37 % 9000), static_cast<char>('a' + i % 26)); }

// Many small files, then entries that touch the paths of files still
// queued for a worker (with hold): the same name again, a directory, a
// hardlink, a whiteout, a symlink and a fifo in their place, a file in
// place of a directory full of them, and sizes on either side of what a
// worker takes.
void fill_busy_layer(TarWriter& t) {
  const unsigned modes[] = {0644, 0600, 04755, 0750, 02711};
  t.add_entry("d1/", '5', 0755);
  for (int i = 0; i < 300; ++i)
    t.add_entry("d1/f" + std::to_string(i), '0', modes[i % 5], small_content(i), "", i % 3 == 1 ? 1000 : 0, i % 3 == 1 ? 1001 : 0);
  // Each conflict right after the file it touches: waiting for the workers
  // empties the whole queue, so every one of them needs a file still queued.
  t.add_entry("d1/r1", '0', 0644, "first");
  t.add_entry("d1/r1", '0', 0640, "again");
  t.add_entry("d1/r1", '0', 0640, "and again");
  t.add_entry("d1/r2", '0', 0644, "a file");
  t.add_entry("d1/r2/", '5', 0700);
  t.add_entry("d1/r2/child", '0', 0644, "child");
  t.add_entry("d1/r3", '0', 0644, "linked");
  t.add_entry("d1/h", '1', 0, {}, "d1/r3");
  t.add_entry("d1/r3", '0', 0644, "replaced after the hardlink");
  t.add_entry("d1/r4", '0', 0644, "whited out");
  t.add_entry("d1/.wh.r4", '0', 0644);
  t.add_entry("d1/r5", '0', 0644, "a file");
  t.add_entry("d1/r5", '2', 0777, {}, "r6");
  t.add_entry("d1/r6", '0', 0644, "a file");
  t.add_entry("d1/r6", '6', 0600);
  t.add_entry("d2/", '5', 0755);
  for (int i = 0; i < 100; ++i) t.add_entry("d2/sub/g" + std::to_string(i), '0', 0644, std::to_string(i));
  t.add_entry("d2", '0', 0644, "a file now");
  t.add_entry("top", '0', 0644);
  t.add_entry("d3/", '5', 0755);
  t.add_entry("d3/edge", '0', 0644, std::string(64 << 10, 'e'));
  t.add_entry("d3/over", '0', 0644, std::string((64 << 10) + 1, 'o'));
  t.add_entry("d3/.wh..wh..opq", '0', 0644);
  t.add_entry("d3/after-opq", '0', 0644, "x");
  // Big files (around the page cache, on the direct writer's thread): one
  // replacing a queued small file, one setuid and another's, linked to.
  t.add_entry("d1/r7", '0', 0644, "small, queued");
  t.add_entry("d1/r7", '0', 0644, numbered_bytes((3u << 20) + 77, 7));
  t.add_entry("d3/big", '0', 04755, numbered_bytes((2u << 20) + 4096, 8), "", 1000, 1001);
  t.add_entry("d3/big-link", '1', 0, {}, "d3/big");
}

}  // namespace

TEST(ImagesUnpack, WorkersMakeTheSameTreeAsOneThread) {
  TempDir dir;
  std::string tar = make_tar(dir, "busy.tar", fill_busy_layer);
  std::string alone = dir.path() + "/alone", workers = dir.path() + "/workers", stream = dir.path() + "/stream";
  berth::images::UnpackResult r0, r3;
  {
    CreateWorkersFor one_thread(0, 0);
    r0 = unpack(tar, alone);
  }
  {
    CreateWorkersFor three(3, 0, true);
    r3 = unpack(tar, workers);
  }
  {
    CreateWorkersFor three(3, 0);
    unpack_stream(tar, stream, dir.path() + "/copy.tar");
  }
  std::vector<std::string> expected = tree_listing(alone);
  EXPECT_EQ(listing_difference(expected, tree_listing(workers)), "");
  EXPECT_EQ(listing_difference(expected, tree_listing(stream)), "");
  EXPECT_GT(expected.size(), 300u);
  EXPECT_EQ(r3.content_size, r0.content_size);
  // And that tree is the one the tar says.
  EXPECT_EQ(berth::read_file(workers + "/d1/r1"), "and again");
  EXPECT_TRUE(S_ISDIR(lstat_of(workers + "/d1/r2").st_mode));
  EXPECT_EQ(berth::read_file(workers + "/d1/h"), "linked") << "the hardlink keeps the file it was made to";
  EXPECT_EQ(berth::read_file(workers + "/d1/r3"), "replaced after the hardlink");
  EXPECT_TRUE(S_ISCHR(lstat_of(workers + "/d1/r4").st_mode));
  EXPECT_TRUE(S_ISLNK(lstat_of(workers + "/d1/r5").st_mode));
  EXPECT_TRUE(S_ISFIFO(lstat_of(workers + "/d1/r6").st_mode));
  EXPECT_FALSE(berth::path_exists(workers + "/d2/sub"));
  EXPECT_EQ(berth::read_file(workers + "/d2"), "a file now");
  EXPECT_EQ(lstat_of(workers + "/d1/f2").st_mode & 07777, 04755u);
  EXPECT_EQ(lstat_of(workers + "/d1/f4").st_mode & 07777, 02711u);
  EXPECT_EQ(lstat_of(workers + "/d1/f1").st_uid, 1000u);
  EXPECT_EQ(lstat_of(workers + "/d1/f299").st_size, 299 * 37 % 9000);
  EXPECT_EQ(lstat_of(workers + "/d1").st_mtime, 1700000000) << "directory times are set after every worker is done";
}

TEST(ImagesUnpack, APathThroughAFileAWorkerMadeIsRejectedAsWithOneThread) {
  CreateWorkersFor three(3, 0, true);
  expect_rejected([](TarWriter& t) {
    for (int i = 0; i < 50; ++i) t.add_entry("d/f" + std::to_string(i), '0', 0644, "x");
    t.add_entry("d/f49/inside", '0', 0644, "x");
  }, "d/f49/inside", "not a directory");
}

TEST(ImagesUnpack, AWorkerThatFailsFailsTheUnpackNamingItsEntry) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  TempDir dir;
  std::string tar = make_tar(dir, "big.tar", [](TarWriter& t) {
    t.add_entry("d/", '5', 0755);
    for (int i = 0; i < 400; ++i) t.add_entry("d/f" + std::to_string(i), '0', 0644, std::string(4096, 'x'));
  });
  CreateWorkersFor two(2, 0);
  std::string msg = unpack_error_on_tmpfs(dir, tar, "256k");
  EXPECT_NE(msg.find("layer sha256:test-layer: entry \"d/f"), std::string::npos) << msg;
  EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
}

namespace {

// The calling thread alone in a v1 pids cgroup allowing max tasks (v1
// moves a thread by its tid), for as long as this lives.
class PidsLimitedThread {
 public:
  static bool possible() { return ::geteuid() == 0 && ::access((kPids + "/tasks").c_str(), W_OK) == 0; }
  explicit PidsLimitedThread(int max)
      : group_(kPids + "/berth-unpack-test-" + std::to_string(::getpid())), tid_(std::to_string(::gettid())) {
    EXPECT_EQ(::mkdir(group_.c_str(), 0755), 0) << std::strerror(errno);
    put(group_ + "/pids.max", std::to_string(max));
    put(group_ + "/tasks", tid_);
  }
  ~PidsLimitedThread() {
    put(kPids + "/tasks", tid_);
    EXPECT_EQ(::rmdir(group_.c_str()), 0) << std::strerror(errno);
  }
  PidsLimitedThread(const PidsLimitedThread&) = delete;
  PidsLimitedThread& operator=(const PidsLimitedThread&) = delete;

 private:
  static void put(const std::string& file, const std::string& value) {
    UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CLOEXEC));
    EXPECT_TRUE(fd && ::write(fd.get(), value.data(), value.size()) == static_cast<ssize_t>(value.size())) << file << ": " << std::strerror(errno);
  }
  static inline const std::string kPids = "/sys/fs/cgroup/pids";
  std::string group_, tid_;
};

}  // namespace

// Under a pids limit no thread can be started: the unpack makes every file
// (and hashes) on the calling thread instead of failing.
TEST(ImagesUnpack, WithoutThreadsToBeHadTheUnpackMakesEveryFileItself) {
  if (!PidsLimitedThread::possible()) GTEST_SKIP() << "needs root and the cgroup v1 pids controller";
  TempDir dir;
  std::string tar = make_tar(dir, "busy.tar", fill_busy_layer);
  std::string alone = dir.path() + "/alone", limited = dir.path() + "/limited";
  berth::images::UnpackResult expected;
  {
    CreateWorkersFor one_thread(0, 0);
    expected = unpack(tar, alone);
  }
  berth::images::UnpackResult r;
  std::string failure;
  {
    PidsLimitedThread no_more(1);
    CreateWorkersFor three(3, 0);
    try {
      r = unpack(tar, limited);
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  ASSERT_EQ(failure, "");
  EXPECT_EQ(listing_difference(tree_listing(alone), tree_listing(limited)), "");
  EXPECT_EQ(r.diff_id, expected.diff_id);
}

// Room for one thread of three: the worker that started makes every file.
TEST(ImagesUnpack, TheCreateWorkersThatStartDoTheWork) {
  if (!PidsLimitedThread::possible()) GTEST_SKIP() << "needs root and the cgroup v1 pids controller";
  TempDir dir;
  std::string out = dir.path() + "/out";
  berth::make_dirs(out);
  auto parent = std::make_shared<const UniqueFd>(::open(out.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  std::string failure;
  size_t workers = 0;
  {
    PidsLimitedThread one_more(2);
    try {
      berth::images::detail::CreateWorkers pool(3, "sha256:test-layer", ::geteuid() == 0);
      workers = pool.workers();
      for (int i = 0; i < 40; ++i) {
        berth::images::detail::FileJob job;
        job.parent = parent;
        job.key = job.name = job.entry = "f" + std::to_string(i);
        job.data = small_content(i);
        job.meta.create_mode = 0644;
        job.meta.times[0] = job.meta.times[1] = timespec{1700000000, 0};
        pool.submit(std::move(job));
      }
      pool.wait_idle();
    } catch (const std::exception& e) {
      failure = e.what();
    }
  }
  ASSERT_EQ(failure, "");
  EXPECT_EQ(workers, 1u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(berth::read_file(out + "/f" + std::to_string(i)), small_content(i)) << i;
}

namespace {

// How many of path's first pages are in the page cache.
size_t cached_pages(const std::string& path, size_t bytes) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return SIZE_MAX;
  void* map = ::mmap(nullptr, bytes, PROT_READ, MAP_SHARED, fd.get(), 0);
  if (map == MAP_FAILED) return SIZE_MAX;
  std::vector<unsigned char> in_core((bytes + 4095) / 4096);
  size_t n = SIZE_MAX;
  if (::mincore(map, bytes, in_core.data()) == 0) n = static_cast<size_t>(std::count_if(in_core.begin(), in_core.end(), [](unsigned char c) { return c & 1; }));
  ::munmap(map, bytes);
  return n;
}

// Unpacks tar into a new directory of dir, from its fd or (stream) gzip-compressed in one pass.
std::string unpack_one_way(const TempDir& dir, const std::string& tar, bool stream) {
  std::string out = dir.path() + (stream ? "/out-stream" : "/out");
  if (stream)
    unpack_stream(tar, out, dir.path() + "/copy.tar");
  else
    unpack(tar, out);
  return out;
}

// Whether files in dir can be written around a page cache: O_DIRECT taken,
// and not tmpfs (whose pages are its files, direct or not).
bool takes_o_direct(const std::string& dir) {
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) != 0 || fs.f_type == TMPFS_MAGIC) return false;
  std::string probe = dir + "/.o_direct_probe";
  UniqueFd fd(::open(probe.c_str(), O_WRONLY | O_CREAT | O_DIRECT | O_CLOEXEC, 0600));
  ::unlink(probe.c_str());
  return static_cast<bool>(fd);
}

}  // namespace

// Files of 1 MiB and more are written around the page cache, 256 KiB at a
// time, their unaligned tails through it: every size and both unpack paths
// give back the bytes, the size, the mode and the times of the entry.
TEST(ImagesUnpack, BigFilesWrittenAroundThePageCacheComeOutWhole) {
  TempDir dir;
  const std::vector<size_t> sizes = {1u << 20, (1u << 20) + 1, (3u << 20) + 4095, (5u << 20) - 7, (1u << 20) - 1, 100};
  std::string tar = make_tar(dir, "big.tar", [&](TarWriter& t) {
    for (size_t i = 0; i < sizes.size(); ++i) t.add_entry("big/f" + std::to_string(i), '0', 0640, numbered_bytes(sizes[i], static_cast<uint32_t>(i)));
    t.add_entry("big/suid", '0', 04755, numbered_bytes(2u << 20, 99), "", 1000, 1001);
  });
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "fd");
    std::string out = unpack_one_way(dir, tar, stream);
    // Looked at before any read brings them in: the big files' whole
    // blocks never went through the page cache.
    if (takes_o_direct(out)) {
      EXPECT_EQ(cached_pages(out + "/big/f3", 4u << 20), 0u) << "5 MiB file: its first 4 MiB are in the page cache";
      EXPECT_EQ(cached_pages(out + "/big/f0", 1u << 20), 0u) << "1 MiB file";
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
      std::string path = out + "/big/f" + std::to_string(i);
      struct stat st = lstat_of(path);
      EXPECT_EQ(static_cast<size_t>(st.st_size), sizes[i]) << path;
      EXPECT_EQ(st.st_mode & 07777, 0640u) << path;
      EXPECT_EQ(st.st_mtime, 1700000000) << path;
      EXPECT_TRUE(berth::read_file(path) == numbered_bytes(sizes[i], static_cast<uint32_t>(i))) << path << ": content differs";
    }
    // Owner and setuid bit are set after the data, as for any file.
    struct stat st = lstat_of(out + "/big/suid");
    EXPECT_EQ(st.st_mode & 07777, 04755u);
    if (::geteuid() == 0) {
      EXPECT_EQ(st.st_uid, 1000u);
      EXPECT_EQ(st.st_gid, 1001u);
    }
    EXPECT_TRUE(berth::read_file(out + "/big/suid") == numbered_bytes(2u << 20, 99));
  }
}

// What the kernel refuses direct (an unaligned buffer: EINVAL) goes through
// the page cache, as does all after it, and the bytes land where asked.
TEST(ImagesUnpack, DirectWritesFallBackToThePageCacheForWhatTheKernelRefuses) {
  TempDir dir;
  if (!takes_o_direct(dir.path())) GTEST_SKIP() << "this filesystem takes no O_DIRECT";
  std::string path = dir.path() + "/f";
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd);
  berth::images::detail::DirectWrites out(fd.get());
  ASSERT_TRUE(out.direct());
  const size_t block = berth::images::detail::DirectWrites::kAlign;
  std::unique_ptr<char, decltype(&std::free)> aligned(static_cast<char*>(std::aligned_alloc(block, 3 * block)), &std::free);
  std::string data = numbered_bytes(2 * block + 1, 5);
  std::memcpy(aligned.get(), data.data(), block);
  ASSERT_TRUE(out.write(aligned.get(), block, 0)) << std::strerror(errno);
  EXPECT_TRUE(out.direct()) << "an aligned write went through the page cache";
  std::memcpy(aligned.get() + 1, data.data() + block, block);  // one byte off alignment
  ASSERT_TRUE(out.write(aligned.get() + 1, block, block)) << std::strerror(errno);
  EXPECT_FALSE(out.direct());
  ASSERT_TRUE(out.write(data.data() + 2 * block, 1, 2 * block)) << std::strerror(errno);
  EXPECT_EQ(::fcntl(fd.get(), F_GETFL) & O_DIRECT, 0);
  fd.reset();
  EXPECT_TRUE(berth::read_file(path) == data) << "content differs";
}

// A sparse big file (GNU tar --sparse): its data regions land at their
// offsets, the holes read as zeros, and the size is the entry's.
TEST(ImagesUnpack, SparseBigFilesKeepTheirDataAndSize) {
  TempDir dir;
  std::string src = dir.path() + "/src";
  berth::make_dirs(src);
  std::string head = numbered_bytes(300000, 1), middle = numbered_bytes(70000, 2), tail = numbered_bytes(5000, 3);
  {
    UniqueFd fd(::open((src + "/sparse").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    ASSERT_EQ(::pwrite(fd.get(), head.data(), head.size(), 0), static_cast<ssize_t>(head.size()));
    ASSERT_EQ(::pwrite(fd.get(), middle.data(), middle.size(), 2 << 20), static_cast<ssize_t>(middle.size()));
    ASSERT_EQ(::pwrite(fd.get(), tail.data(), tail.size(), (6 << 20) + 123), static_cast<ssize_t>(tail.size()));
    ASSERT_EQ(::ftruncate(fd.get(), 8 << 20), 0);
  }
  std::string tar = dir.path() + "/sparse.tar";
  auto r = berth::test::run({"/bin/tar", "--sparse", "--numeric-owner", "-C", src, "-cf", tar, "sparse"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string expected(8 << 20, '\0');
  expected.replace(0, head.size(), head);
  expected.replace(2 << 20, middle.size(), middle);
  expected.replace((6 << 20) + 123, tail.size(), tail);
  for (bool stream : {false, true}) {
    SCOPED_TRACE(stream ? "stream" : "fd");
    std::string out = unpack_one_way(dir, tar, stream);
    std::string got = berth::read_file(out + "/sparse");
    EXPECT_EQ(got.size(), expected.size());
    EXPECT_TRUE(got == expected) << "content differs";
  }
}

// A big file that does not fit fails the unpack naming its entry.
TEST(ImagesUnpack, ABigFileThatDoesNotFitFailsNamingItsEntry) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  TempDir dir;
  std::string tar = make_tar(dir, "big.tar", [](TarWriter& t) { t.add_entry("big", '0', 0644, numbered_bytes(3u << 20, 9)); });
  std::string msg = unpack_error_on_tmpfs(dir, tar, "1m");
  EXPECT_NE(msg.find("layer sha256:test-layer: entry \"big\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
}

TEST(ImagesUnpack, RejectsParentTraversal) {
  expect_rejected([](TarWriter& t) { t.add_entry("../escaped", '0', 0644, "x"); }, "../escaped", "..");
  expect_rejected([](TarWriter& t) { t.add_entry("a/../../escaped", '0', 0644, "x"); }, "a/../../escaped", "..");
}

TEST(ImagesUnpack, RejectsAbsoluteNames) {
  expect_rejected([](TarWriter& t) { t.add_entry("/etc/evil", '0', 0644, "x"); }, "/etc/evil", "absolute");
}

TEST(ImagesUnpack, RejectsEntriesThroughSymlinks) {
  // An absolute symlink, then a file "inside" it: would write to the host's /tmp.
  expect_rejected([](TarWriter& t) {
    t.add_entry("escape", '2', 0777, {}, "/tmp");
    t.add_entry("escape/owned", '0', 0644, "x");
  }, "escape/owned", "symlink");
  // A relative one climbing out.
  expect_rejected([](TarWriter& t) {
    t.add_entry("up", '2', 0777, {}, "../../..");
    t.add_entry("up/owned", '0', 0644, "x");
  }, "up/owned", "symlink");
  // Even one staying inside the layer: the entry must name a real directory.
  expect_rejected([](TarWriter& t) {
    t.add_entry("real/", '5', 0755);
    t.add_entry("alias", '2', 0777, {}, "real");
    t.add_entry("alias/file", '0', 0644, "x");
  }, "alias/file", "symlink");
}

TEST(ImagesUnpack, RejectsHardlinksOutsideTheLayer) {
  expect_rejected([](TarWriter& t) { t.add_entry("passwd", '1', 0, {}, "../../../../etc/passwd"); }, "passwd", "..");
  expect_rejected([](TarWriter& t) { t.add_entry("passwd", '1', 0, {}, "/etc/passwd"); }, "passwd", "absolute");
  expect_rejected([](TarWriter& t) {
    t.add_entry("etc", '2', 0777, {}, "/etc");
    t.add_entry("passwd", '1', 0, {}, "etc/passwd");
  }, "passwd", "symlink");
  expect_rejected([](TarWriter& t) { t.add_entry("ghost", '1', 0, {}, "missing"); }, "ghost", "not in the layer");
}

TEST(ImagesUnpack, NothingEscapesOnRejection) {
  TempDir dir;
  std::string outside = dir.path() + "/outside";
  berth::make_dirs(outside);
  std::string tar = make_tar(dir, "evil.tar", [&](TarWriter& t) {
    t.add_entry("link", '2', 0777, {}, outside);
    t.add_entry("link/pwned", '0', 0644, "x");
  });
  EXPECT_THROW(unpack(tar, dir.path() + "/out"), Error);
  EXPECT_FALSE(berth::path_exists(outside + "/pwned"));
}

TEST(ImagesUnpack, DecompressComputesBothDigests) {
  TempDir dir;
  std::string tar = make_tar(dir, "layer.tar", [](TarWriter& t) { t.add_entry("f", '0', 0644, std::string(100000, 'z')); });
  std::string tar_digest = berth::images::sha256_file(tar);
  auto gz = berth::test::run({"/bin/gzip", "-k", tar});
  ASSERT_EQ(gz.exit_code, 0) << gz.err;
  UniqueFd in(::open((tar + ".gz").c_str(), O_RDONLY | O_CLOEXEC));
  EXPECT_EQ(berth::images::detect_compression(in.get()), berth::images::Compression::Gzip);
  std::string out_path = dir.path() + "/out.tar";
  UniqueFd out(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  auto r = berth::images::decompress_stream(in.get(), out.get(), "layer x");
  EXPECT_EQ(r.diff_id, tar_digest);
  EXPECT_EQ(r.input_digest, berth::images::sha256_file(tar + ".gz"));
  EXPECT_EQ(berth::images::sha256_file(out_path), tar_digest);
}

TEST(ImagesUnpack, StreamUnpacksCompressedLayerInOnePass) {
  TempDir dir;
  std::string tar = make_tar(dir, "layer.tar", [](TarWriter& t) {
    t.add_entry("bin/", '5', 0755);
    t.add_entry("bin/tool", '0', 04755, "#!/bin/sh\n", "", 1000, 1001);
    t.add_entry("bin/sh", '2', 0777, {}, "tool");
    t.add_entry("etc/", '5', 0755);
    t.add_entry("etc/.wh.gone", '0', 0644);
    t.add_entry("etc/big", '0', 0640, std::string(300000, 'q'));
    t.add_entry("var/.wh..wh..opq", '0', 0644);
  });
  std::string out = dir.path() + "/out", copy = dir.path() + "/copy.tar";
  auto r = unpack_stream(tar, out, copy);
  EXPECT_EQ(r.diff_id, berth::images::sha256_file(tar));
  EXPECT_EQ(r.input_digest, berth::images::sha256_file(tar + ".gz"));
  EXPECT_EQ(berth::images::sha256_file(copy), r.diff_id) << "the tar copy is the uncompressed stream, padding included";
  EXPECT_EQ(r.tar_size, lstat_of(tar).st_size);
  EXPECT_EQ(r.input_size, lstat_of(tar + ".gz").st_size);
  struct stat tool = lstat_of(out + "/bin/tool");
  EXPECT_EQ(tool.st_mode & 07777, 04755u);
  EXPECT_EQ(tool.st_uid, 1000u);
  EXPECT_EQ(lstat_of(out + "/etc/big").st_mode & 07777, 0640u);
  EXPECT_EQ(lstat_of(out + "/etc/big").st_size, 300000);
  EXPECT_EQ(lstat_of(out + "/etc").st_mtime, 1700000000);
  EXPECT_TRUE(S_ISCHR(lstat_of(out + "/etc/gone").st_mode));
  char value[8] = {};
  EXPECT_EQ(::getxattr((out + "/var").c_str(), "trusted.overlay.opaque", value, sizeof value), 1);
}

TEST(ImagesUnpack, StreamSourceErrorIsRethrownAsItIs) {
  TempDir dir;
  std::string tar = make_tar(dir, "layer.tar", [](TarWriter& t) { t.add_entry("f", '0', 0644, std::string(200000, 'z')); });
  std::string data = berth::read_file(tar);
  size_t at = 0;
  // The source fails mid-stream, as a download whose digest did not match.
  auto read = [&](char* buf, size_t cap) -> size_t {
    if (at >= data.size() / 2) throw Error("blob sha256:abc: digest mismatch");
    size_t n = std::min(cap, data.size() / 2 - at);
    std::memcpy(buf, data.data() + at, n);
    at += n;
    return n;
  };
  berth::make_dirs(dir.path() + "/out");
  try {
    berth::images::unpack_layer_stream(read, -1, dir.path() + "/out", "sha256:test-layer", false);
    ADD_FAILURE() << "a failed source was accepted";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "blob sha256:abc: digest mismatch");
  }
}

TEST(ImagesUnpack, TruncatedGzipIsAnError) {
  TempDir dir;
  std::string tar = make_tar(dir, "layer.tar", [](TarWriter& t) {
    std::string noise;
    for (int i = 0; i < 200000; ++i) noise += static_cast<char>((i * 7919) % 251);
    t.add_entry("f", '0', 0644, noise);
  });
  ASSERT_EQ(berth::test::run({"/bin/gzip", "-k", tar}).exit_code, 0);
  std::string gz = berth::read_file(tar + ".gz");
  std::string cut = dir.write("cut.tar.gz", gz.substr(0, gz.size() / 2));
  UniqueFd in(::open(cut.c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd out(::open((dir.path() + "/o").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
  try {
    berth::images::decompress_stream(in.get(), out.get(), "layer sha256:cut");
    ADD_FAILURE() << "truncated gzip accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("sha256:cut"), std::string::npos) << e.what();
  }
}

// gzip goes through ISA-L's inflate (zlib through libarchive for the rest);
// these pin its stream handling to what gzip(1) and zlib produce.
namespace gzip_cases {

// Text-like runs (long matches), pseudo-random bytes (stored blocks) and
// zeros, so every deflate block type comes up.
std::string mixed_data(size_t size, uint32_t seed) {
  std::string out;
  out.reserve(size);
  uint32_t x = seed;
  while (out.size() < size) {
    x = x * 1664525u + 1013904223u;
    switch (x >> 30) {
      case 0:
        for (int i = 0; i < 3000; ++i) out += "layer line " + std::to_string((x >> 8) % 97) + "\n";
        break;
      case 1:
        for (int i = 0; i < 50000; ++i) {
          x = x * 1664525u + 1013904223u;
          out += static_cast<char>(x >> 24);
        }
        break;
      default:
        out.append((x >> 12) % 40000, '\0');
        break;
    }
  }
  out.resize(size);
  return out;
}

std::string gzip(const std::string& data, const std::string& level = "-6") {
  auto r = berth::test::run({"/bin/gzip", "-c", "-n", level}, data);
  if (r.exit_code != 0) throw Error("gzip failed: " + r.err);
  return r.out;
}

// decompress_stream (load, import) over a file holding input.
berth::images::DecompressResult decompress(const TempDir& dir, const std::string& input, std::string* output) {
  std::string in_path = dir.write("in.gz", input), out_path = dir.path() + "/out";
  UniqueFd in(::open(in_path.c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd out(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  auto r = berth::images::decompress_stream(in.get(), out.get(), "layer sha256:gz");
  *output = berth::read_file(out_path);
  return r;
}

// unpack_layer_stream (pull) over input read `chunk` bytes at a time, or
// (lend) over input lent in blocks of `chunk` bytes (BorrowFn).
berth::images::StreamUnpackResult stream(const TempDir& dir, const std::string& input, size_t chunk, std::string* tar_copy,
                                         bool lend = false) {
  std::string out = dir.path() + "/tree-" + std::to_string(chunk) + (lend ? "-lent" : ""), copy = dir.path() + "/copy.tar";
  berth::make_dirs(out);
  UniqueFd copy_fd(::open(copy.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  size_t at = 0;
  auto read = [&](char* buf, size_t cap) -> size_t {
    size_t n = std::min({cap, chunk, input.size() - at});
    std::memcpy(buf, input.data() + at, n);
    at += n;
    return n;
  };
  auto borrow = [&](const char** data) -> size_t {
    size_t n = std::min(chunk, input.size() - at);
    *data = input.data() + at;
    at += n;
    return n;
  };
  auto r = lend ? berth::images::unpack_layer_stream(berth::images::BorrowFn(borrow), copy_fd.get(), out, "sha256:gz", true)
                : berth::images::unpack_layer_stream(read, copy_fd.get(), out, "sha256:gz", true);
  *tar_copy = berth::read_file(copy);
  return r;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace gzip_cases

TEST(ImagesGzip, LargeStreamEqualsTheInputAtEveryLevel) {
  TempDir dir;
  std::string data = gzip_cases::mixed_data(24 << 20, 7);
  for (const char* level : {"-1", "-9"}) {
    std::string gz = gzip_cases::gzip(data, level), out;
    auto r = gzip_cases::decompress(dir, gz, &out);
    EXPECT_TRUE(out == data) << level << ": output differs (" << out.size() << " vs " << data.size() << " bytes)";
    EXPECT_EQ(r.diff_id, berth::images::sha256_digest(data)) << level;
    EXPECT_EQ(r.input_digest, berth::images::sha256_digest(gz)) << level;
    EXPECT_EQ(r.output_size, data.size());
    EXPECT_EQ(r.input_size, gz.size());
  }
}

TEST(ImagesGzip, MultiMemberStreamsAreOneStream) {
  TempDir dir;
  std::string tar_path = make_tar(dir, "layer.tar", [](TarWriter& t) {
    t.add_entry("a", '0', 0644, gzip_cases::mixed_data(300000, 1));
    t.add_entry("d/", '5', 0755);
    t.add_entry("d/b", '0', 0600, gzip_cases::mixed_data(200000, 2));
  });
  std::string tar = berth::read_file(tar_path);
  // Members cut at odd places (inside a header, inside file data), one of
  // them empty and one with a file name in its header, as pigz and `cat a.gz b.gz` make them.
  std::string gz = gzip_cases::gzip(tar.substr(0, 700)) + gzip_cases::gzip("") + gzip_cases::gzip(tar.substr(700, 250000), "-1");
  std::string named = dir.write("part3", tar.substr(250700));
  ASSERT_EQ(berth::test::run({"/bin/gzip", "-k", "-N", named}).exit_code, 0);
  gz += berth::read_file(named + ".gz");
  std::string out;
  auto r = gzip_cases::decompress(dir, gz, &out);
  EXPECT_TRUE(out == tar) << "decompress_stream: " << out.size() << " vs " << tar.size() << " bytes";
  EXPECT_EQ(r.input_digest, berth::images::sha256_digest(gz));
  // The pull path, with reads of 1 byte (every boundary falls between two
  // reads), a few bytes and whole buffers; and the same blocks lent rather
  // than copied (a first block of 1 byte is too short to tell gzip by: it
  // goes through libarchive's filter instead of ISA-L, with the same result).
  for (bool lend : {false, true}) {
    for (size_t chunk : {size_t{1}, size_t{5}, size_t{4096}, size_t{1} << 20}) {
      SCOPED_TRACE(std::string(lend ? "lent" : "read") + " in blocks of " + std::to_string(chunk));
      std::string copy;
      auto s = gzip_cases::stream(dir, gz, chunk, &copy, lend);
      EXPECT_EQ(s.diff_id, berth::images::sha256_digest(tar));
      EXPECT_EQ(s.input_digest, berth::images::sha256_digest(gz));
      EXPECT_EQ(s.input_size, gz.size());
      EXPECT_TRUE(copy == tar);
      std::string tree = dir.path() + "/tree-" + std::to_string(chunk) + (lend ? "-lent" : "");
      EXPECT_TRUE(berth::read_file(tree + "/d/b") == gzip_cases::mixed_data(200000, 2));
      EXPECT_EQ(lstat_of(tree + "/d/b").st_mode & 07777, 0600u);
    }
  }
}

TEST(ImagesGzip, TrailingBytesThatStartNoMemberAreIgnoredButHashed) {
  TempDir dir;
  std::string tar = berth::read_file(make_tar(dir, "layer.tar", [](TarWriter& t) { t.add_entry("f", '0', 0644, "content"); }));
  for (const std::string& trailer : {std::string(1024, '\0'), std::string("garbage after the member\n")}) {
    std::string gz = gzip_cases::gzip(tar) + trailer, out, copy;
    auto r = gzip_cases::decompress(dir, gz, &out);
    EXPECT_TRUE(out == tar);
    EXPECT_EQ(r.input_digest, berth::images::sha256_digest(gz)) << "the digest covers the trailer";
    EXPECT_EQ(r.input_size, gz.size());
    auto s = gzip_cases::stream(dir, gz, 3, &copy);
    EXPECT_EQ(s.diff_id, berth::images::sha256_digest(tar));
    EXPECT_EQ(s.input_digest, berth::images::sha256_digest(gz));
  }
  // Bytes that start like a member (0x1f) must be one.
  std::string gz = gzip_cases::gzip(tar) + "\x1f" "bad member";
  std::string out;
  std::string msg = gzip_cases::error_of([&] { gzip_cases::decompress(dir, gz, &out); });
  EXPECT_NE(msg.find("layer sha256:gz: cannot decompress: invalid gzip header"), std::string::npos) << msg;
}

TEST(ImagesGzip, TruncatedOrCorruptStreamsFailNamingTheLayer) {
  TempDir dir;
  std::string tar = berth::read_file(make_tar(dir, "layer.tar", [](TarWriter& t) { t.add_entry("f", '0', 0644, gzip_cases::mixed_data(2 << 20, 3)); }));
  std::string gz = gzip_cases::gzip(tar);
  auto both_fail = [&](const std::string& input, const std::string& why) {
    std::string out, copy;
    std::string msg = gzip_cases::error_of([&] { gzip_cases::decompress(dir, input, &out); });
    EXPECT_NE(msg.find("layer sha256:gz: cannot decompress: " + why), std::string::npos) << msg;
    msg = gzip_cases::error_of([&] { gzip_cases::stream(dir, input, 64 << 10, &copy); });
    EXPECT_NE(msg.find("layer sha256:gz: cannot decompress: " + why), std::string::npos) << "stream: " << msg;
  };
  // Cut in the header, in the deflate data, in the trailer, and a second member cut short.
  for (size_t keep : {size_t{5}, gz.size() / 3, gz.size() - 3}) both_fail(gz.substr(0, keep), "truncated gzip input");
  both_fail(gz + gz.substr(0, 100), "truncated gzip input");
  // The trailer's CRC-32, then its length, no longer match the data.
  std::string bad_crc = gz, bad_len = gz;
  bad_crc[gz.size() - 8] ^= 0x01;
  bad_len[gz.size() - 1] ^= 0x01;
  both_fail(bad_crc, "gzip checksum mismatch");
  both_fail(bad_len, "gzip checksum mismatch");
  // A flipped bit in the compressed data: the decoder or the CRC catches it.
  std::string flipped = gz;
  flipped[gz.size() / 2] ^= 0x10;
  std::string out;
  std::string msg = gzip_cases::error_of([&] { gzip_cases::decompress(dir, flipped, &out); });
  EXPECT_TRUE(msg.find("cannot decompress: corrupt gzip data") != std::string::npos ||
              msg.find("cannot decompress: gzip checksum mismatch") != std::string::npos)
      << msg;
  // A header with a compression method other than deflate.
  std::string method = gz;
  method[2] = 7;
  both_fail(method, "unsupported gzip compression method");
}

TEST(ImagesDigest, Sha256OfKnownInput) {
  EXPECT_EQ(berth::images::sha256_digest(""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(berth::images::sha256_digest("abc"), "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_THROW(berth::images::digest_hex("sha256:xyz"), Error);
}

namespace berth::images {
namespace {

// The hash that runs behind on its own thread gives the digest of the
// whole stream, with one buffer reused for every block (update and wait
// return only when the last block is hashed).
TEST(ImagesDigest, Sha256BehindMatchesSha256OverReusedBuffers) {
  std::string whole;
  Sha256Behind behind;
  std::vector<char> buffer(1 << 16);
  for (int block = 0; block < 200; ++block) {
    behind.wait();
    // Big blocks (hashed on the thread) mixed with small ones (hashed at once), in order.
    size_t n = block % 3 ? buffer.size() - static_cast<size_t>(block * 37 % 1000) : static_cast<size_t>(block * 97 % 20000) + 1;
    for (size_t i = 0; i < n; ++i) buffer[i] = static_cast<char>((block * 131 + i * 7) & 0xff);
    whole.append(buffer.data(), n);
    behind.update(buffer.data(), n);
  }
  EXPECT_EQ(behind.finish(), sha256_digest(whole));
  Sha256Behind empty;
  EXPECT_EQ(empty.finish(), sha256_digest(""));
  { Sha256Behind dropped; dropped.update(buffer.data(), 10); }  // destroyed mid-hash: joins, no crash
}

}  // namespace
}  // namespace berth::images
