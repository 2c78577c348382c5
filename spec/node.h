// The located value tree: what a compose file is between YAML parsing and
// decoding into the typed model. Every node remembers the file, line and
// column it came from so that every later stage (interpolation, merging,
// decoding, validation) can report `file:line:col: message`.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace berth::spec {

struct Location {
  std::shared_ptr<const std::string> file;  // shared: thousands of nodes, one name
  int line = 0;                             // 1-based; 0 = unknown
  int col = 0;                              // 1-based
  std::string str() const;                  // "file:line:col" (or just "file")
};

struct Node {
  enum class Kind { Null, Scalar, Sequence, Mapping };
  struct Entry;

  Kind kind = Kind::Null;
  // Scalar text (after interpolation, once that ran).
  std::string scalar;
  // True for plain (unquoted, untagged) scalars: only those may be read as
  // bool/number/null, as in YAML's core schema.
  bool plain = true;
  // The YAML tag when one was given explicitly ("!reset", "!override", ...).
  std::string tag;
  std::vector<Node> items;     // Sequence
  std::vector<Entry> entries;  // Mapping, in document order
  Location loc;

  bool is_null() const { return kind == Kind::Null; }
  bool is_scalar() const { return kind == Kind::Scalar; }
  bool is_sequence() const { return kind == Kind::Sequence; }
  bool is_mapping() const { return kind == Kind::Mapping; }

  // Mapping access (linear; compose mappings are small, and the only big one,
  // `services`, is indexed by the loader where it matters).
  const Node* find(std::string_view key) const;
  Node* find(std::string_view key);
  // Inserts or replaces; returns the value node.
  Node& set(std::string key, Node value, Location key_loc = {});
  bool erase(std::string_view key);

  static Node make_scalar(std::string text, Location loc = {}, bool plain = false);
  static Node make_mapping(Location loc = {});
  static Node make_sequence(Location loc = {});
  // A short description of the kind for error messages ("a mapping", ...).
  std::string kind_name() const;
};

struct Node::Entry {
  std::string key;
  Location key_loc;
  Node value;
};

// Limits that protect the loader from hostile input (alias bombs, deep nesting).
struct ParseLimits {
  std::size_t max_depth = 256;
  // Node budget for alias expansion: max(min_nodes, nodes_per_byte * input size).
  std::size_t min_nodes = 200000;
  std::size_t nodes_per_byte = 16;
};

// Parses one YAML document into a located tree, expanding aliases (within the
// budget) and resolving merge keys (`<<`). Throws berth::Error "file:line:col: ...".
Node parse_yaml(std::string_view text, const std::string& file, const ParseLimits& limits = {});

}  // namespace berth::spec
