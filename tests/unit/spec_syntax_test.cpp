// Scalar syntaxes: durations, byte sizes, shell word splitting, edit distance.
#include <gtest/gtest.h>

#include "base/error.h"
#include "spec/decode.h"

using namespace berth::spec;

namespace {
std::int64_t ns(const std::string& s) {
  Duration d;
  EXPECT_TRUE(parse_duration(s, d)) << s;
  return d.nanoseconds;
}
std::int64_t bytes(const std::string& s) {
  Bytes b;
  EXPECT_TRUE(parse_bytes(s, b)) << s;
  return b.value;
}
}  // namespace

TEST(SpecSyntax, Durations) {
  EXPECT_EQ(ns("1m30s"), 90'000'000'000);
  EXPECT_EQ(ns("1h"), 3'600'000'000'000);
  EXPECT_EQ(ns("500ms"), 500'000'000);
  EXPECT_EQ(ns("1.5s"), 1'500'000'000);
  EXPECT_EQ(ns("10us"), 10'000);
  EXPECT_EQ(ns("7ns"), 7);
  EXPECT_EQ(ns("30"), 30'000'000'000) << "a bare number is seconds";
  Duration d;
  for (const char* bad : {"", "10 s", "s", "1x", "-5s", "1m-", "99999999999999999999"})
    EXPECT_FALSE(parse_duration(bad, d)) << bad;
}

TEST(SpecSyntax, DurationsPrintTheGoWay) {
  EXPECT_EQ(Duration{90'000'000'000}.str(), "1m30s");
  EXPECT_EQ(Duration{3'600'000'000'000}.str(), "1h0m0s");
  EXPECT_EQ(Duration{500'000'000}.str(), "500ms");
  EXPECT_EQ(Duration{1'500'000'000}.str(), "1.5s");
  EXPECT_EQ(Duration{0}.str(), "0s");
  EXPECT_EQ(Duration{7}.str(), "7ns");
}

TEST(SpecSyntax, ByteSizes) {
  EXPECT_EQ(bytes("1024"), 1024);
  EXPECT_EQ(bytes("512m"), 512ll << 20);
  EXPECT_EQ(bytes("512M"), 512ll << 20);
  EXPECT_EQ(bytes("1g"), 1ll << 30);
  EXPECT_EQ(bytes("1gb"), 1ll << 30);
  EXPECT_EQ(bytes("2k"), 2048);
  EXPECT_EQ(bytes("1.5g"), 3ll << 29);
  EXPECT_EQ(bytes("100b"), 100);
  EXPECT_EQ(bytes("-1"), -1);
  Bytes b;
  for (const char* bad : {"", "m", "12zb", "-2", "1e400g"}) EXPECT_FALSE(parse_bytes(bad, b)) << bad;
}

TEST(SpecSyntax, ShellSplit) {
  EXPECT_EQ(shell_split("a b  c", "x"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(shell_split("sh -c 'echo $HOME; ls'", "x"), (std::vector<std::string>{"sh", "-c", "echo $HOME; ls"}));
  EXPECT_EQ(shell_split(R"(say "a \"quoted\" word" x\ y)", "x"),
            (std::vector<std::string>{"say", "a \"quoted\" word", "x y"}));
  EXPECT_EQ(shell_split("''", "x"), (std::vector<std::string>{""}));
  EXPECT_THROW(shell_split("echo 'open", "x"), berth::Error);
  EXPECT_THROW(shell_split("echo \"open", "x"), berth::Error);
}

TEST(SpecSyntax, EditDistanceCountsTranspositionsOnce) {
  EXPECT_EQ(edit_distance("image", "image"), 0u);
  EXPECT_EQ(edit_distance("imgae", "image"), 1u);
  EXPECT_EQ(edit_distance("imag", "image"), 1u);
  EXPECT_EQ(edit_distance("port", "ports"), 1u);
  EXPECT_EQ(edit_distance("abc", "xyz"), 3u);
}
