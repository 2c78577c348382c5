#include "spec/merge.h"

#include <unordered_map>

namespace berth::spec {

namespace {

// A stable text form of a node, used to recognise identical list items.
void canonical(const Node& n, std::string& out) {
  switch (n.kind) {
    case Node::Kind::Null: out += "~"; break;
    case Node::Kind::Scalar:
      out += '"';
      out += n.scalar;
      out += '"';
      break;
    case Node::Kind::Sequence:
      out += '[';
      for (auto& i : n.items) {
        canonical(i, out);
        out += ',';
      }
      out += ']';
      break;
    case Node::Kind::Mapping:
      out += '{';
      for (auto& e : n.entries) {
        out += e.key;
        out += ':';
        canonical(e.value, out);
        out += ',';
      }
      out += '}';
      break;
  }
}

std::string canonical(const Node& n) {
  std::string out;
  canonical(n, out);
  return out;
}

void to_sequence(Node& n) {
  if (n.is_scalar()) {
    Node item = n;
    n = Node::make_sequence(item.loc);
    n.items.push_back(std::move(item));
  } else if (n.is_null()) {
    n = Node::make_sequence(n.loc);
  }
}

// Append items of `over` to `base`, replacing items whose identity matches.
template <class KeyFn>
void merge_keyed_list(Node& base, const Node& over, KeyFn key) {
  to_sequence(base);
  Node o = over;
  to_sequence(o);
  if (!base.is_sequence() || !o.is_sequence()) {
    base = over;
    return;
  }
  std::unordered_map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < base.items.size(); ++i) index.emplace(key(base.items[i]), i);
  for (auto& item : o.items) {
    std::string k = key(item);
    if (auto it = index.find(k); it != index.end()) {
      base.items[it->second] = item;
    } else {
      index.emplace(k, base.items.size());
      base.items.push_back(item);
    }
  }
}

std::string volume_target(const Node& n) {
  if (n.is_mapping()) {
    const Node* t = n.find("target");
    return t && t->is_scalar() ? t->scalar : canonical(n);
  }
  if (!n.is_scalar()) return canonical(n);
  const std::string& s = n.scalar;
  std::size_t first = s.find(':');
  if (first == std::string::npos) return s;
  std::size_t second = s.find(':', first + 1);
  return s.substr(first + 1, second == std::string::npos ? std::string::npos : second - first - 1);
}

std::string file_ref_target(const Node& n) {
  if (n.is_mapping()) {
    if (const Node* t = n.find("target"); t && t->is_scalar()) return "t:" + t->scalar;
    if (const Node* s = n.find("source"); s && s->is_scalar()) return "s:" + s->scalar;
  }
  return n.is_scalar() ? "s:" + n.scalar : canonical(n);
}

std::string env_file_path(const Node& n) {
  if (n.is_mapping())
    if (const Node* p = n.find("path"); p && p->is_scalar()) return p->scalar;
  return n.is_scalar() ? n.scalar : canonical(n);
}

bool is_dict_key(const std::string& path) {
  static const char* const dicts[] = {
      "environment", "labels", "annotations", "sysctls", "storage_opt", "extra_hosts",
      "build.args", "build.labels", "build.additional_contexts", "build.extra_hosts", "deploy.labels",
      "logging.options", "driver_opts", "depends_on", "networks", "models"};
  for (const char* d : dicts)
    if (path == d) return true;
  return false;
}

bool replaces(const std::string& path) {
  return path == "command" || path == "entrypoint" || path == "healthcheck.test" ||
         (path.size() > 8 && path.compare(path.size() - 8, 8, ".command") == 0);
}

void merge_at(Node& base, const Node& over, const std::string& path);

void merge_mapping(Node& base, const Node& over, const std::string& path) {
  for (const auto& e : over.entries) {
    if (e.value.tag == "!reset") {
      base.erase(e.key);
      continue;
    }
    Node* existing = base.find(e.key);
    std::string child = path.empty() ? e.key : path + "." + e.key;
    if (!existing || e.value.tag == "!override") {
      base.set(e.key, e.value, e.key_loc);
      continue;
    }
    merge_at(*existing, e.value, child);
  }
}

void merge_at(Node& base, const Node& over, const std::string& path) {
  if (replaces(path)) {
    base = over;
    return;
  }
  if (path == "ports") {
    merge_keyed_list(base, over, [](const Node& n) { return canonical(n); });
    return;
  }
  if (path == "volumes") {
    merge_keyed_list(base, over, volume_target);
    return;
  }
  if (path == "secrets" || path == "configs") {
    merge_keyed_list(base, over, file_ref_target);
    return;
  }
  if (path == "env_file" || path == "label_file") {
    merge_keyed_list(base, over, env_file_path);
    return;
  }
  if (path == "build") {
    Node o = over;
    if (base.is_scalar()) {
      Node ctx = base;
      base = Node::make_mapping(ctx.loc);
      base.set("context", std::move(ctx));
    }
    if (o.is_scalar()) {
      Node ctx = o;
      o = Node::make_mapping(ctx.loc);
      o.set("context", std::move(ctx));
    }
    if (base.is_mapping() && o.is_mapping()) merge_mapping(base, o, path);
    else base = over;
    return;
  }
  if (path == "logging" && base.is_mapping() && over.is_mapping()) {
    const Node* bd = base.find("driver");
    const Node* od = over.find("driver");
    if (bd && od && bd->is_scalar() && od->is_scalar() && bd->scalar != od->scalar) {
      base = over;  // a different driver's options make no sense: replace
      return;
    }
  }
  if (is_dict_key(path)) {
    Node o = over;
    list_to_mapping(base);
    list_to_mapping(o);
    if (base.is_mapping() && o.is_mapping()) {
      merge_mapping(base, o, path);
      return;
    }
    base = over;
    return;
  }
  if (base.is_mapping() && over.is_mapping()) {
    merge_mapping(base, over, path);
    return;
  }
  if ((base.is_sequence() || over.is_sequence()) && (base.is_scalar() || over.is_scalar() || base.is_sequence()) &&
      !base.is_mapping() && !over.is_mapping() && !base.is_null() && !over.is_null()) {
    // string_or_list keys (dns, tmpfs, ...): a scalar is a one-item list.
    merge_keyed_list(base, over, [](const Node& n) { return canonical(n); });
    return;
  }
  base = over;
}

}  // namespace

void list_to_mapping(Node& node) {
  if (!node.is_sequence()) return;
  Node out = Node::make_mapping(node.loc);
  for (auto& item : node.items) {
    if (!item.is_scalar()) return;  // leave it for the decoder to report
    std::size_t eq = item.scalar.find('=');
    if (eq == std::string::npos) {
      Node value;
      value.loc = item.loc;
      out.set(item.scalar, std::move(value), item.loc);
    } else {
      out.set(item.scalar.substr(0, eq), Node::make_scalar(item.scalar.substr(eq + 1), item.loc), item.loc);
    }
  }
  node = std::move(out);
}

void merge_service(Node& base, const Node& override_node) {
  if (!base.is_mapping() || !override_node.is_mapping()) {
    base = override_node;
    return;
  }
  merge_mapping(base, override_node, "");
}

void merge_project(Node& base, const Node& over) {
  for (const auto& e : over.entries) {
    if (e.value.tag == "!reset") {
      base.erase(e.key);
      continue;
    }
    Node* existing = base.find(e.key);
    if (!existing || e.value.tag == "!override" || !existing->is_mapping() || !e.value.is_mapping()) {
      base.set(e.key, e.value, e.key_loc);
      continue;
    }
    if (e.key == "services") {
      // Index the base services once: projects can have hundreds.
      std::unordered_map<std::string, std::size_t> index;
      for (std::size_t i = 0; i < existing->entries.size(); ++i) index.emplace(existing->entries[i].key, i);
      for (const auto& s : e.value.entries) {
        auto it = index.find(s.key);
        if (s.value.tag == "!reset") {
          if (it != index.end()) existing->entries[it->second].value = Node{};
          continue;
        }
        if (it == index.end()) {
          index.emplace(s.key, existing->entries.size());
          existing->entries.push_back(s);
        } else {
          merge_service(existing->entries[it->second].value, s.value);
        }
      }
      continue;
    }
    // networks, volumes, configs, secrets, models, x-*: merge each entry.
    for (const auto& item : e.value.entries) {
      Node* target = existing->find(item.key);
      if (!target || !target->is_mapping() || !item.value.is_mapping()) {
        existing->set(item.key, item.value, item.key_loc);
        continue;
      }
      merge_at(*target, item.value, "");
    }
  }
}

}  // namespace berth::spec
