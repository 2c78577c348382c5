// `berth cp`: files between a container and the host, or a tar stream,
// with docker's path semantics:
// - SRC a file: copied to DEST if DEST does not exist (DEST ending in "/"
//   must then be an existing directory), over DEST if it is a file, into
//   DEST (same basename) if it is a directory;
// - SRC a directory: DEST is created with SRC's contents if it does not
//   exist; SRC itself goes into DEST if DEST is a directory, or just its
//   contents when SRC ends in "/."; a directory never replaces a file;
// - a symlink at SRC is copied as a link unless -L (or a trailing "/");
//   one at DEST is followed.
// Paths in the container resolve inside its root (openat2 RESOLVE_IN_ROOT):
// no symlink and no ".." reaches outside it, and the copy sees what the
// container sees (its volumes and binds, running or stopped).
#pragma once

#include <string>

#include "runtime/runtime.h"

namespace berth::runtime {

struct CopyOptions {
  // -a: files keep the source's uid/gid. Otherwise they belong to root in
  // the container, and to the user running berth on the host.
  bool archive = false;
  bool follow_link = false;  // -L: copy what a symlink at SRC points to
};

// berth cp CONTAINER:SRC DEST; DEST "-" writes a tar stream of SRC to out_fd.
// Errors exit 1 (e.g. "Could not find the file /x in container c1").
void copy_from_container(const Runtime& rt, const std::string& ref, const std::string& src, const std::string& dest,
                         const CopyOptions& options, int out_fd = 1);

// berth cp SRC CONTAINER:DEST; SRC "-" extracts a tar stream (plain or
// compressed) read from in_fd into DEST, which must be a directory.
void copy_to_container(const Runtime& rt, const std::string& ref, const std::string& src, const std::string& dest,
                       const CopyOptions& options, int in_fd = 0);

}  // namespace berth::runtime
