#include "spec/decode.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <unordered_map>

#include "base/error.h"

namespace berth::spec {

void DecodeContext::error(const Location& loc, const std::string& message) {
  // Enough to fix a file by; more would only bury the first ones (and cost time on hostile input).
  constexpr std::size_t kMaxErrors = 50;
  if (errors.size() == kMaxErrors) errors.push_back("too many errors; stopping after " + std::to_string(kMaxErrors));
  if (errors.size() > kMaxErrors) return;
  errors.push_back(loc.str() + ": " + (path.empty() ? "" : path + ": ") + message);
}

void DecodeContext::warn(const Location& loc, const std::string& message) {
  if (warnings) warnings->push_back(Warning{loc.str(), (path.empty() ? "" : path + ": ") + message});
}

PathScope::PathScope(DecodeContext& ctx, const std::string& key) : ctx_(ctx), saved_(ctx.path.size()) {
  if (!ctx.path.empty()) ctx.path += '.';
  ctx.path += key;
}

PathScope::PathScope(DecodeContext& ctx, std::size_t index) : ctx_(ctx), saved_(ctx.path.size()) {
  ctx.path += "[" + std::to_string(index) + "]";
}

// Optimal string alignment distance: Levenshtein plus adjacent
// transpositions, so "imgae" is one edit away from "image".
std::size_t edit_distance(const std::string& a, const std::string& b) {
  const std::size_t n = a.size(), m = b.size();
  if (n > 64 || m > 64) return std::max(n, m);
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i) d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j) d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i)
    for (std::size_t j = 1; j <= m; ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[n][m];
}

// ---------------------------------------------------------------- scalars

namespace {

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool parse_int(const std::string& text, std::int64_t& out) {
  if (text.empty()) return false;
  std::size_t i = 0;
  bool negative = false;
  if (text[0] == '-' || text[0] == '+') {
    negative = text[0] == '-';
    i = 1;
  }
  if (i == text.size()) return false;
  std::int64_t value = 0;
  for (; i < text.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(text[i]))) return false;
    if (value > (INT64_MAX - 9) / 10) return false;
    value = value * 10 + (text[i] - '0');
  }
  out = negative ? -value : value;
  return true;
}

bool parse_double(const std::string& text, double& out) {
  if (text.empty()) return false;
  char* end = nullptr;
  out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && std::isfinite(out);
}

bool expect_scalar(const Node& n, DecodeContext& ctx, const char* what) {
  if (n.is_scalar()) return true;
  ctx.error(n.loc, std::string("expected ") + what + ", got " + n.kind_name());
  return false;
}

}  // namespace

bool parse_duration(const std::string& text, Duration& out) {
  if (text.empty()) return false;
  std::int64_t plain = 0;
  if (parse_int(text, plain)) {  // a bare number is seconds
    if (plain < 0 || plain > INT64_MAX / 1'000'000'000) return false;
    out.nanoseconds = plain * 1'000'000'000;
    return true;
  }
  double total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
    if (start == i) return false;
    double number = 0;
    if (!parse_double(text.substr(start, i - start), number)) return false;
    std::size_t unit_start = i;
    while (i < text.size() && !std::isdigit(static_cast<unsigned char>(text[i])) && text[i] != '.') ++i;
    std::string unit = text.substr(unit_start, i - unit_start);
    double scale;
    if (unit == "ns") scale = 1;
    else if (unit == "us" || unit == "\xC2\xB5s") scale = 1e3;
    else if (unit == "ms") scale = 1e6;
    else if (unit == "s") scale = 1e9;
    else if (unit == "m") scale = 60e9;
    else if (unit == "h") scale = 3600e9;
    else return false;
    total += number * scale;
  }
  if (total > 9.2e18) return false;
  out.nanoseconds = static_cast<std::int64_t>(std::llround(total));
  return true;
}

std::string Duration::str() const {
  // Go's time.Duration.String(), which compose prints.
  std::int64_t ns = nanoseconds;
  if (ns == 0) return "0s";
  std::string sign = ns < 0 ? "-" : "";
  std::uint64_t u = ns < 0 ? static_cast<std::uint64_t>(-ns) : static_cast<std::uint64_t>(ns);
  auto fraction = [](std::uint64_t value, std::uint64_t unit) {
    std::string s = std::to_string(value / unit);
    std::uint64_t rest = value % unit;
    if (rest) {
      std::string digits = std::to_string(rest);
      std::string frac(std::to_string(unit).size() - 1 - digits.size(), '0');
      frac += digits;
      while (!frac.empty() && frac.back() == '0') frac.pop_back();
      s += "." + frac;
    }
    return s;
  };
  if (u < 1000) return sign + std::to_string(u) + "ns";
  if (u < 1'000'000) return sign + fraction(u, 1000) + "\xC2\xB5s";
  if (u < 1'000'000'000) return sign + fraction(u, 1'000'000) + "ms";
  std::uint64_t hours = u / 3'600'000'000'000ULL;
  u %= 3'600'000'000'000ULL;
  std::uint64_t minutes = u / 60'000'000'000ULL;
  u %= 60'000'000'000ULL;
  std::string out = sign;
  if (hours) out += std::to_string(hours) + "h";
  if (hours || minutes) out += std::to_string(minutes) + "m";
  out += fraction(u, 1'000'000'000) + "s";
  return out;
}

bool parse_bytes(const std::string& text, Bytes& out) {
  std::int64_t plain = 0;
  if (parse_int(text, plain)) {
    out.value = plain;
    return plain >= -1;
  }
  std::size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  double number = 0;
  if (i == 0 || !parse_double(text.substr(0, i), number)) return false;
  std::string unit = lower(text.substr(i));
  if (!unit.empty() && unit.front() == ' ') unit.erase(0, 1);
  double scale;
  if (unit == "b" || unit.empty()) scale = 1;
  else if (unit == "k" || unit == "kb" || unit == "kib") scale = 1024.0;
  else if (unit == "m" || unit == "mb" || unit == "mib") scale = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb" || unit == "gib") scale = 1024.0 * 1024 * 1024;
  else if (unit == "t" || unit == "tb" || unit == "tib") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (unit == "p" || unit == "pb" || unit == "pib") scale = 1024.0 * 1024 * 1024 * 1024 * 1024;
  else return false;
  double total = number * scale;
  if (total > 9.2e18) return false;
  out.value = static_cast<std::int64_t>(total);
  return true;
}

std::vector<std::string> shell_split(const std::string& text, const std::string& where) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\'') {
      std::size_t end = text.find('\'', i + 1);
      if (end == std::string::npos) throw Error(where + ": unterminated single quote in \"" + text + "\"");
      word += text.substr(i + 1, end - i - 1);
      in_word = true;
      i = end;
    } else if (c == '"') {
      std::size_t j = i + 1;
      for (; j < text.size() && text[j] != '"'; ++j) {
        if (text[j] == '\\' && j + 1 < text.size() &&
            (text[j + 1] == '"' || text[j + 1] == '\\' || text[j + 1] == '$' || text[j + 1] == '`'))
          ++j;
        word += text[j];
      }
      if (j >= text.size()) throw Error(where + ": unterminated double quote in \"" + text + "\"");
      in_word = true;
      i = j;
    } else if (c == '\\' && i + 1 < text.size()) {
      word += text[++i];
      in_word = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
    } else {
      word += c;
      in_word = true;
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

Json node_to_json(const Node& node) {
  switch (node.kind) {
    case Node::Kind::Null: return nullptr;
    case Node::Kind::Scalar: {
      if (node.plain) {
        const std::string& s = node.scalar;
        if (s == "true" || s == "True" || s == "TRUE") return true;
        if (s == "false" || s == "False" || s == "FALSE") return false;
        if (s == "null" || s == "Null" || s == "NULL" || s == "~" || s.empty()) return nullptr;
        std::int64_t i;
        if (parse_int(s, i)) return i;
        double d;
        if (s.find_first_of(".eE") != std::string::npos && parse_double(s, d) &&
            (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '.'))
          return d;
      }
      return node.scalar;
    }
    case Node::Kind::Sequence: {
      Json out = Json::array();
      for (const auto& item : node.items) out.push_back(node_to_json(item));
      return out;
    }
    case Node::Kind::Mapping: {
      Json out = Json::object();
      for (const auto& e : node.entries) out[e.key] = node_to_json(e.value);
      return out;
    }
  }
  return nullptr;
}

// ---------------------------------------------------------------- field tables
// (Not in an anonymous namespace: the generic readers find the per-type
// overloads defined further down by argument-dependent lookup.)

template <class T>
struct Field {
  std::string name;
  std::function<void(T&, const Node&, DecodeContext&)> decode;
  std::function<void(const T&, Json&)> encode;
  std::string unsupported;  // non-empty: warn that berth ignores this key on Linux
};

template <class T>
struct Table {
  std::vector<Field<T>> fields;
  std::unordered_map<std::string, std::size_t> index;
  Table(std::vector<Field<T>> f) : fields(std::move(f)) {
    for (std::size_t i = 0; i < fields.size(); ++i) index.emplace(fields[i].name, i);
  }
  const Field<T>* find(const std::string& name) const {
    auto it = index.find(name);
    return it == index.end() ? nullptr : &fields[it->second];
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (auto& f : fields) out.push_back(f.name);
    return out;
  }
};

template <class T>
const Table<T>& table();

// Value readers: one overload per model type. -------------------------------

void read(const Node& n, std::string& out, DecodeContext& ctx) {
  if (n.is_null()) {
    out.clear();
    return;
  }
  if (expect_scalar(n, ctx, "a string")) out = n.scalar;
}

void read(const Node& n, bool& out, DecodeContext& ctx) {
  if (!expect_scalar(n, ctx, "a boolean")) return;
  std::string v = lower(n.scalar);
  if (v == "true") out = true;
  else if (v == "false") out = false;
  else ctx.error(n.loc, "expected a boolean (true or false), got \"" + n.scalar + "\"");
}

void read(const Node& n, std::int64_t& out, DecodeContext& ctx) {
  if (!expect_scalar(n, ctx, "an integer")) return;
  if (!parse_int(n.scalar, out)) ctx.error(n.loc, "expected an integer, got \"" + n.scalar + "\"");
}

void read(const Node& n, double& out, DecodeContext& ctx) {
  if (!expect_scalar(n, ctx, "a number")) return;
  if (!parse_double(n.scalar, out)) ctx.error(n.loc, "expected a number, got \"" + n.scalar + "\"");
}

void read(const Node& n, Duration& out, DecodeContext& ctx) {
  if (!expect_scalar(n, ctx, "a duration")) return;
  if (!parse_duration(n.scalar, out))
    ctx.error(n.loc, "invalid duration \"" + n.scalar + "\" (want e.g. 10s, 1m30s, 500ms)");
}

void read(const Node& n, Bytes& out, DecodeContext& ctx) {
  if (!expect_scalar(n, ctx, "a byte size")) return;
  if (!parse_bytes(n.scalar, out))
    ctx.error(n.loc, "invalid byte size \"" + n.scalar + "\" (want e.g. 512m, 1g, 1048576)");
}

template <class T>
void read(const Node& n, std::optional<T>& out, DecodeContext& ctx) {
  if (n.is_null()) {
    out.reset();
    return;
  }
  T value{};
  read(n, value, ctx);
  out = std::move(value);
}

// Lists of strings; a single scalar is accepted as a one-item list
// (compose's string_or_list, which most list keys tolerate in practice).
void read(const Node& n, std::vector<std::string>& out, DecodeContext& ctx) {
  out.clear();
  if (n.is_null()) return;
  if (n.is_scalar()) {
    out.push_back(n.scalar);
    return;
  }
  if (!n.is_sequence()) {
    ctx.error(n.loc, "expected a list of strings, got " + n.kind_name());
    return;
  }
  for (std::size_t i = 0; i < n.items.size(); ++i) {
    PathScope scope(ctx, i);
    if (expect_scalar(n.items[i], ctx, "a string")) out.push_back(n.items[i].scalar);
  }
}

void read(const Node& n, std::vector<std::int64_t>& out, DecodeContext& ctx) {
  out.clear();
  if (n.is_scalar()) {  // "0,2" as supervisord writes exitcodes
    std::string s = n.scalar;
    std::size_t start = 0;
    while (start <= s.size()) {
      std::size_t comma = s.find(',', start);
      std::string part = s.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
      std::int64_t v;
      if (!parse_int(part, v)) {
        ctx.error(n.loc, "expected a list of integers, got \"" + s + "\"");
        return;
      }
      out.push_back(v);
      if (comma == std::string::npos) break;
      start = comma + 1;
    }
    return;
  }
  if (!n.is_sequence()) {
    ctx.error(n.loc, "expected a list of integers, got " + n.kind_name());
    return;
  }
  for (auto& item : n.items) {
    std::int64_t v = 0;
    read(item, v, ctx);
    out.push_back(v);
  }
}

// list_or_dict: {"K": "V"} or ["K=V"]. Values may be null ("K" alone).
template <class Put>
void read_list_or_dict(const Node& n, DecodeContext& ctx, Put put) {
  if (n.is_null()) return;
  if (n.is_mapping()) {
    for (auto& e : n.entries) {
      if (e.value.is_null()) put(e.key, std::nullopt, e.value.loc);
      else if (e.value.is_scalar()) put(e.key, e.value.scalar, e.value.loc);
      else {
        PathScope scope(ctx, e.key);
        ctx.error(e.value.loc, "expected a string, number or boolean, got " + e.value.kind_name());
      }
    }
  } else if (n.is_sequence()) {
    for (std::size_t i = 0; i < n.items.size(); ++i) {
      const Node& item = n.items[i];
      PathScope scope(ctx, i);
      if (!expect_scalar(item, ctx, "\"KEY=VALUE\"")) continue;
      std::size_t eq = item.scalar.find('=');
      if (eq == std::string::npos) put(item.scalar, std::nullopt, item.loc);
      else put(item.scalar.substr(0, eq), item.scalar.substr(eq + 1), item.loc);
    }
  } else {
    ctx.error(n.loc, "expected a mapping or a list of \"KEY=VALUE\", got " + n.kind_name());
  }
}

void read(const Node& n, StringMap& out, DecodeContext& ctx) {
  out.clear();
  read_list_or_dict(n, ctx, [&](const std::string& k, std::optional<std::string> v, const Location&) {
    out[k] = v.value_or("");
  });
}

void read(const Node& n, std::map<std::string, std::optional<std::string>>& out, DecodeContext& ctx) {
  out.clear();
  read_list_or_dict(n, ctx, [&](const std::string& k, std::optional<std::string> v, const Location&) {
    out[k] = std::move(v);
  });
}

// extra_hosts: {"host": "ip" | ["ip", ...]} or ["host:ip", "host=ip"].
void read(const Node& n, std::map<std::string, std::vector<std::string>>& out, DecodeContext& ctx) {
  out.clear();
  if (n.is_null()) return;
  if (n.is_mapping()) {
    for (auto& e : n.entries) {
      PathScope scope(ctx, e.key);
      std::vector<std::string> values;
      read(e.value, values, ctx);
      auto& slot = out[e.key];
      slot.insert(slot.end(), values.begin(), values.end());
    }
    return;
  }
  if (!n.is_sequence()) {
    ctx.error(n.loc, "expected a mapping or a list of \"host=ip\", got " + n.kind_name());
    return;
  }
  for (std::size_t i = 0; i < n.items.size(); ++i) {
    PathScope scope(ctx, i);
    const Node& item = n.items[i];
    if (!expect_scalar(item, ctx, "\"host=ip\"")) continue;
    std::size_t sep = item.scalar.find('=');
    if (sep == std::string::npos) sep = item.scalar.find(':');
    if (sep == std::string::npos || sep == 0 || sep + 1 == item.scalar.size()) {
      ctx.error(item.loc, "invalid extra host \"" + item.scalar + "\" (want host=ip or host:ip)");
      continue;
    }
    out[item.scalar.substr(0, sep)].push_back(item.scalar.substr(sep + 1));
  }
}

void read(const Node& n, Json& out, DecodeContext&) { out = node_to_json(n); }

template <class T>
inline constexpr bool kHasTable = false;
#define BERTH_HAS_TABLE(T) \
  template <>              \
  inline constexpr bool kHasTable<T> = true;
BERTH_HAS_TABLE(Extends)
BERTH_HAS_TABLE(Ulimit)
BERTH_HAS_TABLE(BlkioLimit)
BERTH_HAS_TABLE(BlkioWeight)
BERTH_HAS_TABLE(BlkioConfig)
BERTH_HAS_TABLE(ServiceFileRef)
BERTH_HAS_TABLE(ServiceHook)
BERTH_HAS_TABLE(Build)
BERTH_HAS_TABLE(CredentialSpec)
BERTH_HAS_TABLE(DependsOn)
BERTH_HAS_TABLE(DeviceRequest)
BERTH_HAS_TABLE(DiscreteResourceSpec)
BERTH_HAS_TABLE(GenericResource)
BERTH_HAS_TABLE(Resource)
BERTH_HAS_TABLE(Resources)
BERTH_HAS_TABLE(RestartPolicy)
BERTH_HAS_TABLE(UpdateConfig)
BERTH_HAS_TABLE(PlacementPreference)
BERTH_HAS_TABLE(Placement)
BERTH_HAS_TABLE(Deploy)
BERTH_HAS_TABLE(WatchRule)
BERTH_HAS_TABLE(Develop)
BERTH_HAS_TABLE(DeviceMapping)
BERTH_HAS_TABLE(EnvFile)
BERTH_HAS_TABLE(Healthcheck)
BERTH_HAS_TABLE(Logging)
BERTH_HAS_TABLE(ServiceModel)
BERTH_HAS_TABLE(ServiceNetwork)
BERTH_HAS_TABLE(Port)
BERTH_HAS_TABLE(Provider)
BERTH_HAS_TABLE(VolumeBind)
BERTH_HAS_TABLE(VolumeVolume)
BERTH_HAS_TABLE(VolumeTmpfs)
BERTH_HAS_TABLE(VolumeImage)
BERTH_HAS_TABLE(ServiceVolume)
BERTH_HAS_TABLE(Process)
BERTH_HAS_TABLE(Service)
BERTH_HAS_TABLE(IpamConfig)
BERTH_HAS_TABLE(Ipam)
BERTH_HAS_TABLE(Network)
BERTH_HAS_TABLE(Volume)
BERTH_HAS_TABLE(Model)

template <class T>
concept HasTable = kHasTable<T>;

template <class T>
void read_struct(const Node& n, T& out, DecodeContext& ctx) {
  if (n.is_null()) return;
  if (!n.is_mapping()) {
    ctx.error(n.loc, "expected a mapping, got " + n.kind_name());
    return;
  }
  const Table<T>& t = table<T>();
  for (const auto& e : n.entries) {
    if (const Field<T>* f = t.find(e.key)) {
      PathScope scope(ctx, e.key);
      if (!f->unsupported.empty()) ctx.warn(e.key_loc, f->unsupported);
      f->decode(out, e.value, ctx);
      continue;
    }
    if (e.key.rfind("x-", 0) == 0) {
      if constexpr (requires { out.extensions; }) out.extensions[e.key] = node_to_json(e.value);
      continue;
    }
    std::string hint;
    std::size_t best = 3;
    for (const auto& f : t.fields) {
      std::size_t gap = e.key.size() > f.name.size() ? e.key.size() - f.name.size() : f.name.size() - e.key.size();
      if (gap > 2) continue;  // cannot be within two edits
      std::size_t d = edit_distance(e.key, f.name);
      if (d < best && d <= (f.name.size() >= 5 ? 2u : 1u)) {
        best = d;
        hint = f.name;
      }
    }
    ctx.error(e.key_loc, "unknown key \"" + e.key + "\"" + (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)"));
  }
}

// Types that have short syntaxes provide their own read(); the rest use the table.
template <class T>
  requires HasTable<T>
void read(const Node& n, T& out, DecodeContext& ctx) {
  read_struct(n, out, ctx);
}

template <class T>
  requires HasTable<T>
void read(const Node& n, std::vector<T>& out, DecodeContext& ctx);

template <class T>
  requires HasTable<T>
void read(const Node& n, std::map<std::string, T>& out, DecodeContext& ctx) {
  out.clear();
  if (n.is_null()) return;
  if (!n.is_mapping()) {
    ctx.error(n.loc, "expected a mapping, got " + n.kind_name());
    return;
  }
  for (auto& e : n.entries) {
    PathScope scope(ctx, e.key);
    read(e.value, out[e.key], ctx);
  }
}

// Value writers. --------------------------------------------------------------

bool empty(const std::string& s) { return s.empty(); }
bool empty(bool b) { return !b; }
bool empty(std::int64_t) { return false; }
bool empty(double) { return false; }
bool empty(const Duration&) { return false; }
bool empty(const Bytes&) { return false; }
bool empty(const Json& j) { return j.is_null() || (j.is_object() && j.empty()); }
template <class T>
bool empty(const std::optional<T>& o) { return !o.has_value(); }
template <class T>
bool empty(const std::vector<T>& v) { return v.empty(); }
template <class K, class V>
bool empty(const std::map<K, V>& m) { return m.empty(); }
template <class T>
  requires HasTable<T>
bool empty(const T&) { return false; }

Json write(const std::string& s) { return s; }
Json write(bool b) { return b; }
Json write(std::int64_t i) { return i; }
Json write(double d) { return d; }
Json write(const Duration& d) { return d.str(); }
Json write(const Bytes& b) { return std::to_string(b.value); }
Json write(const Json& j) { return j; }
template <class T>
  requires HasTable<T>
Json write(const T& value);
template <class T>
Json write(const std::optional<T>& o) { return o ? write(*o) : Json(nullptr); }
template <class T>
Json write(const std::vector<T>& v) {
  Json out = Json::array();
  for (const auto& item : v) out.push_back(write(item));
  return out;
}
template <class V>
Json write(const std::map<std::string, V>& m) {
  Json out = Json::object();
  for (const auto& [k, v] : m) out[k] = write(v);
  return out;
}
template <class T>
  requires HasTable<T>
Json write(const T& value) {
  Json out = Json::object();
  for (const auto& f : table<T>().fields) f.encode(value, out);
  return out;
}

// `nofile: 1024` stays a single number; `{soft, hard}` stays a mapping.
Json write(const Ulimit& u) {
  if (u.single) return *u.single;
  Json out = Json::object();
  if (u.soft) out["soft"] = *u.soft;
  if (u.hard) out["hard"] = *u.hard;
  return out;
}

template <class T>
  requires HasTable<T>
void read(const Node& n, std::vector<T>& out, DecodeContext& ctx) {
  out.clear();
  if (n.is_null()) return;
  if (!n.is_sequence()) {
    ctx.error(n.loc, "expected a list, got " + n.kind_name());
    return;
  }
  for (std::size_t i = 0; i < n.items.size(); ++i) {
    PathScope scope(ctx, i);
    T item{};
    read(n.items[i], item, ctx);
    out.push_back(std::move(item));
  }
}

// Field constructors ----------------------------------------------------------

enum Emit { kOmitEmpty, kAlways };

template <class T, class M>
Field<T> F(std::string name, M T::*member, Emit emit = kOmitEmpty, std::string unsupported = {}) {
  Field<T> f;
  f.name = name;
  f.decode = [member](T& t, const Node& n, DecodeContext& ctx) { read(n, t.*member, ctx); };
  f.encode = [member, name, emit](const T& t, Json& j) {
    if (emit == kAlways || !empty(t.*member)) j[name] = write(t.*member);
  };
  f.unsupported = std::move(unsupported);
  return f;
}

// A field berth accepts but cannot honour on Linux: decoded, kept, and warned about.
template <class T, class M>
Field<T> U(std::string name, M T::*member, std::string why) {
  return F(std::move(name), member, kOmitEmpty, std::move(why));
}

template <class T>
Field<T> C(std::string name, std::function<void(T&, const Node&, DecodeContext&)> dec,
           std::function<void(const T&, Json&)> enc) {
  return Field<T>{std::move(name), std::move(dec), std::move(enc), {}};
}

// ---------------------------------------------------------------- short syntaxes

// `command`/`entrypoint`: a string is split like a shell would; a list is kept.
void read_command(const Node& n, std::optional<std::vector<std::string>>& out, DecodeContext& ctx) {
  if (n.is_null()) {
    out.reset();
    return;
  }
  if (n.is_scalar()) {
    try {
      out = shell_split(n.scalar, n.loc.str());
    } catch (const Error& e) {
      ctx.error(n.loc, "bad command: unterminated quote in \"" + n.scalar + "\"");
    }
    return;
  }
  std::vector<std::string> words;
  read(n, words, ctx);
  out = std::move(words);
}

void read(const Node& n, Extends& out, DecodeContext& ctx) {
  if (n.is_scalar()) {
    out.service = n.scalar;
    return;
  }
  read_struct(n, out, ctx);
}

void read(const Node& n, Ulimit& out, DecodeContext& ctx) {
  if (n.is_scalar()) {
    std::int64_t v = 0;
    read(n, v, ctx);
    out.single = v;
    return;
  }
  read_struct(n, out, ctx);
  if (n.is_mapping() && (!out.soft || !out.hard)) ctx.error(n.loc, "ulimit needs both \"soft\" and \"hard\"");
}

void read(const Node& n, ServiceFileRef& out, DecodeContext& ctx) {
  if (n.is_scalar()) {
    out.source = n.scalar;
    return;
  }
  read_struct(n, out, ctx);
  if (n.is_mapping() && out.source.empty()) ctx.error(n.loc, "\"source\" is required");
}

void read(const Node& n, Build& out, DecodeContext& ctx) {
  if (n.is_scalar()) {
    out.context = n.scalar;
    return;
  }
  read_struct(n, out, ctx);
}

void read(const Node& n, DeviceMapping& out, DecodeContext& ctx) {
  if (n.is_scalar()) {
    // "host[:container[:permissions]]"
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
      std::size_t colon = n.scalar.find(':', start);
      parts.push_back(n.scalar.substr(start, colon - start));
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
    if (parts.size() > 3 || parts[0].empty()) {
      ctx.error(n.loc, "invalid device \"" + n.scalar + "\" (want /dev/host[:/dev/container[:rwm]])");
      return;
    }
    out.source = parts[0];
    out.target = parts.size() > 1 ? parts[1] : parts[0];
    out.permissions = parts.size() > 2 ? parts[2] : "rwm";
    return;
  }
  read_struct(n, out, ctx);
  if (n.is_mapping()) {
    if (out.source.empty()) ctx.error(n.loc, "\"source\" is required");
    if (out.target.empty()) out.target = out.source;
    if (out.permissions.empty()) out.permissions = "rwm";
  }
}

void read(const Node& n, EnvFile& out, DecodeContext& ctx) {
  if (n.is_scalar()) {
    out.path = n.scalar;
    return;
  }
  read_struct(n, out, ctx);
  if (n.is_mapping() && out.path.empty()) ctx.error(n.loc, "\"path\" is required");
}

void read_env_files(const Node& n, std::vector<EnvFile>& out, DecodeContext& ctx) {
  out.clear();
  if (n.is_scalar()) {
    out.push_back(EnvFile{n.scalar, true, ""});
    return;
  }
  read(n, out, ctx);
}

void read(const Node& n, Healthcheck& out, DecodeContext& ctx) {
  read_struct(n, out, ctx);
}

void read_health_test(const Node& n, std::vector<std::string>& out, DecodeContext& ctx) {
  if (n.is_scalar()) {
    out = {"CMD-SHELL", n.scalar};
    return;
  }
  read(n, out, ctx);
  if (!out.empty() && out[0] != "NONE" && out[0] != "CMD" && out[0] != "CMD-SHELL")
    ctx.error(n.loc, "a healthcheck test list must start with \"CMD\", \"CMD-SHELL\" or \"NONE\", not \"" + out[0] + "\"");
}

bool valid_port_number(const std::string& s, std::int64_t& v) {
  return parse_int(s, v) && v >= 1 && v <= 65535;
}

// "a-b" or "a" → [a, b]; false on bad syntax.
bool parse_port_range(const std::string& s, std::int64_t& first, std::int64_t& last) {
  std::size_t dash = s.find('-');
  if (dash == std::string::npos) {
    if (!valid_port_number(s, first)) return false;
    last = first;
    return true;
  }
  return valid_port_number(s.substr(0, dash), first) && valid_port_number(s.substr(dash + 1), last) && first <= last;
}

// Short port syntax: [[host_ip:]published:]target[/protocol], with ranges;
// expands target ranges into one entry per port, as compose does.
void read_ports(const Node& n, std::vector<Port>& out, DecodeContext& ctx) {
  out.clear();
  if (n.is_null()) return;
  if (!n.is_sequence()) {
    ctx.error(n.loc, "expected a list of ports, got " + n.kind_name());
    return;
  }
  for (std::size_t i = 0; i < n.items.size(); ++i) {
    PathScope scope(ctx, i);
    const Node& item = n.items[i];
    if (item.is_mapping()) {
      Port p;
      read_struct(item, p, ctx);
      const Node* target = item.find("target");
      if (!target) ctx.error(item.loc, "\"target\" is required");
      else if (p.target < 1 || p.target > 65535) ctx.error(target->loc, "invalid port " + std::to_string(p.target) + " (want 1-65535)");
      if (!p.published.empty()) {
        std::int64_t a, b;
        if (!parse_port_range(p.published, a, b))
          ctx.error(item.find("published")->loc, "invalid published port \"" + p.published + "\"");
      }
      if (p.protocol != "tcp" && p.protocol != "udp" && p.protocol != "sctp")
        ctx.error(item.loc, "invalid protocol \"" + p.protocol + "\" (want tcp, udp or sctp)");
      if (p.mode != "ingress" && p.mode != "host") ctx.error(item.loc, "invalid port mode \"" + p.mode + "\" (want ingress or host)");
      out.push_back(std::move(p));
      continue;
    }
    if (!expect_scalar(item, ctx, "a port")) continue;
    std::string spec = item.scalar;
    auto bad = [&](const std::string& why) {
      ctx.error(item.loc, "invalid port \"" + item.scalar + "\": " + why);
    };
    std::string protocol = "tcp";
    if (std::size_t slash = spec.rfind('/'); slash != std::string::npos) {
      protocol = lower(spec.substr(slash + 1));
      spec.resize(slash);
      if (protocol != "tcp" && protocol != "udp" && protocol != "sctp") {
        bad("protocol must be tcp, udp or sctp");
        continue;
      }
    }
    std::string host_ip;
    if (!spec.empty() && spec[0] == '[') {  // [ipv6]:published:target
      std::size_t close = spec.find(']');
      if (close == std::string::npos || close + 1 >= spec.size() || spec[close + 1] != ':') {
        bad("unterminated IPv6 address");
        continue;
      }
      host_ip = spec.substr(1, close - 1);
      spec = spec.substr(close + 2);
    }
    std::vector<std::string> parts;
    std::size_t start = 0;
    for (;;) {
      std::size_t colon = spec.find(':', start);
      parts.push_back(spec.substr(start, colon - start));
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
    if (parts.size() > 3 || (parts.size() == 3 && !host_ip.empty())) {
      bad("too many colons (IPv6 host addresses need brackets)");
      continue;
    }
    if (parts.size() == 3) {
      host_ip = parts[0];
      parts.erase(parts.begin());
    }
    std::string published = parts.size() == 2 ? parts[0] : "";
    std::int64_t t_first, t_last, p_first = 0, p_last = 0;
    if (!parse_port_range(parts.back(), t_first, t_last)) {
      bad("container port must be a number 1-65535 or a range");
      continue;
    }
    if (!published.empty() && !parse_port_range(published, p_first, p_last)) {
      bad("host port must be a number 1-65535 or a range");
      continue;
    }
    std::int64_t count = t_last - t_first + 1;
    if (!published.empty() && count > 1 && p_last - p_first + 1 != count) {
      bad("host and container port ranges differ in size");
      continue;
    }
    if (count > 65535) continue;
    for (std::int64_t k = 0; k < count; ++k) {
      Port p;
      p.host_ip = host_ip;
      p.target = t_first + k;
      p.protocol = protocol;
      if (!published.empty())
        p.published = count > 1 ? std::to_string(p_first + k) : published;
      out.push_back(std::move(p));
    }
  }
}

bool is_volume_option(const std::string& o) {
  static const char* const options[] = {"ro", "rw", "z", "Z", "nocopy", "shared", "rshared", "slave",
                                        "rslave", "private", "rprivate", "consistent", "cached", "delegated"};
  for (const char* known : options)
    if (o == known) return true;
  return false;
}

void read(const Node& n, ServiceVolume& out, DecodeContext& ctx) {
  if (n.is_mapping()) {
    read_struct(n, out, ctx);
    static const char* const types[] = {"bind", "volume", "tmpfs", "npipe", "cluster", "image"};
    if (out.type.empty()) ctx.error(n.loc, "\"type\" is required (bind, volume, tmpfs, image, ...)");
    else if (std::none_of(std::begin(types), std::end(types), [&](const char* t) { return out.type == t; }))
      ctx.error(n.find("type")->loc, "invalid volume type \"" + out.type + "\" (want bind, volume, tmpfs, image, npipe or cluster)");
    if (out.target.empty()) ctx.error(n.loc, "\"target\" is required");
    if ((out.type == "bind" || out.type == "image") && out.source.empty())
      ctx.error(n.loc, "\"source\" is required for a " + out.type + " mount");
    if (out.type == "volume" && !out.volume) out.volume = VolumeVolume{};
    return;
  }
  if (!expect_scalar(n, ctx, "a volume")) return;
  // source:target[:options] or an anonymous volume's target.
  const std::string& spec = n.scalar;
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    std::size_t colon = spec.find(':', start);
    parts.push_back(spec.substr(start, colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  std::string options;
  if (parts.size() == 3) {
    options = parts[2];
    parts.pop_back();
  } else if (parts.size() > 3) {
    ctx.error(n.loc, "invalid volume \"" + spec + "\" (want source:target[:options])");
    return;
  }
  if (parts.size() == 1) {
    out.type = "volume";
    out.target = parts[0];
    out.volume = VolumeVolume{};
  } else {
    out.source = parts[0];
    out.target = parts[1];
    char first = out.source.empty() ? '\0' : out.source[0];
    out.type = (first == '/' || first == '.' || first == '~') ? "bind" : "volume";
    if (out.type == "bind") out.bind = VolumeBind{"", true, "", ""};
    else out.volume = VolumeVolume{};
  }
  if (out.target.empty() || out.target[0] != '/') {
    ctx.error(n.loc, "invalid volume \"" + spec + "\": the container path must be absolute");
    return;
  }
  start = 0;
  while (!options.empty() && start <= options.size()) {
    std::size_t comma = options.find(',', start);
    std::string o = options.substr(start, comma - start);
    if (!is_volume_option(o)) {
      ctx.error(n.loc, "invalid volume option \"" + o + "\" in \"" + spec + "\"");
      return;
    }
    if (o == "ro") out.read_only = true;
    else if (o == "z" || o == "Z") {
      if (!out.bind) out.bind = VolumeBind{};
      out.bind->selinux = o;
    } else if (o == "nocopy") {
      if (!out.volume) out.volume = VolumeVolume{};
      out.volume->nocopy = true;
    } else if (o == "consistent" || o == "cached" || o == "delegated") out.consistency = o;
    else if (o != "rw") {
      if (!out.bind) out.bind = VolumeBind{};
      out.bind->propagation = o;
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
}

void read_depends_on(const Node& n, std::map<std::string, DependsOn>& out, DecodeContext& ctx) {
  out.clear();
  if (n.is_null()) return;
  if (n.is_sequence()) {
    for (std::size_t i = 0; i < n.items.size(); ++i) {
      PathScope scope(ctx, i);
      if (expect_scalar(n.items[i], ctx, "a service name")) out[n.items[i].scalar] = DependsOn{};
    }
    return;
  }
  read(n, out, ctx);
  for (auto& e : n.entries) {
    auto it = out.find(e.key);
    if (it == out.end()) continue;
    const std::string& c = it->second.condition;
    if (c != "service_started" && c != "service_healthy" && c != "service_completed_successfully") {
      PathScope scope(ctx, e.key);
      const Node* cn = e.value.find("condition");
      ctx.error(cn ? cn->loc : e.value.loc,
                "invalid condition \"" + c + "\" (want service_started, service_healthy or service_completed_successfully)");
    }
  }
}

void read_service_networks(const Node& n, std::map<std::string, std::optional<ServiceNetwork>>& out,
                           DecodeContext& ctx) {
  out.clear();
  if (n.is_null()) return;
  if (n.is_sequence()) {
    for (std::size_t i = 0; i < n.items.size(); ++i) {
      PathScope scope(ctx, i);
      if (expect_scalar(n.items[i], ctx, "a network name")) out[n.items[i].scalar] = std::nullopt;
    }
    return;
  }
  if (!n.is_mapping()) {
    ctx.error(n.loc, "expected a list or mapping of networks, got " + n.kind_name());
    return;
  }
  for (auto& e : n.entries) {
    PathScope scope(ctx, e.key);
    read(e.value, out[e.key], ctx);
  }
}

void read_service_models(const Node& n, std::map<std::string, ServiceModel>& out, DecodeContext& ctx) {
  out.clear();
  if (n.is_sequence()) {
    for (auto& item : n.items)
      if (expect_scalar(item, ctx, "a model name")) out[item.scalar] = ServiceModel{};
    return;
  }
  read(n, out, ctx);
}

void read_gpus(const Node& n, std::vector<DeviceRequest>& out, DecodeContext& ctx) {
  out.clear();
  if (n.is_scalar()) {
    if (n.scalar != "all") ctx.error(n.loc, "gpus must be \"all\" or a list of devices");
    out.push_back(DeviceRequest{{"gpu"}, -1, {}, "", {}});
    return;
  }
  read(n, out, ctx);
}

void read(const Node& n, DeviceRequest& out, DecodeContext& ctx) {
  read_struct(n, out, ctx);
  if (const Node* count = n.find("count"); count && count->is_scalar() && count->scalar == "all") {
    // read_struct already complained that "all" is not an integer; undo that.
    if (!ctx.errors.empty() && ctx.errors.back().find("\"all\"") != std::string::npos) ctx.errors.pop_back();
    out.count = -1;
  }
}

void read_provider_options(const Node& n, std::map<std::string, std::vector<std::string>>& out, DecodeContext& ctx) {
  out.clear();
  if (!n.is_mapping()) {
    if (!n.is_null()) ctx.error(n.loc, "expected a mapping, got " + n.kind_name());
    return;
  }
  for (auto& e : n.entries) {
    PathScope scope(ctx, e.key);
    read(e.value, out[e.key], ctx);
  }
}

// x-processes entries.
void read(const Node& n, Process& out, DecodeContext& ctx) {
  read_struct(n, out, ctx);
  if (!n.is_mapping()) return;
  if (out.command.empty()) ctx.error(n.loc, "\"command\" is required");
  static const char* const signals[] = {"TERM", "HUP", "INT", "QUIT", "KILL", "USR1", "USR2"};
  std::string sig = out.stopsignal;
  for (auto& c : sig) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (sig.rfind("SIG", 0) == 0) sig.erase(0, 3);
  if (std::none_of(std::begin(signals), std::end(signals), [&](const char* s) { return sig == s; })) {
    const Node* at = n.find("stopsignal");
    ctx.error(at ? at->loc : n.loc, "invalid stopsignal \"" + out.stopsignal + "\" (want TERM, HUP, INT, QUIT, KILL, USR1 or USR2)");
  }
  out.stopsignal = sig;
  auto non_negative = [&](const char* key, std::int64_t v) {
    if (v < 0) {
      const Node* at = n.find(key);
      ctx.error(at ? at->loc : n.loc, std::string(key) + " must not be negative");
    }
  };
  non_negative("startsecs", out.startsecs);
  non_negative("startretries", out.startretries);
  non_negative("stopwaitsecs", out.stopwaitsecs);
}

void read_autorestart(const Node& n, std::string& out, DecodeContext& ctx) {
  if (!expect_scalar(n, ctx, "true, false or unexpected")) return;
  std::string v = lower(n.scalar);
  if (v == "true" || v == "false" || v == "unexpected") out = v;
  else ctx.error(n.loc, "invalid autorestart \"" + n.scalar + "\" (want true, false or unexpected)");
}

void read_process_command(const Node& n, std::vector<std::string>& out, DecodeContext& ctx) {
  std::optional<std::vector<std::string>> words;
  read_command(n, words, ctx);
  out = words.value_or(std::vector<std::string>{});
}

// File modes are octal by convention (`mode: 0440`), as YAML 1.1 reads them.
void read_mode(const Node& n, std::optional<std::int64_t>& out, DecodeContext& ctx) {
  if (n.is_null()) return;
  if (!expect_scalar(n, ctx, "a file mode")) return;
  std::string s = n.scalar;
  int base = 10;
  if (s.rfind("0o", 0) == 0) {
    s = s.substr(2);
    base = 8;
  } else if (s.size() > 1 && s[0] == '0') {
    base = 8;
  }
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, base);
  if (s.empty() || *end != '\0' || v < 0 || v > 07777) {
    ctx.error(n.loc, "invalid file mode \"" + n.scalar + "\" (want e.g. 0440)");
    return;
  }
  out = v;
}

// External: `external: true`, or the deprecated `external: {name: x}`.
template <class T>
Field<T> external_field() {
  return C<T>(
      "external",
      [](T& t, const Node& n, DecodeContext& ctx) {
        if (n.is_mapping()) {
          ctx.warn(n.loc, "\"external: {name: ...}\" is deprecated; use \"name\" with \"external: true\"");
          t.external = true;
          if (const Node* name = n.find("name")) read(*name, t.name, ctx);
          for (auto& e : n.entries)
            if (e.key != "name") ctx.error(e.key_loc, "unknown key \"" + e.key + "\"");
          return;
        }
        read(n, t.external, ctx);
      },
      [](const T& t, Json& j) {
        if (t.external) j["external"] = true;
      });
}

std::string unsupported(const std::string& why) { return "not supported by berth on Linux (" + why + "); ignored"; }

template <class T, class M>
Field<T> Custom(std::string name, M T::*member, void (*reader)(const Node&, M&, DecodeContext&),
                std::string why = {}) {
  Field<T> f;
  f.name = name;
  f.decode = [member, reader](T& t, const Node& n, DecodeContext& ctx) { reader(n, t.*member, ctx); };
  f.encode = [member, name](const T& t, Json& j) {
    if (!empty(t.*member)) j[name] = write(t.*member);
  };
  f.unsupported = std::move(why);
  return f;
}

// ---------------------------------------------------------------- the tables
// Nested structs keep compose's field order; `services.*` keys are alphabetical
// like docker compose v2's output.

template <> const Table<Extends>& table() {
  static const Table<Extends> t({F("service", &Extends::service), F("file", &Extends::file)});
  return t;
}
template <> const Table<Ulimit>& table() {
  static const Table<Ulimit> t({F("soft", &Ulimit::soft), F("hard", &Ulimit::hard)});
  return t;
}
template <> const Table<BlkioLimit>& table() {
  static const Table<BlkioLimit> t({F("path", &BlkioLimit::path), F("rate", &BlkioLimit::rate)});
  return t;
}
template <> const Table<BlkioWeight>& table() {
  static const Table<BlkioWeight> t({F("path", &BlkioWeight::path), F("weight", &BlkioWeight::weight)});
  return t;
}
template <> const Table<BlkioConfig>& table() {
  static const Table<BlkioConfig> t({
      F("device_read_bps", &BlkioConfig::device_read_bps),
      F("device_read_iops", &BlkioConfig::device_read_iops),
      F("device_write_bps", &BlkioConfig::device_write_bps),
      F("device_write_iops", &BlkioConfig::device_write_iops),
      F("weight", &BlkioConfig::weight),
      F("weight_device", &BlkioConfig::weight_device),
  });
  return t;
}
template <> const Table<ServiceFileRef>& table() {
  static const Table<ServiceFileRef> t({
      F("source", &ServiceFileRef::source), F("target", &ServiceFileRef::target),
      F("uid", &ServiceFileRef::uid), F("gid", &ServiceFileRef::gid), Custom("mode", &ServiceFileRef::mode, read_mode)});
  return t;
}
template <> const Table<ServiceHook>& table() {
  static const Table<ServiceHook> t({
      C<ServiceHook>("command", [](ServiceHook& h, const Node& n, DecodeContext& c) { read_process_command(n, h.command, c); },
                     [](const ServiceHook& h, Json& j) { j["command"] = write(h.command); }),
      F("user", &ServiceHook::user), F("privileged", &ServiceHook::privileged),
      F("working_dir", &ServiceHook::working_dir), F("environment", &ServiceHook::environment)});
  return t;
}
template <> const Table<Build>& table() {
  static const Table<Build> t({
      F("context", &Build::context),
      F("dockerfile", &Build::dockerfile),
      F("dockerfile_inline", &Build::dockerfile_inline),
      F("entitlements", &Build::entitlements),
      F("args", &Build::args),
      F("ssh", &Build::ssh),
      F("labels", &Build::labels),
      F("cache_from", &Build::cache_from),
      F("cache_to", &Build::cache_to),
      F("no_cache", &Build::no_cache),
      F("additional_contexts", &Build::additional_contexts),
      F("network", &Build::network),
      F("provenance", &Build::provenance),
      F("sbom", &Build::sbom),
      F("pull", &Build::pull),
      F("target", &Build::target),
      F("shm_size", &Build::shm_size),
      F("extra_hosts", &Build::extra_hosts),
      U("isolation", &Build::isolation, unsupported("Windows isolation technology")),
      F("privileged", &Build::privileged),
      F("secrets", &Build::secrets),
      F("tags", &Build::tags),
      F("ulimits", &Build::ulimits),
      F("platforms", &Build::platforms),
  });
  return t;
}
template <> const Table<CredentialSpec>& table() {
  static const Table<CredentialSpec> t({F("config", &CredentialSpec::config), F("file", &CredentialSpec::file),
                                        F("registry", &CredentialSpec::registry)});
  return t;
}
template <> const Table<DependsOn>& table() {
  static const Table<DependsOn> t({F("condition", &DependsOn::condition, kAlways),
                                   F("required", &DependsOn::required, kAlways), F("restart", &DependsOn::restart)});
  return t;
}
template <> const Table<DeviceRequest>& table() {
  static const Table<DeviceRequest> t({F("capabilities", &DeviceRequest::capabilities),
                                       F("count", &DeviceRequest::count), F("device_ids", &DeviceRequest::device_ids),
                                       F("driver", &DeviceRequest::driver), F("options", &DeviceRequest::options)});
  return t;
}
template <> const Table<DiscreteResourceSpec>& table() {
  static const Table<DiscreteResourceSpec> t(
      {F("kind", &DiscreteResourceSpec::kind), F("value", &DiscreteResourceSpec::value)});
  return t;
}
template <> const Table<GenericResource>& table() {
  static const Table<GenericResource> t({F("discrete_resource_spec", &GenericResource::discrete_resource_spec)});
  return t;
}
template <> const Table<Resource>& table() {
  static const Table<Resource> t({F("cpus", &Resource::cpus), F("memory", &Resource::memory),
                                  F("pids", &Resource::pids), F("generic_resources", &Resource::generic_resources),
                                  F("devices", &Resource::devices)});
  return t;
}
template <> const Table<Resources>& table() {
  static const Table<Resources> t({F("limits", &Resources::limits), F("reservations", &Resources::reservations)});
  return t;
}
template <> const Table<RestartPolicy>& table() {
  static const Table<RestartPolicy> t({F("condition", &RestartPolicy::condition), F("delay", &RestartPolicy::delay),
                                       F("max_attempts", &RestartPolicy::max_attempts),
                                       F("window", &RestartPolicy::window)});
  return t;
}
template <> const Table<UpdateConfig>& table() {
  static const Table<UpdateConfig> t({F("parallelism", &UpdateConfig::parallelism), F("delay", &UpdateConfig::delay),
                                      F("failure_action", &UpdateConfig::failure_action),
                                      F("monitor", &UpdateConfig::monitor),
                                      F("max_failure_ratio", &UpdateConfig::max_failure_ratio),
                                      F("order", &UpdateConfig::order)});
  return t;
}
template <> const Table<PlacementPreference>& table() {
  static const Table<PlacementPreference> t({F("spread", &PlacementPreference::spread)});
  return t;
}
template <> const Table<Placement>& table() {
  static const Table<Placement> t({F("constraints", &Placement::constraints), F("preferences", &Placement::preferences),
                                   F("max_replicas_per_node", &Placement::max_replicas_per_node)});
  return t;
}
template <> const Table<Deploy>& table() {
  static const std::string swarm = unsupported("swarm-only; berth runs on one host");
  static const Table<Deploy> t({
      F("mode", &Deploy::mode),
      U("endpoint_mode", &Deploy::endpoint_mode, swarm),
      F("replicas", &Deploy::replicas),
      F("labels", &Deploy::labels),
      U("rollback_config", &Deploy::rollback_config, swarm),
      U("update_config", &Deploy::update_config, swarm),
      F("resources", &Deploy::resources),
      F("restart_policy", &Deploy::restart_policy),
      U("placement", &Deploy::placement, swarm),
  });
  return t;
}
template <> const Table<WatchRule>& table() {
  static const Table<WatchRule> t({F("ignore", &WatchRule::ignore), F("include", &WatchRule::include),
                                   F("path", &WatchRule::path), F("action", &WatchRule::action),
                                   F("target", &WatchRule::target), F("exec", &WatchRule::exec),
                                   F("initial_sync", &WatchRule::initial_sync)});
  return t;
}
template <> const Table<Develop>& table() {
  static const Table<Develop> t({F("watch", &Develop::watch)});
  return t;
}
template <> const Table<DeviceMapping>& table() {
  static const Table<DeviceMapping> t({F("source", &DeviceMapping::source), F("target", &DeviceMapping::target),
                                       F("permissions", &DeviceMapping::permissions)});
  return t;
}
template <> const Table<EnvFile>& table() {
  static const Table<EnvFile> t(
      {F("path", &EnvFile::path, kAlways), F("required", &EnvFile::required, kAlways), F("format", &EnvFile::format)});
  return t;
}
template <> const Table<Healthcheck>& table() {
  static const Table<Healthcheck> t({
      C<Healthcheck>("test", [](Healthcheck& h, const Node& n, DecodeContext& c) { read_health_test(n, h.test, c); },
                     [](const Healthcheck& h, Json& j) {
                       if (!h.test.empty()) j["test"] = write(h.test);
                     }),
      F("timeout", &Healthcheck::timeout),
      F("interval", &Healthcheck::interval),
      F("retries", &Healthcheck::retries),
      F("start_period", &Healthcheck::start_period),
      F("start_interval", &Healthcheck::start_interval),
      F("disable", &Healthcheck::disable),
  });
  return t;
}
template <> const Table<Logging>& table() {
  static const Table<Logging> t({F("driver", &Logging::driver), F("options", &Logging::options)});
  return t;
}
template <> const Table<ServiceModel>& table() {
  static const Table<ServiceModel> t(
      {F("endpoint_var", &ServiceModel::endpoint_var), F("model_var", &ServiceModel::model_var)});
  return t;
}
template <> const Table<ServiceNetwork>& table() {
  static const Table<ServiceNetwork> t({
      F("aliases", &ServiceNetwork::aliases),
      F("interface_name", &ServiceNetwork::interface_name),
      F("ipv4_address", &ServiceNetwork::ipv4_address),
      F("ipv6_address", &ServiceNetwork::ipv6_address),
      F("link_local_ips", &ServiceNetwork::link_local_ips),
      F("mac_address", &ServiceNetwork::mac_address),
      F("driver_opts", &ServiceNetwork::driver_opts),
      F("priority", &ServiceNetwork::priority),
      F("gw_priority", &ServiceNetwork::gw_priority),
  });
  return t;
}
template <> const Table<Port>& table() {
  static const Table<Port> t({
      F("name", &Port::name),
      F("mode", &Port::mode, kAlways),
      F("host_ip", &Port::host_ip),
      F("target", &Port::target, kAlways),
      C<Port>(
          "published",
          [](Port& p, const Node& n, DecodeContext& c) { read(n, p.published, c); },
          [](const Port& p, Json& j) {
            if (!p.published.empty()) j["published"] = p.published;
          }),
      F("protocol", &Port::protocol, kAlways),
      F("app_protocol", &Port::app_protocol),
  });
  return t;
}
template <> const Table<Provider>& table() {
  static const Table<Provider> t({
      F("type", &Provider::type),
      C<Provider>("options", [](Provider& p, const Node& n, DecodeContext& c) { read_provider_options(n, p.options, c); },
                  [](const Provider& p, Json& j) {
                    if (!p.options.empty()) j["options"] = write(p.options);
                  }),
  });
  return t;
}
template <> const Table<VolumeBind>& table() {
  static const Table<VolumeBind> t({F("propagation", &VolumeBind::propagation),
                                    F("create_host_path", &VolumeBind::create_host_path),
                                    F("recursive", &VolumeBind::recursive), F("selinux", &VolumeBind::selinux)});
  return t;
}
template <> const Table<VolumeVolume>& table() {
  static const Table<VolumeVolume> t({F("labels", &VolumeVolume::labels), F("nocopy", &VolumeVolume::nocopy),
                                      F("subpath", &VolumeVolume::subpath)});
  return t;
}
template <> const Table<VolumeTmpfs>& table() {
  static const Table<VolumeTmpfs> t({F("size", &VolumeTmpfs::size), Custom("mode", &VolumeTmpfs::mode, read_mode)});
  return t;
}
template <> const Table<VolumeImage>& table() {
  static const Table<VolumeImage> t({F("subpath", &VolumeImage::subpath)});
  return t;
}
template <> const Table<ServiceVolume>& table() {
  static const Table<ServiceVolume> t({
      F("type", &ServiceVolume::type), F("source", &ServiceVolume::source), F("target", &ServiceVolume::target),
      F("read_only", &ServiceVolume::read_only), F("consistency", &ServiceVolume::consistency),
      F("bind", &ServiceVolume::bind), F("volume", &ServiceVolume::volume), F("tmpfs", &ServiceVolume::tmpfs),
      F("image", &ServiceVolume::image)});
  return t;
}
template <> const Table<Process>& table() {
  static const Table<Process> t({
      C<Process>("command", [](Process& p, const Node& n, DecodeContext& c) { read_process_command(n, p.command, c); },
                 [](const Process& p, Json& j) { j["command"] = write(p.command); }),
      F("environment", &Process::environment),
      F("directory", &Process::directory),
      F("user", &Process::user),
      F("autostart", &Process::autostart, kAlways),
      C<Process>("autorestart", [](Process& p, const Node& n, DecodeContext& c) { read_autorestart(n, p.autorestart, c); },
                 [](const Process& p, Json& j) { j["autorestart"] = p.autorestart; }),
      F("startsecs", &Process::startsecs, kAlways),
      F("startretries", &Process::startretries, kAlways),
      F("exitcodes", &Process::exitcodes, kAlways),
      F("stopsignal", &Process::stopsignal, kAlways),
      F("stopwaitsecs", &Process::stopwaitsecs, kAlways),
      F("priority", &Process::priority, kAlways),
  });
  return t;
}

template <> const Table<Service>& table() {
  static const Table<Service> t({
      F("annotations", &Service::annotations),
      F("attach", &Service::attach),
      F("blkio_config", &Service::blkio_config),
      F("build", &Service::build),
      F("cap_add", &Service::cap_add),
      F("cap_drop", &Service::cap_drop),
      F("cgroup", &Service::cgroup),
      F("cgroup_parent", &Service::cgroup_parent),
      Custom("command", &Service::command, read_command),
      F("configs", &Service::configs),
      F("container_name", &Service::container_name),
      U("cpu_count", &Service::cpu_count, unsupported("Windows-only")),
      U("cpu_percent", &Service::cpu_percent, unsupported("Windows-only")),
      F("cpu_period", &Service::cpu_period),
      F("cpu_quota", &Service::cpu_quota),
      U("cpu_rt_period", &Service::cpu_rt_period, unsupported("cgroup v2 has no realtime CPU controller")),
      U("cpu_rt_runtime", &Service::cpu_rt_runtime, unsupported("cgroup v2 has no realtime CPU controller")),
      F("cpu_shares", &Service::cpu_shares),
      F("cpus", &Service::cpus),
      F("cpuset", &Service::cpuset),
      U("credential_spec", &Service::credential_spec, unsupported("Windows-only")),
      Custom("depends_on", &Service::depends_on, read_depends_on),
      F("deploy", &Service::deploy),
      U("develop", &Service::develop, "berth has no file-watch development mode yet; ignored"),
      F("device_cgroup_rules", &Service::device_cgroup_rules),
      F("devices", &Service::devices),
      F("dns", &Service::dns),
      F("dns_opt", &Service::dns_opt),
      F("dns_search", &Service::dns_search),
      F("domainname", &Service::domainname),
      Custom("entrypoint", &Service::entrypoint, read_command),
      Custom("env_file", &Service::env_file, read_env_files),
      F("environment", &Service::environment),
      F("expose", &Service::expose),
      F("extends", &Service::extends),
      U("external_links", &Service::external_links, "links to containers outside the project are not supported; ignored"),
      F("extra_hosts", &Service::extra_hosts),
      Custom("gpus", &Service::gpus, read_gpus, unsupported("berth does not pass GPUs into containers")),
      F("group_add", &Service::group_add),
      F("healthcheck", &Service::healthcheck),
      F("hostname", &Service::hostname),
      F("image", &Service::image),
      F("init", &Service::init),
      F("ipc", &Service::ipc),
      U("isolation", &Service::isolation, unsupported("Windows isolation technology")),
      F("label_file", &Service::label_file),
      F("labels", &Service::labels),
      F("links", &Service::links),
      F("logging", &Service::logging),
      F("mac_address", &Service::mac_address),
      F("mem_limit", &Service::mem_limit),
      F("mem_reservation", &Service::mem_reservation),
      U("mem_swappiness", &Service::mem_swappiness, unsupported("cgroup v2 has no per-group swappiness")),
      F("memswap_limit", &Service::memswap_limit),
      Custom("models", &Service::models, read_service_models, "berth does not run AI models; ignored"),
      F("network_mode", &Service::network_mode),
      Custom("networks", &Service::networks, read_service_networks),
      U("oom_kill_disable", &Service::oom_kill_disable, unsupported("cgroup v2 cannot disable the OOM killer")),
      F("oom_score_adj", &Service::oom_score_adj),
      F("pid", &Service::pid),
      F("pids_limit", &Service::pids_limit),
      F("platform", &Service::platform),
      Custom("ports", &Service::ports, read_ports),
      F("post_start", &Service::post_start),
      F("pre_stop", &Service::pre_stop),
      F("privileged", &Service::privileged),
      F("profiles", &Service::profiles),
      U("provider", &Service::provider, "berth has no service providers; ignored"),
      F("pull_policy", &Service::pull_policy),
      F("pull_refresh_after", &Service::pull_refresh_after),
      F("read_only", &Service::read_only),
      F("restart", &Service::restart),
      U("runtime", &Service::runtime, "berth uses its own container runtime; ignored"),
      F("scale", &Service::scale),
      F("secrets", &Service::secrets),
      F("security_opt", &Service::security_opt),
      F("shm_size", &Service::shm_size),
      F("stdin_open", &Service::stdin_open),
      F("stop_grace_period", &Service::stop_grace_period),
      F("stop_signal", &Service::stop_signal),
      U("storage_opt", &Service::storage_opt, unsupported("berth's overlay storage has no per-container size quota")),
      F("sysctls", &Service::sysctls),
      F("tmpfs", &Service::tmpfs),
      F("tty", &Service::tty),
      F("ulimits", &Service::ulimits),
      U("use_api_socket", &Service::use_api_socket, "berth has no Docker API socket to mount; ignored"),
      F("user", &Service::user),
      F("userns_mode", &Service::userns_mode),
      F("uts", &Service::uts),
      F("volumes", &Service::volumes),
      F("volumes_from", &Service::volumes_from),
      F("working_dir", &Service::working_dir),
      F("x-processes", &Service::processes),
  });
  return t;
}

template <> const Table<IpamConfig>& table() {
  static const Table<IpamConfig> t({F("subnet", &IpamConfig::subnet), F("ip_range", &IpamConfig::ip_range),
                                    F("gateway", &IpamConfig::gateway),
                                    F("aux_addresses", &IpamConfig::aux_addresses)});
  return t;
}
template <> const Table<Ipam>& table() {
  static const Table<Ipam> t({F("driver", &Ipam::driver), F("config", &Ipam::config), F("options", &Ipam::options)});
  return t;
}
template <> const Table<Network>& table() {
  static const Table<Network> t({
      F("name", &Network::name), F("driver", &Network::driver), F("driver_opts", &Network::driver_opts),
      F("ipam", &Network::ipam), external_field<Network>(), F("internal", &Network::internal),
      F("enable_ipv4", &Network::enable_ipv4), F("enable_ipv6", &Network::enable_ipv6),
      F("attachable", &Network::attachable), F("labels", &Network::labels)});
  return t;
}
template <> const Table<Volume>& table() {
  static const Table<Volume> t({F("name", &Volume::name), F("driver", &Volume::driver),
                                F("driver_opts", &Volume::driver_opts), external_field<Volume>(),
                                F("labels", &Volume::labels)});
  return t;
}
template <> const Table<Model>& table() {
  static const Table<Model> t({F("name", &Model::name), F("model", &Model::model),
                               F("context_size", &Model::context_size), F("runtime_flags", &Model::runtime_flags)});
  return t;
}

const Table<FileObject>& config_table() {
  static const Table<FileObject> t({F("name", &FileObject::name), F("content", &FileObject::content),
                                    F("environment", &FileObject::environment), F("file", &FileObject::file),
                                    external_field<FileObject>(), F("labels", &FileObject::labels),
                                    F("template_driver", &FileObject::template_driver)});
  return t;
}
const Table<FileObject>& secret_table() {
  static const Table<FileObject> t({F("name", &FileObject::name), F("environment", &FileObject::environment),
                                    F("file", &FileObject::file), external_field<FileObject>(),
                                    F("labels", &FileObject::labels), F("driver", &FileObject::driver),
                                    F("driver_opts", &FileObject::driver_opts),
                                    F("template_driver", &FileObject::template_driver)});
  return t;
}

// FileObject has two tables, so it goes through this instead of read_struct.
void read_with(const Table<FileObject>& t, const Node& n, FileObject& out, DecodeContext& ctx) {
  if (n.is_null()) return;
  if (!n.is_mapping()) {
    ctx.error(n.loc, "expected a mapping, got " + n.kind_name());
    return;
  }
  for (const auto& e : n.entries) {
    if (const Field<FileObject>* f = t.find(e.key)) {
      PathScope scope(ctx, e.key);
      f->decode(out, e.value, ctx);
    } else if (e.key.rfind("x-", 0) == 0) {
      out.extensions[e.key] = node_to_json(e.value);
    } else {
      ctx.error(e.key_loc, "unknown key \"" + e.key + "\"");
    }
  }
}

Json write_with(const Table<FileObject>& t, const FileObject& o) {
  Json out = Json::object();
  for (const auto& f : t.fields) f.encode(o, out);
  for (auto& [k, v] : o.extensions.items()) out[k] = v;
  return out;
}

// ---------------------------------------------------------------- public

void decode(const Node& node, Service& out, DecodeContext& ctx) { read_struct(node, out, ctx); }
void decode(const Node& node, Network& out, DecodeContext& ctx) { read_struct(node, out, ctx); }
void decode(const Node& node, Volume& out, DecodeContext& ctx) { read_struct(node, out, ctx); }
void decode(const Node& node, Model& out, DecodeContext& ctx) { read_struct(node, out, ctx); }
void decode_config(const Node& node, FileObject& out, DecodeContext& ctx) { read_with(config_table(), node, out, ctx); }
void decode_secret(const Node& node, FileObject& out, DecodeContext& ctx) { read_with(secret_table(), node, out, ctx); }

template <class T>
Json encode_with_extensions(const T& value) {
  Json out = write(value);
  for (auto& [k, v] : value.extensions.items()) out[k] = v;
  return out;
}

Json encode(const Service& s) { return encode_with_extensions(s); }
Json encode(const Network& n) { return encode_with_extensions(n); }
Json encode(const Volume& v) { return encode_with_extensions(v); }
Json encode(const Model& m) { return write(m); }
Json encode_config(const FileObject& c) { return write_with(config_table(), c); }
Json encode_secret(const FileObject& s) { return write_with(secret_table(), s); }

std::vector<std::string> known_keys_at(const std::string& where) {
  static const std::map<std::string, std::function<std::vector<std::string>()>> tables = {
      {"service", [] { return table<Service>().names(); }},
      {"service.build", [] { return table<Build>().names(); }},
      {"service.blkio_config", [] { return table<BlkioConfig>().names(); }},
      {"blkio_limit", [] { return table<BlkioLimit>().names(); }},
      {"blkio_weight", [] { return table<BlkioWeight>().names(); }},
      {"service.credential_spec", [] { return table<CredentialSpec>().names(); }},
      {"service.depends_on", [] { return table<DependsOn>().names(); }},
      {"service.devices", [] { return table<DeviceMapping>().names(); }},
      {"service.env_file", [] { return table<EnvFile>().names(); }},
      {"service.extends", [] { return table<Extends>().names(); }},
      {"service.logging", [] { return table<Logging>().names(); }},
      {"service.models", [] { return table<ServiceModel>().names(); }},
      {"service.networks", [] { return table<ServiceNetwork>().names(); }},
      {"service.ports", [] { return table<Port>().names(); }},
      {"service.provider", [] { return table<Provider>().names(); }},
      {"service.configs", [] { return table<ServiceFileRef>().names(); }},
      {"service.secrets", [] { return table<ServiceFileRef>().names(); }},
      {"service.ulimits", [] { return table<Ulimit>().names(); }},
      {"service.volumes", [] { return table<ServiceVolume>().names(); }},
      {"service.volumes.bind", [] { return table<VolumeBind>().names(); }},
      {"service.volumes.volume", [] { return table<VolumeVolume>().names(); }},
      {"service.volumes.tmpfs", [] { return table<VolumeTmpfs>().names(); }},
      {"service.volumes.image", [] { return table<VolumeImage>().names(); }},
      {"service_hook", [] { return table<ServiceHook>().names(); }},
      {"healthcheck", [] { return table<Healthcheck>().names(); }},
      {"development", [] { return table<Develop>().names(); }},
      {"development.watch", [] { return table<WatchRule>().names(); }},
      {"deployment", [] { return table<Deploy>().names(); }},
      {"deployment.rollback_config", [] { return table<UpdateConfig>().names(); }},
      {"deployment.update_config", [] { return table<UpdateConfig>().names(); }},
      {"deployment.resources", [] { return table<Resources>().names(); }},
      {"deployment.resources.limits", [] { return table<Resource>().names(); }},
      {"deployment.resources.reservations", [] { return table<Resource>().names(); }},
      {"deployment.restart_policy", [] { return table<RestartPolicy>().names(); }},
      {"deployment.placement", [] { return table<Placement>().names(); }},
      {"deployment.placement.preferences", [] { return table<PlacementPreference>().names(); }},
      {"devices", [] { return table<DeviceRequest>().names(); }},
      {"gpus", [] { return table<DeviceRequest>().names(); }},
      {"generic_resources", [] { return table<GenericResource>().names(); }},
      {"generic_resources.discrete_resource_spec", [] { return table<DiscreteResourceSpec>().names(); }},
      {"network", [] { return table<Network>().names(); }},
      {"network.ipam", [] { return table<Ipam>().names(); }},
      {"network.ipam.config", [] { return table<IpamConfig>().names(); }},
      {"volume", [] { return table<Volume>().names(); }},
      {"config", [] { return config_table().names(); }},
      {"secret", [] { return secret_table().names(); }},
      {"model", [] { return table<Model>().names(); }},
      {"include", [] { return std::vector<std::string>{"path", "env_file", "project_directory"}; }},
      {"project",
       [] {
         return std::vector<std::string>{"version", "name", "include", "services", "models",
                                         "networks", "volumes", "secrets", "configs"};
       }},
  };
  auto it = tables.find(where);
  return it == tables.end() ? std::vector<std::string>{} : it->second();
}

}  // namespace berth::spec
