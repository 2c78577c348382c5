// Test fixtures made from Debian's busybox-static: a minimal rootfs
// directory and a tarball of it. No network, no other images needed.
#pragma once

#include <string>

namespace berth::test {

// True when /bin/busybox (busybox-static) is installed.
bool have_busybox();

// Fills dir with a busybox rootfs: /bin/busybox with one symlink per applet
// in /bin, /etc/passwd and /etc/group (root, daemon, nobody and user
// "berth" 1000:1000 with supplementary group "wheel"), and the empty
// directories a container needs (proc, sys, dev, tmp, root, home/berth, var).
void make_busybox_rootfs(const std::string& dir);

// Writes an uncompressed tar of such a rootfs to tar_path.
void make_busybox_tar(const std::string& tar_path);

}  // namespace berth::test
