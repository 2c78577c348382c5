#include "spec/interpolate.h"

#include <cctype>

#include "base/error.h"

namespace berth::spec {

namespace {

bool is_name_start(char c) { return std::isalpha(static_cast<unsigned char>(c)) || c == '_'; }
bool is_name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

class Expander {
 public:
  Expander(const InterpolationContext& ctx, const std::string& where, std::string_view whole)
      : ctx_(ctx), where_(where), whole_(whole) {}

  std::string expand(std::string_view s, int depth) {
    if (depth > 32) fail("interpolation nested too deeply");
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
      char c = s[i];
      if (c != '$') {
        out += c;
        ++i;
        continue;
      }
      if (i + 1 >= s.size()) fail("invalid interpolation format: a lone \"$\" at the end (write \"$$\" for a literal $)");
      char next = s[i + 1];
      if (next == '$') {
        out += '$';
        i += 2;
      } else if (next == '{') {
        std::size_t close = matching_brace(s, i + 2);
        out += braced(s.substr(i + 2, close - (i + 2)), depth);
        i = close + 1;
      } else if (is_name_start(next)) {
        std::size_t end = i + 1;
        while (end < s.size() && is_name_char(s[end])) ++end;
        out += lookup_or_empty(s.substr(i + 1, end - i - 1));
        i = end;
      } else {
        fail("invalid interpolation format: \"$" + std::string(1, next) + "\" (write \"$$\" for a literal $)");
      }
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& message) const {
    throw Error(where_ + ": " + message + " in \"" + std::string(whole_) + "\"");
  }

  // Index of the '}' closing a "${" whose body starts at `from`, counting nested "${".
  std::size_t matching_brace(std::string_view s, std::size_t from) const {
    int depth = 1;
    for (std::size_t i = from; i < s.size(); ++i) {
      if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '$') {
        ++i;
      } else if (s[i] == '$' && i + 1 < s.size() && s[i + 1] == '{') {
        ++depth;
        ++i;
      } else if (s[i] == '}') {
        if (--depth == 0) return i;
      }
    }
    fail("invalid interpolation format: missing \"}\"");
  }

  std::string lookup_or_empty(std::string_view name) {
    auto it = ctx_.env.find(name);
    if (it != ctx_.env.end()) return it->second;
    if (ctx_.missing) ctx_.missing->emplace(std::string(name), where_);
    return {};
  }

  std::string braced(std::string_view body, int depth) {
    std::size_t n = 0;
    while (n < body.size() && is_name_char(body[n])) ++n;
    std::string_view name = body.substr(0, n);
    if (name.empty() || !is_name_start(name[0])) fail("invalid interpolation format: bad variable name");
    if (n == body.size()) return lookup_or_empty(name);
    std::string_view rest = body.substr(n);
    bool colon = rest[0] == ':';
    if (colon) rest.remove_prefix(1);
    if (rest.empty() || (rest[0] != '-' && rest[0] != '?' && rest[0] != '+'))
      fail("invalid interpolation format: unexpected \"" + std::string(body.substr(n)) + "\" after ${" +
           std::string(name));
    char op = rest[0];
    std::string_view word = rest.substr(1);
    auto it = ctx_.env.find(name);
    bool set = it != ctx_.env.end();
    bool usable = set && (!colon || !it->second.empty());
    switch (op) {
      case '-':
        return usable ? it->second : expand(word, depth + 1);
      case '+':
        return usable ? expand(word, depth + 1) : std::string();
      default: {  // '?'
        if (usable) return it->second;
        std::string reason = expand(word, depth + 1);
        fail("required variable " + std::string(name) + " is missing a value" +
             (reason.empty() ? std::string() : ": " + reason));
      }
    }
  }

  const InterpolationContext& ctx_;
  const std::string& where_;
  std::string_view whole_;
};

}  // namespace

std::string interpolate(std::string_view text, const InterpolationContext& ctx, const std::string& where) {
  if (text.find('$') == std::string_view::npos) return std::string(text);
  return Expander(ctx, where, text).expand(text, 0);
}

void interpolate_tree(Node& node, const InterpolationContext& ctx) {
  switch (node.kind) {
    case Node::Kind::Scalar:
      if (node.scalar.find('$') != std::string::npos) node.scalar = interpolate(node.scalar, ctx, node.loc.str());
      break;
    case Node::Kind::Sequence:
      for (auto& item : node.items) interpolate_tree(item, ctx);
      break;
    case Node::Kind::Mapping:
      for (auto& entry : node.entries) interpolate_tree(entry.value, ctx);
      break;
    case Node::Kind::Null:
      break;
  }
}

void parse_dotenv(std::string_view text, const std::string& file, const Environment& lookup, Environment& into) {
  int line_no = 0;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string_view::npos) eol = text.size();
    std::string_view line = text.substr(pos, eol - pos);
    std::size_t line_start = pos;
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::size_t i = 0;
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (i == line.size() || line[i] == '#') {
      if (eol == text.size()) break;
      continue;
    }
    std::string where = file + ":" + std::to_string(line_no) + ":" + std::to_string(i + 1);
    if (line.substr(i, 7) == "export ") i += 7;
    while (i < line.size() && line[i] == ' ') ++i;
    std::size_t key_start = i;
    while (i < line.size() && line[i] != '=' && !std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    std::string key(line.substr(key_start, i - key_start));
    while (i < line.size() && std::isspace(static_cast<unsigned char>(line[i]))) ++i;
    if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0])))
      throw Error(where + ": invalid variable name \"" + key + "\"");
    if (i == line.size()) {
      // "KEY" alone: take it from the lookup environment when present.
      if (auto it = lookup.find(key); it != lookup.end()) into[key] = it->second;
      if (eol == text.size()) break;
      continue;
    }
    if (line[i] != '=') throw Error(where + ": expected \"=\" after \"" + key + "\"");
    ++i;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    std::string value;
    // Values may reference earlier keys of this file and the lookup environment.
    Environment scope = lookup;
    for (auto& [k, v] : into) scope.emplace(k, v);
    InterpolationContext ictx{scope, nullptr};
    if (i < line.size() && (line[i] == '\'' || line[i] == '"')) {
      char quote = line[i];
      // Quoted values may span lines.
      std::string_view rest = text.substr(line_start + i + 1);
      std::size_t j = 0;
      std::string raw;
      bool closed = false;
      for (; j < rest.size(); ++j) {
        char c = rest[j];
        if (quote == '"' && c == '\\' && j + 1 < rest.size()) {
          char e = rest[++j];
          switch (e) {
            case 'n': raw += '\n'; break;
            case 't': raw += '\t'; break;
            case 'r': raw += '\r'; break;
            default: raw += e; break;
          }
          continue;
        }
        if (c == quote) {
          closed = true;
          break;
        }
        if (c == '\n') ++line_no;
        raw += c;
      }
      if (!closed) throw Error(where + ": unterminated quoted value for \"" + key + "\"");
      value = quote == '"' ? interpolate(raw, ictx, where) : raw;
      std::size_t after = line_start + i + 1 + j + 1;
      eol = text.find('\n', after);
      if (eol == std::string_view::npos) eol = text.size();
      pos = eol + 1;
    } else {
      std::string_view raw = line.substr(i);
      // An unquoted value ends at " #" (inline comment).
      if (std::size_t hash = raw.find(" #"); hash != std::string_view::npos) raw = raw.substr(0, hash);
      while (!raw.empty() && std::isspace(static_cast<unsigned char>(raw.back()))) raw.remove_suffix(1);
      value = interpolate(raw, ictx, where);
    }
    into[key] = std::move(value);
    if (eol >= text.size()) break;
  }
}

void parse_raw_env(std::string_view text, Environment& into) {
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    std::size_t start = line.find_first_not_of(" \t");
    if (start == std::string_view::npos || line[start] == '#') continue;
    line.remove_prefix(start);
    std::size_t eq = line.find('=');
    std::string key(line.substr(0, eq));
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    into[key] = eq == std::string_view::npos ? std::string() : std::string(line.substr(eq + 1));
  }
}

}  // namespace berth::spec
