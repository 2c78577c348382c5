// Compose variable interpolation: $VAR ${VAR} ${VAR:-d} ${VAR-d} ${VAR:?e}
// ${VAR?e} ${VAR:+a} ${VAR+a}, nested inside defaults, and $$ for a literal $.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>

#include "spec/node.h"

namespace berth::spec {

using Environment = std::map<std::string, std::string, std::less<>>;

struct InterpolationContext {
  const Environment& env;
  // Variables that were referenced without a value and without a default
  // (compose warns and substitutes an empty string).
  std::map<std::string, std::string>* missing = nullptr;  // name -> first "file:line:col"
};

// Expands one string. `where` locates errors ("file:line:col").
// Throws berth::Error "where: ..." on bad syntax or a failed `?` requirement.
std::string interpolate(std::string_view text, const InterpolationContext& ctx, const std::string& where);

// Expands every scalar value (not keys) of the tree in place.
void interpolate_tree(Node& node, const InterpolationContext& ctx);

// Parses a dotenv file's text (KEY=VALUE lines, `export`, comments, single and
// double quotes); values may reference earlier keys and `lookup`.
// Returns the keys in file order applied onto `into` (later wins).
void parse_dotenv(std::string_view text, const std::string& file, const Environment& lookup, Environment& into);

// An env_file with `format: raw`: KEY=VALUE lines taken literally (no quotes,
// escapes or interpolation); blank lines and `#` comments are skipped, and a
// line without `=` sets KEY to the empty string.
void parse_raw_env(std::string_view text, Environment& into);

}  // namespace berth::spec
