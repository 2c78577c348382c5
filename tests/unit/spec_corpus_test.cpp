// Golden files: every project under tests/spec-corpus/ loads and renders
// exactly as its expected.yaml; every file under tests/spec-corpus/bad/
// fails with the located error its first line announces.
// BERTH_UPDATE_GOLDEN=1 rewrites the expected files instead of comparing.
#include <gtest/gtest.h>

#include <dirent.h>

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "base/error.h"
#include "base/fs.h"
#include "spec/spec.h"
#include "tests/support/golden.h"

using namespace berth::spec;

namespace {

std::string corpus_dir() { return std::string(BERTH_TESTS_DIR) + "/spec-corpus"; }

std::vector<std::string> list(const std::string& dir, bool directories) {
  std::vector<std::string> out;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name[0] == '.') continue;
      bool is_dir = berth::is_directory(dir + "/" + name);
      if (directories && is_dir && name != "bad") out.push_back(name);
      if (!directories && !is_dir && name.size() > 5 && name.substr(name.size() - 5) == ".yaml")
        out.push_back(name.substr(0, name.size() - 5));
    }
    closedir(d);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (std::size_t pos = 0; (pos = s.find(from, pos)) != std::string::npos; pos += to.size()) s.replace(pos, from.size(), to);
  return s;
}

LoadOptions case_options(const std::string& dir) {
  LoadOptions o;
  o.working_directory = dir;
  std::string text;
  if (berth::read_file_if_exists(dir + "/options", text)) {
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
      std::size_t eq = line.find('=');
      if (line.empty() || eq == std::string::npos) continue;
      std::string key = line.substr(0, eq), value = line.substr(eq + 1);
      if (key == "file") o.files.push_back(value);
      else if (key == "profile") o.profiles.push_back(value);
      else if (key == "env_file") o.env_files.push_back(value);
      else if (key == "project_name") o.project_name = value;
      else if (key == "env") {
        std::size_t e = value.find('=');
        o.environment[value.substr(0, e)] = value.substr(e + 1);
      } else ADD_FAILURE() << dir << "/options: unknown key " << key;
    }
  }
  return o;
}

class SpecCorpus : public ::testing::TestWithParam<std::string> {};
class SpecCorpusBad : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(SpecCorpus, MatchesGoldenOutput) {
  std::string dir = corpus_dir() + "/" + GetParam();
  Project p;
  try {
    p = load_project(case_options(dir));
  } catch (const berth::Error& e) {
    FAIL() << e.what();
  }
  berth::test::compare_or_update_golden(dir + "/expected.yaml", replace_all(to_yaml(p), dir, "${CASE_DIR}"));
  std::string warnings;
  for (auto& w : p.warnings) warnings += replace_all(w.str(), dir, "${CASE_DIR}") + "\n";
  berth::test::compare_or_update_golden(dir + "/expected.warnings", warnings);
  // Rendering is a fixed point: loading the output again gives the same project.
  {
    LoadOptions again = case_options(dir);
    again.files.clear();
    again.env_files.clear();
    again.project_name = p.name;
    Project q = load_project_from_string(to_yaml(p), again, dir + "/rendered.yaml");
    EXPECT_EQ(to_yaml(q), to_yaml(p)) << "re-loading the rendered output changed it";
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, SpecCorpus, ::testing::ValuesIn(list(corpus_dir(), true)));

TEST_P(SpecCorpusBad, FailsWithTheAnnouncedLocatedError) {
  std::string path = corpus_dir() + "/bad/" + GetParam() + ".yaml";
  std::string text = berth::read_file(path);
  const std::string marker = "# expect: ";
  ASSERT_EQ(text.rfind(marker, 0), 0u) << path << " must start with \"" << marker << "\"";
  std::string expected = text.substr(marker.size(), text.find('\n') - marker.size());
  LoadOptions o;
  o.working_directory = corpus_dir() + "/bad";
  o.files = {path};
  try {
    load_project(o);
    FAIL() << path << " loaded without error";
  } catch (const berth::Error& e) {
    std::string message = e.what();
    std::string first_line = message.substr(0, message.find('\n'));
    if (expected.find(':') != std::string::npos && std::isdigit(static_cast<unsigned char>(expected[0])))
      EXPECT_EQ(first_line.rfind(path + ":" + expected, 0), 0u) << first_line;
    else
      EXPECT_NE(first_line.find(expected), std::string::npos) << first_line;
  }
}

INSTANTIATE_TEST_SUITE_P(Cases, SpecCorpusBad, ::testing::ValuesIn(list(corpus_dir() + "/bad", false)));
