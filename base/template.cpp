// A Go text/template subset over JSON (see template.h). The template is
// parsed into a small tree first, so a malformed template fails before any
// output, and then evaluated against the data.
#include "base/template.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <memory>
#include <sstream>
#include <vector>

#include "base/error.h"

namespace berth {
namespace {

using json = nlohmann::json;

struct Pipeline;

// One operand of a command: a field chain (from dot or from $), a literal,
// a function name or a parenthesised pipeline.
struct Operand {
  enum class Kind { Field, Root, Literal, Function, Sub } kind = Kind::Field;
  std::vector<std::string> path;  // Field/Root: keys below the start
  json literal;
  std::string name;  // Function
  std::shared_ptr<Pipeline> sub;
};

struct Command {
  std::vector<Operand> operands;
};

struct Pipeline {
  std::vector<Command> commands;
};

struct Node {
  enum class Kind { Text, Action, If, Range, With } kind = Kind::Text;
  std::string text;
  Pipeline pipeline;
  std::vector<Node> body, otherwise;
};

[[noreturn]] void fail(size_t pos, const std::string& why) {
  throw UsageError("template: " + std::to_string(pos + 1) + ": " + why);
}

// ---- the action language --------------------------------------------------

class ActionParser {
 public:
  ActionParser(const std::string& text, size_t origin) : s_(text), origin_(origin) {}

  Pipeline pipeline(bool inner = false) {
    Pipeline p;
    for (;;) {
      Command c = command();
      if (c.operands.empty()) fail(origin_ + i_, "missing command in pipeline");
      p.commands.push_back(std::move(c));
      skip_space();
      if (at_end()) break;
      if (s_[i_] == '|') {
        ++i_;
        continue;
      }
      if (inner && s_[i_] == ')') break;
      fail(origin_ + i_, std::string("unexpected \"") + s_[i_] + "\"");
    }
    return p;
  }

  bool at_end() {
    skip_space();
    return i_ >= s_.size();
  }

  // The first word, when the action is a keyword (if, range, with, else, end).
  std::string keyword() {
    skip_space();
    size_t j = i_;
    while (j < s_.size() && std::isalpha(static_cast<unsigned char>(s_[j]))) ++j;
    std::string word = s_.substr(i_, j - i_);
    if (word == "if" || word == "range" || word == "with" || word == "else" || word == "end") {
      i_ = j;
      return word;
    }
    return "";
  }

 private:
  void skip_space() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
  }

  Command command() {
    Command c;
    for (;;) {
      skip_space();
      if (i_ >= s_.size() || s_[i_] == '|' || s_[i_] == ')') return c;
      c.operands.push_back(operand());
    }
  }

  std::vector<std::string> field_chain() {
    std::vector<std::string> path;
    while (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      size_t j = i_;
      while (j < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[j])) || s_[j] == '_')) ++j;
      if (j == i_) {
        if (path.empty()) return path;  // a lone "."
        fail(origin_ + i_, "bad field name");
      }
      path.push_back(s_.substr(i_, j - i_));
      i_ = j;
    }
    return path;
  }

  Operand operand() {
    Operand o;
    size_t start = i_;
    char ch = s_[i_];
    if (ch == '.') {
      o.kind = Operand::Kind::Field;
      o.path = field_chain();
    } else if (ch == '$') {
      ++i_;
      o.kind = Operand::Kind::Root;
      o.path = field_chain();
    } else if (ch == '(') {
      ++i_;
      o.kind = Operand::Kind::Sub;
      o.sub = std::make_shared<Pipeline>(pipeline(true));
      if (i_ >= s_.size() || s_[i_] != ')') fail(origin_ + start, "unclosed parenthesis");
      ++i_;
    } else if (ch == '"') {
      o.kind = Operand::Kind::Literal;
      std::string v;
      for (++i_;; ++i_) {
        if (i_ >= s_.size()) fail(origin_ + start, "unterminated quoted string");
        char c = s_[i_];
        if (c == '"') break;
        if (c == '\\' && i_ + 1 < s_.size()) {
          char e = s_[++i_];
          v += e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == '0' ? '\0' : e;
        } else {
          v += c;
        }
      }
      ++i_;
      o.literal = v;
    } else if (ch == '`') {
      size_t end = s_.find('`', i_ + 1);
      if (end == std::string::npos) fail(origin_ + start, "unterminated raw string");
      o.kind = Operand::Kind::Literal;
      o.literal = s_.substr(i_ + 1, end - i_ - 1);
      i_ = end + 1;
    } else if (std::isdigit(static_cast<unsigned char>(ch)) || ch == '-') {
      size_t j = i_ + 1;
      while (j < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[j])) || s_[j] == '.')) ++j;
      std::string num = s_.substr(i_, j - i_);
      o.kind = Operand::Kind::Literal;
      try {
        o.literal = num.find('.') == std::string::npos ? json(std::stoll(num)) : json(std::stod(num));
      } catch (const std::exception&) {
        fail(origin_ + start, "bad number " + num);
      }
      i_ = j;
    } else if (std::isalpha(static_cast<unsigned char>(ch))) {
      size_t j = i_;
      while (j < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[j])) || s_[j] == '_')) ++j;
      std::string word = s_.substr(i_, j - i_);
      i_ = j;
      if (word == "true" || word == "false") {
        o.kind = Operand::Kind::Literal;
        o.literal = word == "true";
      } else if (word == "nil") {
        o.kind = Operand::Kind::Literal;
        o.literal = nullptr;
      } else {
        o.kind = Operand::Kind::Function;
        o.name = word;
      }
    } else {
      fail(origin_ + start, std::string("unexpected \"") + ch + "\" in action");
    }
    return o;
  }

  const std::string& s_;
  size_t origin_;
  size_t i_ = 0;
};

// ---- the template structure -----------------------------------------------

struct Token {
  bool action = false;
  std::string text;
  size_t pos = 0;  // of the action's body in the template
};

constexpr const char* kSpace = " \t\r\n";

void trim_left(std::string& t) {
  size_t k = t.find_first_not_of(kSpace);
  t.erase(0, k == std::string::npos ? t.size() : k);
}

void trim_right(std::string& t) {
  size_t k = t.find_last_not_of(kSpace);
  t.erase(k == std::string::npos ? 0 : k + 1);
}

// Text and actions in order; "{{- " and " -}}" trim the neighbouring text.
std::vector<Token> tokenize(const std::string& format) {
  std::vector<Token> out;
  size_t pos = 0;
  bool trim_next = false;
  for (;;) {
    size_t open = format.find("{{", pos);
    std::string text = format.substr(pos, open == std::string::npos ? std::string::npos : open - pos);
    if (trim_next) trim_left(text);
    if (open == std::string::npos) {
      if (!text.empty()) out.push_back({false, text, pos});
      return out;
    }
    size_t body = open + 2;
    if (body + 1 < format.size() && format[body] == '-' && std::isspace(static_cast<unsigned char>(format[body + 1]))) {
      trim_right(text);
      body += 1;
    }
    if (!text.empty()) out.push_back({false, text, pos});
    size_t close = format.find("}}", body);
    if (close == std::string::npos) fail(open, "unclosed action");
    size_t end = close;
    trim_next = end >= body + 2 && format[end - 1] == '-' && std::isspace(static_cast<unsigned char>(format[end - 2]));
    if (trim_next) --end;
    out.push_back({true, format.substr(body, end - body), body});
    pos = close + 2;
  }
}

class TreeBuilder {
 public:
  explicit TreeBuilder(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  std::vector<Node> parse() {
    std::string stop;
    auto nodes = list(stop);
    if (!stop.empty()) fail(last_pos_, "unexpected {{" + stop + "}}");
    return nodes;
  }

 private:
  // Parses nodes up to an {{else}}/{{end}} (returned in `stop`, "" at the end).
  std::vector<Node> list(std::string& stop) {
    std::vector<Node> nodes;
    while (next_ < tokens_.size()) {
      const Token& t = tokens_[next_++];
      last_pos_ = t.pos;
      if (!t.action) {
        Node n;
        n.text = t.text;
        nodes.push_back(std::move(n));
        continue;
      }
      if (t.text.find_first_not_of(" \t\r\n") != std::string::npos &&
          t.text.substr(t.text.find_first_not_of(" \t\r\n"), 2) == "/*")
        continue;  // a comment
      ActionParser p(t.text, t.pos);
      std::string kw = p.keyword();
      if (kw == "end") {
        if (!p.at_end()) fail(t.pos, "unexpected words after end");
        stop = "end";
        return nodes;
      }
      if (kw == "else") {
        stop = "else";
        // "else if ...": the rest of the action is the nested if's condition.
        else_rest_ = t.text.substr(t.text.find("else") + 4);
        else_pos_ = t.pos;
        return nodes;
      }
      if (kw.empty()) {
        Node n;
        n.kind = Node::Kind::Action;
        n.pipeline = p.pipeline();
        nodes.push_back(std::move(n));
        continue;
      }
      nodes.push_back(control(kw, p, t.pos));
    }
    stop.clear();
    return nodes;
  }

  Node control(const std::string& kw, ActionParser& p, size_t pos) {
    Node n;
    n.kind = kw == "if" ? Node::Kind::If : kw == "range" ? Node::Kind::Range : Node::Kind::With;
    if (p.at_end()) fail(pos, "missing value for " + kw);
    n.pipeline = p.pipeline();
    std::string stop;
    n.body = list(stop);
    if (stop == "else") {
      std::string rest = else_rest_;
      size_t rest_pos = else_pos_;
      ActionParser ep(rest, rest_pos);
      std::string nested = ep.keyword();
      if (nested == "if" && n.kind == Node::Kind::If) {
        // {{else if}} chains share the outer {{end}}.
        n.otherwise.push_back(control("if", ep, rest_pos));
        return n;
      }
      if (!ep.at_end()) fail(rest_pos, "unexpected words after else");
      n.otherwise = list(stop);
    }
    if (stop != "end") fail(pos, "unexpected EOF: {{" + kw + "}} without {{end}}");
    return n;
  }

  std::vector<Token> tokens_;
  size_t next_ = 0;
  size_t last_pos_ = 0;
  std::string else_rest_;
  size_t else_pos_ = 0;
};

// ---- evaluation -------------------------------------------------------------

bool truthy(const json& v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) return v.get<int64_t>() != 0;
  if (v.is_number()) return v.get<double>() != 0;
  if (v.is_string()) return !v.get_ref<const std::string&>().empty();
  return !v.empty();
}

std::string printf_go(const std::vector<json>& args) {
  if (args.empty() || !args[0].is_string()) throw UsageError("template: printf needs a format string");
  const std::string& f = args[0].get_ref<const std::string&>();
  std::string out;
  size_t next = 1;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%' || i + 1 >= f.size()) {
      out += f[i];
      continue;
    }
    char verb = f[++i];
    if (verb == '%') {
      out += '%';
      continue;
    }
    if (next >= args.size()) {
      out += std::string("%!") + verb + "(MISSING)";
      continue;
    }
    const json& a = args[next++];
    if (verb == 'q') out += json(a.is_string() ? a.get<std::string>() : go_format(a)).dump();
    else out += go_format(a);
  }
  return out;
}

int compare(const json& a, const json& b, const std::string& fn) {
  if (a.is_number() && b.is_number()) {
    double x = a.get<double>(), y = b.get<double>();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) return a.get_ref<const std::string&>().compare(b.get_ref<const std::string&>());
  if (fn == "eq" || fn == "ne") return a == b ? 0 : 1;
  throw UsageError("template: " + fn + ": incompatible types for comparison");
}

class Evaluator {
 public:
  explicit Evaluator(const json& root) : root_(root) {}

  void run(const std::vector<Node>& nodes, const json& dot, std::string& out) {
    for (const Node& n : nodes) {
      switch (n.kind) {
        case Node::Kind::Text:
          out += n.text;
          break;
        case Node::Kind::Action:
          out += go_format(pipeline(n.pipeline, dot));
          break;
        case Node::Kind::If:
          run(truthy(pipeline(n.pipeline, dot)) ? n.body : n.otherwise, dot, out);
          break;
        case Node::Kind::With: {
          json v = pipeline(n.pipeline, dot);
          if (truthy(v)) run(n.body, v, out);
          else run(n.otherwise, dot, out);
          break;
        }
        case Node::Kind::Range: {
          json v = pipeline(n.pipeline, dot);
          if (!truthy(v)) {
            run(n.otherwise, dot, out);
          } else if (v.is_array()) {
            for (const json& e : v) run(n.body, e, out);
          } else if (v.is_object()) {
            for (auto& [k, e] : v.items()) run(n.body, e, out);  // nlohmann keeps keys sorted
          } else {
            throw UsageError("template: range can't iterate over " + go_format(v));
          }
          break;
        }
      }
    }
  }

 private:
  json pipeline(const Pipeline& p, const json& dot) {
    json value;
    bool have = false;
    for (const Command& c : p.commands) {
      value = command(c, dot, have ? &value : nullptr);
      have = true;
    }
    return value;
  }

  json field(const json& start, const std::vector<std::string>& path) {
    const json* cur = &start;
    std::string walked;
    for (const std::string& key : path) {
      walked += "." + key;
      if (cur->is_null()) return nullptr;
      if (!cur->is_object()) throw UsageError("template: can't evaluate field " + key + " in " + walked);
      auto it = cur->find(key);
      if (it == cur->end()) throw UsageError("template: map has no entry for key \"" + key + "\" (" + walked + ")");
      cur = &*it;
    }
    return *cur;
  }

  json operand(const Operand& o, const json& dot) {
    switch (o.kind) {
      case Operand::Kind::Field:
        return field(dot, o.path);
      case Operand::Kind::Root:
        return field(root_, o.path);
      case Operand::Kind::Literal:
        return o.literal;
      case Operand::Kind::Sub:
        return pipeline(*o.sub, dot);
      case Operand::Kind::Function:
        return call(o.name, {});
    }
    return nullptr;
  }

  json command(const Command& c, const json& dot, const json* piped) {
    const Operand& first = c.operands.front();
    if (first.kind != Operand::Kind::Function) {
      if (c.operands.size() > 1) throw UsageError("template: can't give arguments to a non-function value");
      if (piped) throw UsageError("template: can't pipe into a non-function value");
      return operand(first, dot);
    }
    std::vector<json> args;
    for (size_t i = 1; i < c.operands.size(); ++i) args.push_back(operand(c.operands[i], dot));
    if (piped) args.push_back(*piped);
    return call(first.name, args);
  }

  static void want(const std::string& fn, const std::vector<json>& args, size_t n) {
    if (args.size() != n)
      throw UsageError("template: wrong number of args for " + fn + ": want " + std::to_string(n) + " got " +
                       std::to_string(args.size()));
  }

  json call(const std::string& fn, const std::vector<json>& args) {
    if (fn == "json") {
      want(fn, args, 1);
      return args[0].dump();
    }
    if (fn == "index") {
      if (args.empty()) throw UsageError("template: index needs a value");
      json cur = args[0];
      for (size_t i = 1; i < args.size(); ++i) {
        if (cur.is_object() && args[i].is_string()) {
          auto it = cur.find(args[i].get<std::string>());
          cur = it == cur.end() ? json(nullptr) : *it;
        } else if (cur.is_array() && args[i].is_number_integer()) {
          int64_t k = args[i].get<int64_t>();
          if (k < 0 || k >= static_cast<int64_t>(cur.size()))
            throw UsageError("template: index out of range: " + std::to_string(k));
          cur = cur[static_cast<size_t>(k)];
        } else if (cur.is_null()) {
          return nullptr;
        } else {
          throw UsageError("template: can't index item of type " + std::string(cur.type_name()));
        }
      }
      return cur;
    }
    if (fn == "join") {
      want(fn, args, 2);
      if (!args[0].is_array() && !args[0].is_null()) throw UsageError("template: join needs a list");
      std::string out;
      bool first = true;
      if (args[0].is_array())
        for (const json& e : args[0]) {
          if (!first) out += go_format(args[1]);
          out += go_format(e);
          first = false;
        }
      return out;
    }
    if (fn == "split") {
      want(fn, args, 2);
      std::string s = go_format(args[0]), sep = go_format(args[1]);
      json out = json::array();
      if (sep.empty()) {
        for (char ch : s) out.push_back(std::string(1, ch));
        return out;
      }
      size_t pos = 0;
      for (size_t at; (at = s.find(sep, pos)) != std::string::npos; pos = at + sep.size()) out.push_back(s.substr(pos, at - pos));
      out.push_back(s.substr(pos));
      return out;
    }
    if (fn == "upper" || fn == "lower" || fn == "title") {
      want(fn, args, 1);
      std::string s = go_format(args[0]);
      bool start = true;
      for (char& ch : s) {
        unsigned char u = static_cast<unsigned char>(ch);
        if (fn == "upper") ch = static_cast<char>(std::toupper(u));
        else if (fn == "lower") ch = static_cast<char>(std::tolower(u));
        else {
          if (start && std::isalpha(u)) ch = static_cast<char>(std::toupper(u));
          start = std::isspace(u) != 0;
        }
      }
      return s;
    }
    if (fn == "len") {
      want(fn, args, 1);
      if (args[0].is_string()) return args[0].get_ref<const std::string&>().size();
      if (args[0].is_array() || args[0].is_object()) return args[0].size();
      if (args[0].is_null()) return 0;
      throw UsageError("template: len of " + std::string(args[0].type_name()));
    }
    if (fn == "print" || fn == "println") {
      std::string out;
      for (size_t i = 0; i < args.size(); ++i) {
        // print puts spaces between operands when neither is a string; println always.
        if (i > 0 && (fn == "println" || (!args[i - 1].is_string() && !args[i].is_string()))) out += ' ';
        out += go_format(args[i]);
      }
      if (fn == "println") out += '\n';
      return out;
    }
    if (fn == "printf") return printf_go(args);
    if (fn == "not") {
      want(fn, args, 1);
      return !truthy(args[0]);
    }
    if (fn == "and" || fn == "or") {
      if (args.empty()) throw UsageError("template: " + fn + " needs arguments");
      for (const json& a : args)
        if (truthy(a) != (fn == "and")) return a;
      return args.back();
    }
    if (fn == "eq") {
      if (args.size() < 2) throw UsageError("template: eq needs two arguments");
      for (size_t i = 1; i < args.size(); ++i)
        if (compare(args[0], args[i], fn) == 0) return true;
      return false;
    }
    if (fn == "ne" || fn == "lt" || fn == "le" || fn == "gt" || fn == "ge") {
      want(fn, args, 2);
      int c = compare(args[0], args[1], fn);
      return fn == "ne" ? c != 0 : fn == "lt" ? c < 0 : fn == "le" ? c <= 0 : fn == "gt" ? c > 0 : c >= 0;
    }
    throw UsageError("template: function \"" + fn + "\" not defined");
  }

  const json& root_;
};

}  // namespace

std::string go_format(const json& v) {
  switch (v.type()) {
    case json::value_t::null:
      return "<nil>";
    case json::value_t::string:
      return v.get<std::string>();
    case json::value_t::boolean:
      return v.get<bool>() ? "true" : "false";
    case json::value_t::number_float: {
      double d = v.get<double>();
      if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(static_cast<int64_t>(d));
      std::ostringstream os;
      os << d;
      return os.str();
    }
    case json::value_t::array: {
      std::string out = "[";
      for (size_t i = 0; i < v.size(); ++i) out += (i ? " " : "") + go_format(v[i]);
      return out + "]";
    }
    case json::value_t::object: {
      std::string out = "map[";
      bool first = true;
      for (auto& [k, e] : v.items()) {
        out += (first ? "" : " ") + k + ":" + go_format(e);
        first = false;
      }
      return out + "]";
    }
    default:
      return v.dump();
  }
}

std::string render_template(const std::string& format, const json& data) {
  std::vector<Node> tree = TreeBuilder(tokenize(format)).parse();
  std::string out;
  Evaluator(data).run(tree, data, out);
  return out;
}

}  // namespace berth
