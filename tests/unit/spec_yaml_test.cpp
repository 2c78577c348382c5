// The located YAML tree: locations, merge keys, and the guards against
// hostile documents (alias bombs, deep nesting).
#include <gtest/gtest.h>

#include <chrono>

#include "base/error.h"
#include "spec/node.h"

using berth::spec::Node;
using berth::spec::parse_yaml;

namespace {

std::string error_of(const std::string& yaml) {
  try {
    parse_yaml(yaml, "f.yaml");
  } catch (const berth::Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(SpecYaml, NodesCarryOneBasedLineAndColumn) {
  Node root = parse_yaml("services:\n  web:\n    image: nginx\n", "f.yaml");
  const Node* image = root.find("services")->find("web")->find("image");
  ASSERT_NE(image, nullptr);
  EXPECT_EQ(image->scalar, "nginx");
  EXPECT_EQ(image->loc.str(), "f.yaml:3:12");
  EXPECT_EQ(root.find("services")->find("web")->entries[0].key_loc.str(), "f.yaml:3:5");
}

TEST(SpecYaml, PlainAndQuotedScalarsAreDistinguished) {
  Node root = parse_yaml("a: 1\nb: \"1\"\nc: '1'\n", "f.yaml");
  EXPECT_TRUE(root.find("a")->plain);
  EXPECT_FALSE(root.find("b")->plain);
  EXPECT_FALSE(root.find("c")->plain);
}

TEST(SpecYaml, MergeKeyExplicitKeysWin) {
  Node root = parse_yaml("base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n", "f.yaml");
  const Node* use = root.find("use");
  EXPECT_EQ(use->find("x")->scalar, "1");
  EXPECT_EQ(use->find("y")->scalar, "3");
  EXPECT_EQ(use->find("<<"), nullptr);
}

TEST(SpecYaml, MergeKeyListFirstMappingWins) {
  Node root = parse_yaml("a: &a {k: from-a}\nb: &b {k: from-b, only: b}\nuse:\n  <<: [*a, *b]\n", "f.yaml");
  EXPECT_EQ(root.find("use")->find("k")->scalar, "from-a");
  EXPECT_EQ(root.find("use")->find("only")->scalar, "b");
}

TEST(SpecYaml, MergeKeyOfAScalarIsALocatedError) {
  EXPECT_EQ(error_of("a:\n  <<: 3\n"), "f.yaml:2:7: merge key \"<<\" expects a mapping or a sequence of mappings, got a scalar");
}

TEST(SpecYaml, DuplicateKeysAreRejected) {
  EXPECT_EQ(error_of("a: 1\nb: 2\na: 3\n"), "f.yaml:3:1: mapping key \"a\" is defined more than once");
}

TEST(SpecYaml, SyntaxErrorsAreLocated) {
  std::string e = error_of("services:\n  web: [unclosed\n");
  EXPECT_EQ(e.rfind("f.yaml:", 0), 0u) << e;
  EXPECT_NE(e.find("invalid YAML"), std::string::npos) << e;
}

TEST(SpecYaml, ExplicitTagsAreKept) {
  Node root = parse_yaml("a: !reset []\nb: !override [1]\n", "f.yaml");
  EXPECT_EQ(root.find("a")->tag, "!reset");
  EXPECT_EQ(root.find("b")->tag, "!override");
}

TEST(SpecYaml, BillionLaughsFailsFastWithALocatedError) {
  std::string doc = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i <= 9; ++i)
    doc += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [" + std::string(10, ' ') + "]\n";
  // Build it properly: each level has ten aliases of the previous one.
  doc = "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int i = 1; i <= 9; ++i) {
    std::string prev = "*a" + std::to_string(i - 1);
    doc += "a" + std::to_string(i) + ": &a" + std::to_string(i) + " [";
    for (int k = 0; k < 10; ++k) doc += (k ? ", " : "") + prev;
    doc += "]\n";
  }
  auto start = std::chrono::steady_clock::now();
  std::string e = error_of(doc);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_NE(e.find("alias bomb"), std::string::npos) << e;
  EXPECT_EQ(e.rfind("f.yaml:", 0), 0u) << e;
  EXPECT_LT(elapsed, std::chrono::seconds(1));
}

TEST(SpecYaml, DeepNestingFailsFastWithALocatedError) {
  std::string doc = "a: " + std::string(5000, '[') + std::string(5000, ']') + "\n";
  auto start = std::chrono::steady_clock::now();
  std::string e = error_of(doc);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(e.rfind("f.yaml:", 0), 0u) << e;
  EXPECT_TRUE(e.find("deep") != std::string::npos || e.find("nesting") != std::string::npos) << e;
  EXPECT_LT(elapsed, std::chrono::seconds(1));
}

TEST(SpecYaml, NestingJustUnderTheLimitIsFine) {
  std::string doc = "a: " + std::string(100, '[') + std::string(100, ']') + "\n";
  EXPECT_NO_THROW(parse_yaml(doc, "f.yaml"));
}

TEST(SpecYaml, EmptyDocumentIsAnEmptyMapping) {
  Node root = parse_yaml("", "f.yaml");
  EXPECT_TRUE(root.is_mapping());
  EXPECT_TRUE(root.entries.empty());
}
