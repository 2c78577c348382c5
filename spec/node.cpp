#include "spec/node.h"

#include <yaml.h>

#include <unordered_map>

#include <unordered_set>

#include "base/error.h"

namespace berth::spec {

std::string Location::str() const {
  std::string out = file ? *file : std::string("<input>");
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(col);
  return out;
}

const Node* Node::find(std::string_view key) const {
  for (const auto& e : entries)
    if (e.key == key) return &e.value;
  return nullptr;
}

Node* Node::find(std::string_view key) {
  for (auto& e : entries)
    if (e.key == key) return &e.value;
  return nullptr;
}

Node& Node::set(std::string key, Node value, Location key_loc) {
  if (Node* existing = find(key)) {
    *existing = std::move(value);
    return *existing;
  }
  kind = Kind::Mapping;
  entries.push_back(Entry{std::move(key), std::move(key_loc), std::move(value)});
  return entries.back().value;
}

bool Node::erase(std::string_view key) {
  for (auto it = entries.begin(); it != entries.end(); ++it)
    if (it->key == key) {
      entries.erase(it);
      return true;
    }
  return false;
}

Node Node::make_scalar(std::string text, Location loc, bool plain) {
  Node n;
  n.kind = Kind::Scalar;
  n.scalar = std::move(text);
  n.plain = plain;
  n.loc = std::move(loc);
  return n;
}

Node Node::make_mapping(Location loc) {
  Node n;
  n.kind = Kind::Mapping;
  n.loc = std::move(loc);
  return n;
}

Node Node::make_sequence(Location loc) {
  Node n;
  n.kind = Kind::Sequence;
  n.loc = std::move(loc);
  return n;
}

std::string Node::kind_name() const {
  switch (kind) {
    case Kind::Null: return "null";
    case Kind::Scalar: return "a scalar";
    case Kind::Sequence: return "a sequence";
    case Kind::Mapping: return "a mapping";
  }
  return "?";
}

namespace {

// Builds the located tree from libyaml's event stream (libyaml is several
// times faster than yaml-cpp and does not recurse). Aliases are expanded by
// copying the anchored subtree; every copy counts against the node budget so
// that alias bombs fail fast instead of exhausting memory.
class Builder {
 public:
  Builder(std::shared_ptr<const std::string> file, const ParseLimits& limits, std::string_view text)
      : file_(std::move(file)),
        limits_(limits),
        budget_(std::max(limits.min_nodes, limits.nodes_per_byte * text.size())) {
    yaml_parser_initialize(&parser_);
    yaml_parser_set_input_string(&parser_, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  }
  ~Builder() { yaml_parser_delete(&parser_); }
  Builder(const Builder&) = delete;
  Builder& operator=(const Builder&) = delete;

  Node build() {
    Event e = next();
    if (e->type == YAML_STREAM_START_EVENT) e = next();
    if (e->type != YAML_DOCUMENT_START_EVENT) return Node::make_mapping(Location{file_, 1, 1});
    e = next();
    // Only the first document counts, as in compose.
    return node(e, 0).first;
  }

 private:
  // Owns one libyaml event.
  class Event {
   public:
    Event() = default;
    Event(Event&& o) noexcept : event_(o.event_), owned_(std::exchange(o.owned_, false)) {}
    Event& operator=(Event&& o) noexcept {
      if (this != &o) {
        release();
        event_ = o.event_;
        owned_ = std::exchange(o.owned_, false);
      }
      return *this;
    }
    ~Event() { release(); }
    yaml_event_t* get() { return &event_; }
    yaml_event_t* operator->() { return &event_; }
    void own() { owned_ = true; }

   private:
    void release() {
      if (owned_) yaml_event_delete(&event_);
      owned_ = false;
    }
    yaml_event_t event_{};
    bool owned_ = false;
  };

  Event next() {
    Event e;
    if (!yaml_parser_parse(&parser_, e.get())) {
      const yaml_mark_t& m = parser_.problem_mark;
      std::string problem = parser_.problem ? parser_.problem : "syntax error";
      if (parser_.context) problem = std::string(parser_.context) + ": " + problem;
      throw Error(Location{file_, static_cast<int>(m.line) + 1, static_cast<int>(m.column) + 1}.str() +
                  ": invalid YAML: " + problem);
    }
    e.own();
    return e;
  }

  Location location(const yaml_mark_t& m) const {
    return Location{file_, static_cast<int>(m.line) + 1, static_cast<int>(m.column) + 1};
  }

  void count(std::size_t n, const Location& loc) {
    nodes_ += n;
    if (nodes_ > budget_)
      throw Error(loc.str() + ": document expands to more than " + std::to_string(budget_) +
                  " nodes (alias bomb?)");
  }

  static std::string text(const yaml_char_t* s) { return s ? reinterpret_cast<const char*>(s) : std::string(); }

  // Returns the node and how many nodes it contains (for alias accounting).
  std::pair<Node, std::size_t> node(Event& e, std::size_t depth) {
    Location loc = location(e->start_mark);
    if (depth > limits_.max_depth)
      throw Error(loc.str() + ": document nesting is deeper than " + std::to_string(limits_.max_depth) + " levels");
    Node out;
    out.loc = loc;
    std::size_t size = 1;
    std::string anchor;
    switch (e->type) {
      case YAML_ALIAS_EVENT: {
        std::string name = text(e->data.alias.anchor);
        auto it = anchors_.find(name);
        if (it == anchors_.end()) throw Error(loc.str() + ": unknown anchor \"" + name + "\"");
        count(it->second.second, loc);
        Node copy = it->second.first;
        return {std::move(copy), it->second.second};
      }
      case YAML_SCALAR_EVENT: {
        count(1, loc);
        anchor = text(e->data.scalar.anchor);
        std::string tag = text(e->data.scalar.tag);
        out.scalar.assign(reinterpret_cast<const char*>(e->data.scalar.value), e->data.scalar.length);
        bool plain_style = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        out.plain = plain_style && tag.empty();
        if (!tag.empty() && tag != "!") out.tag = tag;
        bool null_like = out.scalar.empty() || out.scalar == "~" || out.scalar == "null" || out.scalar == "Null" ||
                         out.scalar == "NULL";
        out.kind = (out.plain && null_like) ? Node::Kind::Null : Node::Kind::Scalar;
        if (out.kind == Node::Kind::Null) out.scalar.clear();
        break;
      }
      case YAML_SEQUENCE_START_EVENT: {
        count(1, loc);
        anchor = text(e->data.sequence_start.anchor);
        std::string tag = text(e->data.sequence_start.tag);
        if (!tag.empty() && tag != "!") out.tag = tag;
        out.kind = Node::Kind::Sequence;
        for (;;) {
          Event item = next();
          if (item->type == YAML_SEQUENCE_END_EVENT) break;
          auto [child, n] = node(item, depth + 1);
          size += n;
          out.items.push_back(std::move(child));
        }
        break;
      }
      case YAML_MAPPING_START_EVENT: {
        count(1, loc);
        anchor = text(e->data.mapping_start.anchor);
        std::string tag = text(e->data.mapping_start.tag);
        if (!tag.empty() && tag != "!") out.tag = tag;
        out.kind = Node::Kind::Mapping;
        size += mapping(out, depth);
        break;
      }
      default:
        throw Error(loc.str() + ": invalid YAML: unexpected event");
    }
    if (!anchor.empty()) anchors_[anchor] = {out, size};
    return {std::move(out), size};
  }

  std::size_t mapping(Node& out, std::size_t depth) {
    std::size_t size = 0;
    std::vector<Node> merge_sources;
    std::unordered_set<std::string> seen;
    for (;;) {
      Event key_event = next();
      if (key_event->type == YAML_MAPPING_END_EVENT) break;
      Location key_loc = location(key_event->start_mark);
      auto [key, key_size] = node(key_event, depth + 1);
      if (!key.is_scalar() && !key.is_null())
        throw Error(key_loc.str() + ": mapping keys must be scalars, not " + key.kind_name());
      Event value_event = next();
      auto [value, value_size] = node(value_event, depth + 1);
      size += key_size + value_size;
      if (key.scalar == "<<" && key.plain) {
        if (value.is_mapping()) {
          merge_sources.push_back(std::move(value));
        } else if (value.is_sequence()) {
          for (auto& item : value.items) {
            if (!item.is_mapping())
              throw Error(item.loc.str() + ": merge key \"<<\" expects mappings, got " + item.kind_name());
            merge_sources.push_back(std::move(item));
          }
        } else {
          throw Error(value.loc.str() + ": merge key \"<<\" expects a mapping or a sequence of mappings, got " +
                      value.kind_name());
        }
        continue;
      }
      if (!seen.insert(key.scalar).second)
        throw Error(key_loc.str() + ": mapping key \"" + key.scalar + "\" is defined more than once");
      out.entries.push_back(Node::Entry{std::move(key.scalar), key_loc, std::move(value)});
    }
    // Explicit keys win over merged ones; among merged mappings the first wins (YAML merge spec).
    for (auto& source : merge_sources)
      for (auto& entry : source.entries)
        if (seen.insert(entry.key).second) out.entries.push_back(std::move(entry));
    return size;
  }

  std::shared_ptr<const std::string> file_;
  const ParseLimits& limits_;
  std::size_t budget_;
  std::size_t nodes_ = 0;
  yaml_parser_t parser_{};
  std::unordered_map<std::string, std::pair<Node, std::size_t>> anchors_;
};

}  // namespace

namespace {

// Refuse flow-style nesting bombs ("[[[[...") before parsing at all. Approximate (a
// '[' inside a plain scalar counts too) but only matters far past any real file.
void check_flow_depth(std::string_view text, const std::shared_ptr<const std::string>& file, std::size_t max_depth) {
  std::size_t depth = 0;
  int line = 1, col = 0;
  char quote = 0;
  bool comment = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    ++col;
    if (c == '\n') {
      ++line;
      col = 0;
      comment = false;
      continue;
    }
    if (comment) continue;
    if (quote) {
      if (c == quote) quote = 0;
      else if (c == '\\' && quote == '"') ++i, ++col;
      continue;
    }
    if (c == '#' && (i == 0 || text[i - 1] == ' ' || text[i - 1] == '\t')) comment = true;
    else if ((c == '"' || c == '\'') && (i == 0 || std::string_view(" \t[{,:").find(text[i - 1]) != std::string_view::npos)) quote = c;
    else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        throw Error(Location{file, line, col}.str() + ": document nesting is deeper than " + std::to_string(max_depth) +
                    " levels");
    } else if ((c == ']' || c == '}') && depth > 0) --depth;
  }
}

}  // namespace

Node parse_yaml(std::string_view text, const std::string& file, const ParseLimits& limits) {
  auto file_name = std::make_shared<const std::string>(file);
  check_flow_depth(text, file_name, limits.max_depth);
  Builder builder(file_name, limits, text);
  Node out = builder.build();
  if (out.is_null()) out = Node::make_mapping(Location{file_name, 1, 1});
  return out;
}

}  // namespace berth::spec
