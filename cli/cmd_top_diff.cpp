// `berth top CONTAINER [ps OPTIONS]` and `berth diff CONTAINER`, as docker's.
//
// top: runs the host's ps with the given options (default -ef) and keeps
// the rows whose PID is one of the container's processes (those in its
// init's cgroup), under ps's own header.
// diff: the container's changes from its overlay upper dir against its
// image's layers: A (added), C (changed), D (deleted; overlay whiteouts),
// sorted by path, leaving out the mount points the runtime makes.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <iostream>
#include <map>
#include <optional>
#include <memory>
#include <set>
#include <sstream>

#include "base/error.h"
#include "base/fs.h"
#include "cli/cli.h"
#include "cli/table.h"
#include "runtime/runtime.h"

namespace berth::cli {

namespace {

runtime::Runtime runtime_for(const GlobalOptions& g) { return runtime::Runtime(runtime::Paths{g.root, g.run_root, {}}); }

// stdout of argv (looked up in PATH); throws when it cannot run or fails.
std::string capture(const std::vector<std::string>& argv) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe");
  pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    ::dup2(fds[1], 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  std::string out;
  char buf[65536];
  for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string cmd;
    for (auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    throw Error("ps failed: " + cmd + (WIFEXITED(status) && WEXITSTATUS(status) == 127 ? ": not found" : ""), 0, 1);
  }
  return out;
}

// The processes in the cgroup of the container's init.
std::set<std::string> container_pids(const runtime::Container& c) {
  std::set<std::string> out;
  std::string init_cg;
  if (c.state.pid <= 0 ||
      !read_file_if_exists("/proc/" + std::to_string(c.state.pid) + "/cgroup", init_cg) || init_cg.empty())
    return out;
  if (DIR* d = ::opendir("/proc")) {
    while (auto* e = ::readdir(d)) {
      if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
      std::string cg;
      try {
        if (read_file_if_exists(std::string("/proc/") + e->d_name + "/cgroup", cg) && cg == init_cg)
          out.insert(e->d_name);
      } catch (const Error&) {
      }
    }
    ::closedir(d);
  }
  return out;
}

std::vector<std::string> fields(const std::string& line, size_t max) {
  std::vector<std::string> out;
  std::istringstream in(line);
  std::string w;
  while (out.size() + 1 < max && in >> w) out.push_back(w);
  std::string rest;
  std::getline(in, rest);
  auto b = rest.find_first_not_of(" \t");
  if (b != std::string::npos) out.push_back(rest.substr(b));
  return out;
}

void top(const GlobalOptions& g, const std::string& ref, std::vector<std::string> ps_args) {
  auto rt = runtime_for(g);
  runtime::Container c = rt.get(ref);
  if (c.state.status != runtime::Status::Running && c.state.status != runtime::Status::Paused)
    throw Error("Container " + c.id + " is not running", 0, 1);
  if (ps_args.empty()) ps_args = {"-ef"};
  ps_args.insert(ps_args.begin(), "ps");
  std::string out = capture(ps_args);
  auto pids = container_pids(c);
  std::istringstream in(out);
  std::string header_line;
  std::getline(in, header_line);
  std::vector<std::string> header;
  {
    std::istringstream h(header_line);
    for (std::string w; h >> w;) header.push_back(w);
  }
  auto pid_col = std::find(header.begin(), header.end(), "PID");
  if (pid_col == header.end()) throw Error("Couldn't find PID field in ps output", 0, 1);
  size_t pid_index = static_cast<size_t>(pid_col - header.begin());
  std::vector<std::vector<std::string>> rows{header};
  for (std::string line; std::getline(in, line);) {
    auto f = fields(line, header.size());
    if (f.size() > pid_index && pids.count(f[pid_index])) rows.push_back(std::move(f));
  }
  print_table(rows, 20);  // docker top: min width 20
}

// --- diff

bool is_whiteout(const struct stat& st) { return S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0); }

bool is_opaque(const std::string& path) {
  char v[2] = {};
  for (const char* name : {"trusted.overlay.opaque", "user.overlay.opaque"})
    if (::lgetxattr(path.c_str(), name, v, sizeof v) == 1 && v[0] == 'y') return true;
  return false;
}

// What the image has at rel (the first layer that has it), if anything.
std::optional<struct stat> in_lower(const std::vector<std::string>& lowers, const std::string& rel) {
  for (auto& l : lowers) {
    struct stat st {};
    if (::lstat((l + "/" + rel).c_str(), &st) == 0) return is_whiteout(st) ? std::nullopt : std::optional(st);
    // An opaque directory or a whiteout of a parent hides the rest; good
    // enough for the layers berth unpacks, which have neither.
  }
  return std::nullopt;
}

// Mount points the runtime creates in the upper dir (docker keeps them in
// an "init" layer, so docker diff never shows them).
const std::set<std::string> kMountPoints = {"/etc/hosts", "/etc/hostname", "/etc/resolv.conf", "/proc", "/sys",
                                            "/dev"};

struct Differ {
  const std::vector<std::string>& lowers;
  std::map<std::string, char> changes;

  // Returns whether something under dir (rel) was reported.
  bool walk(const std::string& dir, const std::string& rel) {
    std::vector<std::string> names;
    {
      std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
      if (!d) throw_errno("cannot read " + dir);
      while (dirent* e = ::readdir(d.get()))
        if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, "..")) names.push_back(e->d_name);
    }
    bool any = false;
    for (auto& name : names) {
      std::string path = dir + "/" + name, r = rel + "/" + name;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0) continue;
      if (is_whiteout(st)) {
        changes[r] = 'D';
        any = true;
        continue;
      }
      auto lower = in_lower(lowers, r.substr(1));
      bool inside = false;
      if (S_ISDIR(st.st_mode)) inside = walk(path, r);
      if (kMountPoints.count(r) && (!S_ISDIR(st.st_mode) || !inside)) {
        // An empty mount point file, or a mount point dir with nothing of its own.
        if (!S_ISREG(st.st_mode) || st.st_size == 0 || lower) continue;
      }
      if (!lower) {
        changes[r] = 'A';
      } else if (S_ISDIR(st.st_mode) && S_ISDIR(lower->st_mode)) {
        // A directory is only copied up because of what is under it: a
        // change of its own is its mode or owner (its times follow its
        // children), or being made opaque.
        if (inside || is_opaque(path) || (st.st_mode != lower->st_mode) || st.st_uid != lower->st_uid ||
            st.st_gid != lower->st_gid)
          changes[r] = 'C';
        else
          continue;
      } else {
        changes[r] = 'C';
      }
      any = true;
    }
    return any;
  }
};

void diff(const GlobalOptions& g, const std::string& ref) {
  auto rt = runtime_for(g);
  runtime::Container c = rt.get(ref);
  Differ d{c.spec.lower_dirs, {}};
  if (is_directory(c.dir + "/upper")) d.walk(c.dir + "/upper", "");
  for (auto& [path, kind] : d.changes) std::cout << kind << " " << path << "\n";
}

void register_top_diff(CLI::App& app, GlobalOptions& global) {
  auto* t = add_command(app, "top", "Display the running processes of a container");
  t->prefix_command();
  t->callback([&global, t] {
    auto rest = t->remaining();
    if (rest.empty()) throw UsageError("\"top\" requires at least 1 argument: CONTAINER [ps OPTIONS]");
    top(global, rest[0], std::vector<std::string>(rest.begin() + 1, rest.end()));
  });

  auto diff_ref = std::make_shared<std::string>();
  auto* df = add_command(app, "diff", "Inspect changes to files or directories on a container's filesystem");
  df->add_option("CONTAINER", *diff_ref, "Container")->required();
  df->callback([&global, diff_ref] { diff(global, *diff_ref); });
}

}  // namespace

BERTH_REGISTER_COMMANDS(460, register_top_diff, "top", "diff");

}  // namespace berth::cli
