// berth cp against the real binary: both directions, docker's path rules
// (trailing "/", "/.", existing or missing destinations), symlinks (-L),
// ownership (-a), tar streams on stdin/stdout, running and stopped
// containers (volumes and binds as the container sees them), and paths
// that try to leave the container's root.
#include <sys/stat.h>
#include <unistd.h>

#include "tests/integration/container_fixture.h"

namespace berth::test {
namespace {

class CopyTest : public ContainerTest {
 protected:
  void SetUp() override {
    ContainerTest::SetUp();
    if (IsSkipped()) return;
    host_ = tmp_.path() + "/host";
    make_dirs(host_);
  }

  // A running container "c1" with /data = {a.txt, sub/b.txt, link -> a.txt}.
  void start_c1(std::vector<std::string> flags = {}) {
    flags.insert(flags.begin(), {"--name", "c1"});
    run_detached(flags, {"sleep", "600"});
    auto r = berth({"exec", "c1", "sh", "-c",
                    "mkdir -p /data/sub && echo hello > /data/a.txt && echo deep > /data/sub/b.txt && "
                    "ln -s a.txt /data/link"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }

  Result cp(std::vector<std::string> args, const std::string& input = {}) {
    args.insert(args.begin(), "cp");
    return berth(args, input);
  }

  std::string in_c1(const std::string& script) { return berth({"exec", "c1", "sh", "-c", script}).out; }

  static std::string owner(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return "missing";
    return std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid);
  }
  static bool is_symlink(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
  }

  std::string host_;
};

TEST_F(CopyTest, FromAContainerFollowsDockersPathRules) {
  start_c1();
  // A file to a path that does not exist: that name.
  auto r = cp({"c1:/data/a.txt", host_ + "/out.txt"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(slurp(host_ + "/out.txt"), "hello\n");
  // A file into an existing directory: same basename.
  make_dirs(host_ + "/dir");
  ASSERT_EQ(cp({"c1:/data/a.txt", host_ + "/dir"}).exit_code, 0);
  EXPECT_EQ(slurp(host_ + "/dir/a.txt"), "hello\n");
  // Over an existing file.
  write_file_atomic(host_ + "/old.txt", "old contents that are longer\n");
  ASSERT_EQ(cp({"c1:/data/sub/b.txt", host_ + "/old.txt"}).exit_code, 0);
  EXPECT_EQ(slurp(host_ + "/old.txt"), "deep\n");
  // A trailing "/" asks for a directory that must exist.
  r = cp({"c1:/data/a.txt", host_ + "/nodir/"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("does not exist"), std::string::npos) << r.err;
  EXPECT_FALSE(path_exists(host_ + "/nodir"));

  // A directory to a new path: created with the directory's contents.
  ASSERT_EQ(cp({"c1:/data", host_ + "/newdir"}).exit_code, 0);
  EXPECT_EQ(slurp(host_ + "/newdir/a.txt"), "hello\n");
  EXPECT_EQ(slurp(host_ + "/newdir/sub/b.txt"), "deep\n");
  EXPECT_TRUE(is_symlink(host_ + "/newdir/link"));
  // Into an existing directory: the directory itself goes in ...
  make_dirs(host_ + "/into");
  ASSERT_EQ(cp({"c1:/data/", host_ + "/into"}).exit_code, 0);
  EXPECT_EQ(slurp(host_ + "/into/data/sub/b.txt"), "deep\n");
  // ... or only its contents with "/.".
  make_dirs(host_ + "/contents");
  ASSERT_EQ(cp({"c1:/data/.", host_ + "/contents"}).exit_code, 0);
  EXPECT_EQ(slurp(host_ + "/contents/a.txt"), "hello\n");
  EXPECT_FALSE(path_exists(host_ + "/contents/data"));
  // A directory never replaces a file.
  r = cp({"c1:/data", host_ + "/out.txt"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot copy a directory to a file"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(host_ + "/out.txt"), "hello\n");
  // A file path with a trailing "/" is not a directory.
  r = cp({"c1:/data/a.txt/", host_ + "/x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a directory"), std::string::npos) << r.err;

  // Symlinks: copied as links, followed with -L.
  ASSERT_EQ(cp({"c1:/data/link", host_ + "/l1"}).exit_code, 0);
  ASSERT_TRUE(is_symlink(host_ + "/l1"));
  ASSERT_EQ(cp({"-L", "c1:/data/link", host_ + "/l2"}).exit_code, 0);
  EXPECT_FALSE(is_symlink(host_ + "/l2"));
  EXPECT_EQ(slurp(host_ + "/l2"), "hello\n");

  // Errors say what is missing where, exit 1.
  r = cp({"c1:/nope", host_ + "/x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(trim(r.err), "Error: Could not find the file /nope in container c1");
  r = cp({"nosuch:/etc/passwd", host_ + "/x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("No such container: nosuch"), std::string::npos) << r.err;
  EXPECT_EQ(cp({host_ + "/out.txt", host_ + "/y"}).exit_code, 1);  // no container at all
}

TEST_F(CopyTest, IntoAContainerAndOwnership) {
  start_c1();
  std::string file = host_ + "/f.txt";
  write_file_atomic(file, "from the host\n");
  ASSERT_EQ(::chown(file.c_str(), 1234, 5678), 0);
  // A file into an existing directory, owned by the container's root ...
  auto r = cp({file, "c1:/tmp/"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(in_c1("cat /tmp/f.txt; stat -c %u:%g /tmp/f.txt"), "from the host\n0:0\n");
  // ... or keeping its uid/gid with -a.
  ASSERT_EQ(cp({"-a", file, "c1:/tmp/kept.txt"}).exit_code, 0);
  EXPECT_EQ(in_c1("stat -c %u:%g /tmp/kept.txt"), "1234:5678\n");
  // A directory to a new path.
  make_dirs(host_ + "/tree/deeper");
  write_file_atomic(host_ + "/tree/deeper/x", "x\n");
  ASSERT_EQ(::chmod((host_ + "/tree/deeper/x").c_str(), 0751), 0);
  ASSERT_EQ(cp({host_ + "/tree", "c1:/newtree"}).exit_code, 0);
  EXPECT_EQ(in_c1("cat /newtree/deeper/x; stat -c %a /newtree/deeper/x"), "x\n751\n");
  // The destination's parent must exist in the container.
  r = cp({file, "c1:/no/such/dir/f"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Could not find the file /no/such/dir in container c1"), std::string::npos) << r.err;
  r = cp({host_ + "/missing", "c1:/tmp/"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("no such file or directory"), std::string::npos) << r.err;

  // Out of the container: the caller's uid/gid, or the container's with -a.
  ASSERT_NE(in_c1("echo owned > /tmp/o && chown 42:43 /tmp/o && echo ok"), "");
  ASSERT_EQ(cp({"c1:/tmp/o", host_ + "/o1"}).exit_code, 0);
  EXPECT_EQ(owner(host_ + "/o1"), std::to_string(::geteuid()) + ":" + std::to_string(::getegid()));
  ASSERT_EQ(cp({"-a", "c1:/tmp/o", host_ + "/o2"}).exit_code, 0);
  EXPECT_EQ(owner(host_ + "/o2"), "42:43");
}

TEST_F(CopyTest, TarStreamsOnStdoutAndStdin) {
  start_c1();
  auto r = cp({"c1:/data", "-"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string tar = host_ + "/out.tar";
  write_file_atomic(tar, r.out);
  auto list = berth::test::run({"/bin/tar", "-tvf", tar});
  ASSERT_EQ(list.exit_code, 0) << list.err;
  for (const char* name : {"data/", "data/a.txt", "data/sub/b.txt", "data/link -> a.txt"})
    EXPECT_NE(list.out.find(name), std::string::npos) << name << "\n" << list.out;

  // A tar on stdin is extracted into a directory, keeping its owners with -a.
  make_dirs(host_ + "/src/inner");
  write_file_atomic(host_ + "/src/inner/file", "streamed\n");
  auto made = berth::test::run({"/bin/tar", "-C", host_ + "/src", "--owner=7", "--group=8", "--numeric-owner", "-cf", "-", "inner"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  r = cp({"-a", "-", "c1:/tmp"}, made.out);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(in_c1("cat /tmp/inner/file; stat -c %u:%g /tmp/inner/file"), "streamed\n7:8\n");
  // Compressed works too.
  auto gz = berth::test::run({"/bin/tar", "-C", host_ + "/src", "-czf", "-", "inner"});
  ASSERT_EQ(cp({"-", "c1:/root"}, gz.out).exit_code, 0);
  EXPECT_EQ(in_c1("cat /root/inner/file"), "streamed\n");
  // The destination of a stream must be an existing directory.
  r = cp({"-", "c1:/nonexistent"}, made.out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Could not find the file /nonexistent in container c1"), std::string::npos) << r.err;
  r = cp({"-", "c1:/data/a.txt"}, made.out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("not a directory"), std::string::npos) << r.err;
}

TEST_F(CopyTest, NothingLeavesTheContainersRoot) {
  start_c1();
  // A host file the container must never reach, and a host directory it
  // must never write to.
  std::string secret = host_ + "/secret.txt";
  write_file_atomic(secret, "host secret\n");
  std::string host_dir = host_ + "/victim";
  make_dirs(host_dir);
  std::string script = "ln -s " + secret + " /abs && ln -s ../../../../../../../../.." + secret + " /rel && ln -s " +
                       host_dir + " /victim && echo ok";
  ASSERT_EQ(in_c1(script), "ok\n");

  // Reading through symlinks: they resolve inside the container, where
  // the host's paths do not exist.
  for (const char* link : {"c1:/abs", "c1:/rel"}) {
    auto r = cp({"-L", link, host_ + "/leak"});
    EXPECT_EQ(r.exit_code, 1) << link;
    EXPECT_FALSE(path_exists(host_ + "/leak")) << link;
  }
  // ".." at the container's root stays there.
  ASSERT_EQ(in_c1("ln -s ../../../../../../.. /updir && echo ok"), "ok\n");
  auto r = cp({"c1:/updir" + secret, host_ + "/leak"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_FALSE(path_exists(host_ + "/leak"));
  r = cp({"c1:/updir/data/a.txt", host_ + "/up.txt"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(slurp(host_ + "/up.txt"), "hello\n");

  // Writing through a symlink to a host path lands inside the container.
  std::string file = host_ + "/payload";
  write_file_atomic(file, "payload\n");
  r = cp({file, "c1:/victim/"});
  EXPECT_EQ(r.exit_code, 1) << "the container has no " << host_dir;
  ASSERT_EQ(in_c1("mkdir -p " + host_dir + " && echo ok"), "ok\n");
  r = cp({file, "c1:/victim/"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_FALSE(path_exists(host_dir + "/payload"));
  EXPECT_EQ(in_c1("cat " + host_dir + "/payload"), "payload\n");

  // A tar member climbing out of the destination is refused.
  std::string evil = host_ + "/evil";
  make_dirs(evil);
  write_file_atomic(evil + "/x", "x\n");
  auto made = berth::test::run({"/bin/tar", "-C", evil, "-P", "--transform", "s,^x,../../escaped,", "-cf", "-", "x"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_EQ(berth::test::run({"/bin/sh", "-c", "tar -tPf - | grep -q '^../../escaped'"}, made.out).exit_code, 0);
  r = cp({"-", "c1:/tmp"}, made.out);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("leaves the destination"), std::string::npos) << r.err;
  EXPECT_EQ(in_c1("ls /escaped 2>&1 >/dev/null | wc -l"), "1\n");
}

TEST_F(CopyTest, StoppedContainersSeeTheirVolumesAndBinds) {
  std::string bind = host_ + "/bind";
  make_dirs(bind);
  auto r = berth({"create", "--name", "s1", "-v", "vol1:/vol", "-v", bind + ":/bind", "--rootfs", rootfs_, "sh", "-c",
                  "cat /vol/in.txt /top.txt /bind/b.txt; echo made > /vol/out.txt"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  write_file_atomic(host_ + "/in.txt", "into the volume\n");
  write_file_atomic(host_ + "/top.txt", "into the rootfs\n");
  write_file_atomic(host_ + "/b.txt", "into the bind\n");
  ASSERT_EQ(cp({host_ + "/in.txt", "s1:/vol/"}).exit_code, 0);
  ASSERT_EQ(cp({host_ + "/top.txt", "s1:/top.txt"}).exit_code, 0);
  r = cp({host_ + "/b.txt", "s1:/bind/b.txt"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(slurp(bind + "/b.txt"), "into the bind\n");  // the bind is the host directory
  // Nothing stays mounted on the host.
  std::string mountinfo;
  read_file_if_exists("/proc/self/mountinfo", mountinfo);
  EXPECT_EQ(mountinfo.find(root_), std::string::npos);

  r = berth({"start", "-a", "s1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "into the volume\ninto the rootfs\ninto the bind\n");
  // Out of the stopped container, from its volume.
  ASSERT_EQ(cp({"s1:/vol/out.txt", host_ + "/out.txt"}).exit_code, 0);
  EXPECT_EQ(slurp(host_ + "/out.txt"), "made\n");
  r = cp({"s1:/nope", host_ + "/x"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(trim(r.err), "Error: Could not find the file /nope in container s1");
}

TEST_F(CopyTest, RunningContainersMountsAndReadOnlyRootfs) {
  std::string bind = host_ + "/bind";
  make_dirs(bind);
  run_detached({"--name", "c1", "--read-only", "-v", bind + ":/bind", "--tmpfs", "/scratch"}, {"sleep", "600"});
  write_file_atomic(host_ + "/f", "f\n");
  auto r = cp({host_ + "/f", "c1:/f"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("Read-only file system"), std::string::npos) << r.err;
  // A tmpfs of the running container is what cp sees.
  ASSERT_EQ(cp({host_ + "/f", "c1:/scratch/"}).exit_code, 0);
  EXPECT_EQ(in_c1("cat /scratch/f"), "f\n");
  ASSERT_EQ(cp({host_ + "/f", "c1:/bind/"}).exit_code, 0);
  EXPECT_EQ(slurp(bind + "/f"), "f\n");
}

}  // namespace
}  // namespace berth::test
