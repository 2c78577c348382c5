// `berth commit`: a container's changes (its overlay upper dir) become a new
// layer on top of the layers of its image, as docker commit.
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

#include "base/error.h"
#include "base/fs.h"
#include "base/time.h"
#include "cli/cli.h"
#include "reconciler/image_rootfs.h"
#include "images/images.h"
#include "runtime/runtime.h"

namespace berth::cli {

namespace {

// Files the runtime bind-mounts over the rootfs: what is in the upper dir
// at those paths is only a mount point, never the container's own change
// (docker keeps them in an "init" layer that commit leaves out).
const std::set<std::string> kMountPointFiles = {"etc/hosts", "etc/hostname", "etc/resolv.conf"};

// Writes an overlayfs upper dir as a layer tar: whiteouts (0:0 character
// devices) become .wh.NAME, opaque directories get .wh..wh..opq.
class LayerTarWriter {
 public:
  explicit LayerTarWriter(int fd) : a_(archive_write_new()) {
    if (!a_) throw Error("commit: cannot allocate an archive writer");
    check(archive_write_set_format_pax_restricted(a_));
    check(archive_write_open_fd(a_, fd));
  }
  ~LayerTarWriter() { archive_write_free(a_); }
  LayerTarWriter(const LayerTarWriter&) = delete;
  LayerTarWriter& operator=(const LayerTarWriter&) = delete;

  void add_tree(const std::string& dir, const std::string& rel) {
    std::vector<std::string> names;
    {
      std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
      if (!d) throw_errno("commit: cannot read " + dir);
      while (dirent* e = ::readdir(d.get()))
        if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) names.push_back(e->d_name);
    }
    std::sort(names.begin(), names.end());
    for (auto& name : names) add(dir + "/" + name, rel.empty() ? name : rel + "/" + name, rel, name);
  }

  void finish() { check(archive_write_close(a_)); }

 private:
  void check(int rc) {
    if (rc < ARCHIVE_WARN) throw Error(std::string("commit: cannot write the layer: ") + archive_error_string(a_));
  }

  using Entry = std::unique_ptr<archive_entry, void (*)(archive_entry*)>;
  static Entry new_entry() { return Entry(archive_entry_new(), archive_entry_free); }

  static bool xattr_is(const std::string& path, const char* name, const char* value) {
    char buf[16] = {};
    ssize_t n = ::lgetxattr(path.c_str(), name, buf, sizeof buf - 1);
    return n >= 0 && (value == nullptr || std::strcmp(buf, value) == 0);
  }

  // Extended attributes travel in the layer, except overlayfs' own.
  static void copy_xattrs(const std::string& path, archive_entry* e) {
    ssize_t size = ::llistxattr(path.c_str(), nullptr, 0);
    if (size <= 0) return;
    std::string list(static_cast<size_t>(size), '\0');
    size = ::llistxattr(path.c_str(), list.data(), list.size());
    if (size <= 0) return;
    for (size_t pos = 0; pos < static_cast<size_t>(size);) {
      std::string name(list.c_str() + pos);
      pos += name.size() + 1;
      if (name.rfind("trusted.overlay.", 0) == 0) continue;
      ssize_t vlen = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
      if (vlen < 0) continue;
      std::string value(static_cast<size_t>(vlen), '\0');
      vlen = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
      if (vlen < 0) continue;
      archive_entry_xattr_add_entry(e, name.c_str(), value.data(), static_cast<size_t>(vlen));
    }
  }

  void write_empty_file(const std::string& name, const struct stat& like) {
    Entry e = new_entry();
    archive_entry_set_pathname(e.get(), name.c_str());
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_size(e.get(), 0);
    archive_entry_set_uid(e.get(), 0);
    archive_entry_set_gid(e.get(), 0);
    archive_entry_set_mtime(e.get(), like.st_mtim.tv_sec, like.st_mtim.tv_nsec);
    check(archive_write_header(a_, e.get()));
  }

  void add(const std::string& path, const std::string& name, const std::string& parent, const std::string& base) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) throw_errno("commit: cannot stat " + path);
    if (S_ISSOCK(st.st_mode)) return;  // sockets do not travel in layers
    if (S_ISCHR(st.st_mode) && st.st_rdev == 0) {  // overlayfs whiteout
      write_empty_file((parent.empty() ? "" : parent + "/") + ".wh." + base, st);
      return;
    }
    if (S_ISREG(st.st_mode) && kMountPointFiles.count(name)) return;
    // Layers must be self-contained: a redirected dir or a metadata-only
    // copy-up refers to lower layers by path or by content.
    if (xattr_is(path, "trusted.overlay.redirect", nullptr) || xattr_is(path, "trusted.overlay.metacopy", nullptr))
      throw Error("commit: " + name + " uses overlayfs redirect_dir/metacopy, which a layer cannot express", 0, 125);
    Entry e = new_entry();
    archive_entry_copy_stat(e.get(), &st);
    archive_entry_set_pathname(e.get(), name.c_str());
    copy_xattrs(path, e.get());
    UniqueFd content;
    if (S_ISREG(st.st_mode) && st.st_nlink > 1) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto [it, first] = links_.emplace(key, name);
      if (!first) {
        archive_entry_set_hardlink(e.get(), it->second.c_str());
        archive_entry_set_size(e.get(), 0);
        check(archive_write_header(a_, e.get()));
        return;
      }
    }
    if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
      if (n < 0) throw_errno("commit: cannot read link " + path);
      target.resize(static_cast<size_t>(n));
      archive_entry_set_symlink(e.get(), target.c_str());
      archive_entry_set_size(e.get(), 0);
    } else if (S_ISREG(st.st_mode)) {
      content = UniqueFd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (!content) throw_errno("commit: cannot open " + path);
    } else {
      archive_entry_set_size(e.get(), 0);
    }
    check(archive_write_header(a_, e.get()));
    if (content) {
      char buf[1 << 16];
      uint64_t left = static_cast<uint64_t>(st.st_size);
      while (left > 0) {
        ssize_t n = ::read(content.get(), buf, std::min<uint64_t>(sizeof buf, left));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw_errno("commit: cannot read " + path);
        if (n == 0) throw Error("commit: " + path + " shrank while it was read", 0, 125);
        if (archive_write_data(a_, buf, static_cast<size_t>(n)) != n)
          throw Error(std::string("commit: cannot write the layer: ") + archive_error_string(a_));
        left -= static_cast<uint64_t>(n);
      }
    }
    if (S_ISDIR(st.st_mode)) {
      if (xattr_is(path, "trusted.overlay.opaque", "y")) write_empty_file(name + "/.wh..wh..opq", st);
      add_tree(path, name);
    }
  }

  archive* a_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
};

// Pauses a running container for the life of the object (docker commit's default).
class PauseGuard {
 public:
  PauseGuard(runtime::Runtime& rt, const runtime::Container& c, bool pause) : rt_(rt), id_(c.id) {
    if (pause && c.state.status == runtime::Status::Running) {
      rt_.pause(id_);
      paused_ = true;
    }
  }
  ~PauseGuard() {
    if (!paused_) return;
    try {
      rt_.unpause(id_);
    } catch (const std::exception& e) {
      std::cerr << "Warning: cannot unpause " << id_ << ": " << e.what() << "\n";
    }
  }
  PauseGuard(const PauseGuard&) = delete;
  PauseGuard& operator=(const PauseGuard&) = delete;

 private:
  runtime::Runtime& rt_;
  std::string id_;
  bool paused_ = false;
};

struct CommitOptions {
  std::string container, reference, message, author;
  std::vector<std::string> changes;
  bool pause = true;
};

std::string commit(const GlobalOptions& g, const CommitOptions& o) {
  // Parse everything first: a typo must not cost a pause or a layer.
  std::optional<images::Reference> ref;
  if (!o.reference.empty()) {
    ref = images::parse_reference(o.reference);
    if (!ref->digest.empty()) throw Error("commit: the reference must not have a digest", 0, 125);
  }
  runtime::Runtime rt(runtime::Paths{g.root, g.run_root, {}});
  runtime::Container c = rt.get(o.container);
  auto image_id = c.spec.annotations.find(reconciler::kImageIdAnnotation);
  if (image_id == c.spec.annotations.end())
    throw Error("commit: container " + c.spec.name + " was not created from an image (--rootfs)", 0, 125);
  nlohmann::json container_config = nlohmann::json::object();
  if (auto it = c.spec.annotations.find(reconciler::kConfigAnnotation); it != c.spec.annotations.end())
    container_config = nlohmann::json::parse(it->second, nullptr, false);
  if (!container_config.is_object()) container_config = nlohmann::json::object();
  // Docker's committed config leaves out what is empty.
  for (auto it = container_config.begin(); it != container_config.end();) {
    if (it->is_null() || (it->is_string() && it->get<std::string>().empty()) || ((it->is_object() || it->is_array()) && it->empty()))
      it = container_config.erase(it);
    else
      ++it;
  }
  images::apply_changes(container_config, o.changes);

  images::Store store(g.root);
  nlohmann::json parent = nlohmann::json::parse(store.config_bytes(image_id->second));
  std::vector<std::string> diff_ids = store.summary(image_id->second).diff_ids;

  std::string diff_id;
  {
    // The tar goes to an unnamed file on the root's filesystem: nothing to clean up.
    UniqueFd tmp(::open(g.root.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!tmp) throw_errno("commit: cannot create a temporary file under " + g.root);
    {
      PauseGuard paused(rt, c, o.pause);
      LayerTarWriter tar(tmp.get());
      tar.add_tree(c.dir + "/upper", "");
      tar.finish();
    }
    if (::lseek(tmp.get(), 0, SEEK_SET) != 0) throw_errno("commit: cannot rewind the layer");
    diff_id = store.add_layer_from_tar(tmp.get());
  }
  diff_ids.push_back(diff_id);

  std::string now = now_rfc3339_nano();
  nlohmann::json history = parent.contains("history") && parent["history"].is_array() ? parent["history"] : nlohmann::json::array();
  nlohmann::json entry = {{"created", now}};
  if (!o.author.empty()) entry["author"] = o.author;
  if (!o.message.empty()) entry["comment"] = o.message;
  history.push_back(entry);
  nlohmann::json config = {
      {"architecture", parent.value("architecture", "amd64")},
      {"os", parent.value("os", "linux")},
      {"created", now},
      {"config", container_config},
      {"container", c.id},
      {"history", history},
  };
  if (!o.author.empty()) config["author"] = o.author;
  if (!o.message.empty()) config["comment"] = o.message;
  return store.create_image(config, diff_ids, ref);
}

}  // namespace

static void register_commit_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = add_command(app, "commit", "Create a new image from a container's changes");
  auto o = std::make_shared<CommitOptions>();
  cmd->add_option("CONTAINER", o->container, "Container")->required();
  cmd->add_option("REPOSITORY[:TAG]", o->reference, "Name for the image");
  cmd->add_option("-m,--message", o->message, "Commit message");
  cmd->add_option("-a,--author", o->author, "Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")");
  cmd->add_option("-c,--change", o->changes, "Apply Dockerfile instruction to the created image")->allow_extra_args(false);
  // -p and --pause=false as docker's (a bool flag that defaults to true).
  cmd->add_flag("-p,--pause", o->pause, "Pause container during commit (default true)");
  cmd->callback([&global, o] {
    std::string id;
    try {
      id = commit(global, *o);
    } catch (const Error& e) {
      if (e.exit_code() == 1) throw Error(e.what(), 0, 125);
      throw;
    }
    std::cout << id << "\n";
  });
}

BERTH_REGISTER_COMMANDS(205, register_commit_command, "commit");

}  // namespace berth::cli
