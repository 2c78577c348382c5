#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "base/fs.h"
#include "runtime/logfile.h"
#include "tests/support/run.h"

namespace berth::runtime {
namespace {

std::vector<nlohmann::json> lines_of(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::string text;
  if (!read_file_if_exists(path, text)) return out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(nlohmann::json::parse(l));
  return out;
}

TEST(RuntimeLogfile, TimestampIsRfc3339NanoUtc) {
  std::string t = rfc3339nano_now();
  ASSERT_GE(t.size(), 20u);
  EXPECT_EQ(t[4], '-');
  EXPECT_EQ(t[10], 'T');
  EXPECT_EQ(t.back(), 'Z');
  if (t.size() > 20) {
    EXPECT_EQ(t[19], '.');
    EXPECT_NE(t[t.size() - 2], '0') << "trailing zeros are trimmed, as Go does";
  }
}

TEST(RuntimeLogfile, SplitsLinesAcrossWrites) {
  test::TempDir tmp;
  std::string path = tmp.path() + "/c-json.log";
  {
    JsonLogWriter w(path, -1, 1);
    w.write("stdout", "hel", 3);
    w.write("stderr", "oops\n", 5);
    w.write("stdout", "lo\nwor", 6);
    std::string rest = "ld\n\"quoted\"\tand \\ back\n";
    w.write("stdout", rest.data(), rest.size());
    w.write("stdout", "tail", 4);
    w.flush("stdout");
  }
  auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[0]["stream"], "stderr");
  EXPECT_EQ(lines[0]["log"], "oops\n");
  EXPECT_EQ(lines[1]["log"], "hello\n");
  EXPECT_EQ(lines[2]["log"], "world\n");
  EXPECT_EQ(lines[3]["log"], "\"quoted\"\tand \\ back\n");
  EXPECT_EQ(lines[4]["log"], "tail");
  auto entries = read_json_log(path, 1);
  ASSERT_EQ(entries.size(), 5u);
  EXPECT_EQ(entries[1].log, "hello\n");
  EXPECT_EQ(entries[1].stream, "stdout");
}

TEST(RuntimeLogfile, LongLinesAreSplitAt16K) {
  test::TempDir tmp;
  std::string path = tmp.path() + "/c-json.log";
  std::string big(40000, 'x');
  big += "\n";
  {
    JsonLogWriter w(path, -1, 1);
    w.write("stdout", big.data(), big.size());
  }
  auto lines = lines_of(path);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[0]["log"].get<std::string>().size(), 16384u);
  EXPECT_EQ(lines[2]["log"].get<std::string>().back(), '\n');
}

TEST(RuntimeLogfile, RotatesKeepingMaxFiles) {
  test::TempDir tmp;
  std::string path = tmp.path() + "/c-json.log";
  {
    JsonLogWriter w(path, 1000, 3);
    for (int i = 0; i < 200; ++i) {
      std::string l = "line " + std::to_string(i) + "\n";
      w.write("stdout", l.data(), l.size());
    }
  }
  EXPECT_TRUE(path_exists(path + ".1"));
  EXPECT_TRUE(path_exists(path + ".2"));
  EXPECT_FALSE(path_exists(path + ".3"));
  for (auto p : {path, path + ".1", path + ".2"}) EXPECT_LE(read_file(p).size(), 1000u);
  auto entries = read_json_log(path, 3);
  ASSERT_FALSE(entries.empty());
  EXPECT_EQ(entries.back().log, "line 199\n");
  // Oldest first and contiguous.
  int first = std::stoi(entries.front().log.substr(5));
  for (size_t i = 0; i < entries.size(); ++i) EXPECT_EQ(entries[i].log, "line " + std::to_string(first + i) + "\n");
}

TEST(RuntimeLogfile, OneFileIsTruncated) {
  test::TempDir tmp;
  std::string path = tmp.path() + "/c-json.log";
  JsonLogWriter w(path, 500, 1);
  for (int i = 0; i < 100; ++i) w.write("stdout", "0123456789\n", 11);
  EXPECT_LE(read_file(path).size(), 500u);
  EXPECT_FALSE(path_exists(path + ".1"));
}

}  // namespace
}  // namespace berth::runtime
