// Internal: decoding the located tree into the typed model through
// per-struct field tables, and encoding the model back to JSON with the same
// tables (so the set of keys berth knows has one source of truth).
#pragma once

#include <string>
#include <vector>

#include "spec/model.h"
#include "spec/node.h"

namespace berth::spec {

struct DecodeContext {
  std::vector<std::string> errors;
  std::vector<Warning>* warnings = nullptr;
  std::string path;  // "services.web.ports[0]" — prefixes messages

  void error(const Location& loc, const std::string& message);
  void warn(const Location& loc, const std::string& message);
};

// RAII: appends to ctx.path for a nested key and restores it.
class PathScope {
 public:
  PathScope(DecodeContext& ctx, const std::string& key);
  PathScope(DecodeContext& ctx, std::size_t index);
  ~PathScope() { ctx_.path.resize(saved_); }
  PathScope(const PathScope&) = delete;
  PathScope& operator=(const PathScope&) = delete;

 private:
  DecodeContext& ctx_;
  std::size_t saved_;
};

void decode(const Node& node, Service& out, DecodeContext& ctx);
void decode(const Node& node, Network& out, DecodeContext& ctx);
void decode(const Node& node, Volume& out, DecodeContext& ctx);
void decode_config(const Node& node, FileObject& out, DecodeContext& ctx);
void decode_secret(const Node& node, FileObject& out, DecodeContext& ctx);
void decode(const Node& node, Model& out, DecodeContext& ctx);

Json encode(const Service& s);
Json encode(const Network& n);
Json encode(const Volume& v);
Json encode_config(const FileObject& c);
Json encode_secret(const FileObject& s);
Json encode(const Model& m);

// Untyped conversion for x-* extensions: plain scalars become bool/number/null.
Json node_to_json(const Node& node);

// Shell-like word splitting for string commands ("sh -c 'echo hi'").
// Throws berth::Error(where + ": ...") on an unterminated quote.
std::vector<std::string> shell_split(const std::string& text, const std::string& where);

// Syntax helpers, exposed for unit tests. Return false on bad syntax.
bool parse_duration(const std::string& text, Duration& out);
bool parse_bytes(const std::string& text, Bytes& out);

// Levenshtein distance, for did-you-mean hints.
std::size_t edit_distance(const std::string& a, const std::string& b);

std::vector<std::string> known_keys_at(const std::string& where);

}  // namespace berth::spec
