// Test support: run the built berth binary (or any program) and capture
// its exit code, stdout and stderr; make per-test temporary roots.
#pragma once

#include <string>
#include <vector>

namespace berth::test {

struct Result {
  int exit_code = -1;  // 128+n when killed by signal n
  std::string out;
  std::string err;
};

// Path of the berth binary under test (set by CMake).
const std::string& berth_binary();

// `s` without trailing newlines and spaces (a command's one-line output).
std::string trim(std::string s);
// The lines of `text` that contain `needle`, each with its newline.
std::string lines_of(const std::string& text, const std::string& needle);
// The file's contents, "" when it does not exist (yet).
std::string slurp(const std::string& path);

// Runs argv[0] with argv, feeding `input` on stdin; env entries "K=V" are
// added to (or replace in) the current environment.
Result run(const std::vector<std::string>& argv, const std::string& input = {},
           const std::vector<std::string>& env = {}, const std::string& cwd = {});

// Runs berth with the given arguments.
Result run_berth(const std::vector<std::string>& args, const std::string& input = {},
             const std::vector<std::string>& env = {}, const std::string& cwd = {});

// Whether tests can make cgroups of the v1 pids controller (root, and it is mounted).
bool have_pids_cgroup();
// Runs berth with the given arguments alone in a new v1 pids cgroup that
// allows max tasks (berth's own thread included); removes the cgroup after.
Result run_berth_with_pids_max(int max, const std::vector<std::string>& args);

// A fresh directory under the build tree's test scratch area, removed at scope exit.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // Writes a file relative to the directory (parents created) and returns its path.
  std::string write(const std::string& rel, const std::string& content) const;

 private:
  std::string path_;
};

// The source tree's tests/ directory (set by CMake), for golden files and corpora.
std::string tests_dir();

}  // namespace berth::test
