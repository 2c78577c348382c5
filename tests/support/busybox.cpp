#include "tests/support/busybox.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "base/fs.h"
#include "tests/support/run.h"

namespace berth::test {

static constexpr const char* kBusybox = "/bin/busybox";

bool have_busybox() { return access(kBusybox, X_OK) == 0; }

void make_busybox_rootfs(const std::string& dir) {
  if (!have_busybox()) throw std::runtime_error("busybox-static is not installed (/bin/busybox)");
  namespace fs = std::filesystem;
  for (const char* d : {"bin", "etc", "proc", "sys", "dev", "tmp", "root", "home/berth", "var/tmp", "usr/bin"})
    make_dirs(path_join(dir, d));
  ::chmod(path_join(dir, "tmp").c_str(), 01777);
  fs::copy_file(kBusybox, path_join(dir, "bin/busybox"), fs::copy_options::overwrite_existing);
  ::chmod(path_join(dir, "bin/busybox").c_str(), 0755);
  Result list = run({kBusybox, "--list"});
  if (list.exit_code != 0) throw std::runtime_error("busybox --list failed");
  std::istringstream in(list.out);
  for (std::string applet; std::getline(in, applet);) {
    if (applet.empty() || applet == "busybox") continue;
    std::string link = path_join(dir, "bin/" + applet);
    ::unlink(link.c_str());
    if (::symlink("busybox", link.c_str()) != 0) throw std::runtime_error("symlink failed: " + link);
  }
  write_file_atomic(path_join(dir, "etc/passwd"),
                    "root:x:0:0:root:/root:/bin/sh\n"
                    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                    "berth:x:1000:1000:berth test user:/home/berth:/bin/sh\n"
                    "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n");
  write_file_atomic(path_join(dir, "etc/group"),
                    "root:x:0:\n"
                    "daemon:x:1:\n"
                    "wheel:x:10:berth\n"
                    "berth:x:1000:\n"
                    "nogroup:x:65534:\n");
  ::chown(path_join(dir, "home/berth").c_str(), 1000, 1000);
}

void make_busybox_tar(const std::string& tar_path) {
  TempDir tmp;
  std::string root = path_join(tmp.path(), "rootfs");
  make_busybox_rootfs(root);
  Result r = run({"/bin/tar", "--numeric-owner", "-C", root, "-cf", tar_path, "."});
  if (r.exit_code != 0) throw std::runtime_error("tar failed: " + r.err);
}

}  // namespace berth::test
