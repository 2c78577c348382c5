// Daemon-wide registry options: the registries.json file (search, block,
// insecure, mirrors, certs.d) and the rules that apply them to a name.
#include <nlohmann/json.hpp>

#include "base/error.h"
#include "base/fs.h"
#include "images/registry.h"

namespace berth::images {

namespace {

std::vector<std::string> string_list(const nlohmann::json& j, const std::string& key, const std::string& path) {
  if (!j.is_array()) throw Error(path + ": \"" + key + "\" must be a list of strings");
  std::vector<std::string> out;
  for (auto& item : j) {
    if (!item.is_string() || item.get<std::string>().empty()) throw Error(path + ": \"" + key + "\" must be a list of non-empty strings, got " + item.dump());
    std::string s = item.get<std::string>();
    // Entries are registry names; "https://host/" is accepted as docker's daemon.json does for mirrors.
    for (const char* scheme : {"https://", "http://"})
      if (s.rfind(scheme, 0) == 0) s = s.substr(std::string(scheme).size());
    while (!s.empty() && s.back() == '/') s.pop_back();
    out.push_back(s);
  }
  return out;
}

std::string host_of(const std::string& registry) {
  if (!registry.empty() && registry[0] == '[') return registry.substr(0, registry.find(']') + 1);
  auto colon = registry.rfind(':');
  return colon == std::string::npos ? registry : registry.substr(0, colon);
}

}  // namespace

void load_registry_config(const std::string& path, RegistryOptions& options) {
  std::string text;
  if (!read_file_if_exists(path, text)) return;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": malformed JSON: " + e.what());
  }
  if (!j.is_object()) throw Error(path + ": not a JSON object");
  for (auto& [key, value] : j.items())
    if (key != "registries" && key != "mirrors" && key != "certs.d") throw Error(path + ": unknown key \"" + key + "\" (want registries, mirrors, certs.d)");
  options.config_path = path;
  if (j.contains("registries")) {
    auto& r = j["registries"];
    if (!r.is_object()) throw Error(path + ": \"registries\" must be an object");
    for (auto& [key, value] : r.items()) {
      if (key == "search")
        options.search = string_list(value, "registries.search", path);
      else if (key == "block")
        options.blocked = string_list(value, "registries.block", path);
      else if (key == "insecure")
        for (auto& s : string_list(value, "registries.insecure", path)) options.insecure.push_back(s);
      else
        throw Error(path + ": unknown key \"registries." + key + "\" (want search, block, insecure)");
    }
  }
  if (j.contains("mirrors")) {
    auto& m = j["mirrors"];
    if (!m.is_object()) throw Error(path + ": \"mirrors\" must be an object: registry -> list of mirrors");
    for (auto& [registry, list] : m.items()) {
      options.mirrors[registry] = string_list(list, "mirrors." + registry, path);
      // "http://mirror:5000" (as docker's registry-mirrors) is a plain http mirror.
      for (size_t i = 0; i < list.size(); ++i)
        if (list[i].get<std::string>().rfind("http://", 0) == 0) options.insecure.push_back(options.mirrors[registry][i]);
    }
  }
  if (j.contains("certs.d")) options.certs_dirs = string_list(j["certs.d"], "certs.d", path);
}

void check_not_blocked(const std::string& registry, const RegistryOptions& options) {
  std::string host = host_of(registry);
  for (auto& b : options.blocked) {
    bool hit = b == registry || b == host;
    if (!hit && b.rfind("*.", 0) == 0) {
      std::string suffix = b.substr(1);  // ".domain"
      hit = host.size() > suffix.size() && host.compare(host.size() - suffix.size(), suffix.size(), suffix) == 0;
    }
    if (hit)
      throw Error("registry " + registry + " is blocked by registries.block" +
                  (options.config_path.empty() ? std::string() : " in " + options.config_path) + " (entry \"" + b + "\")");
  }
}

std::vector<Reference> search_references(const std::string& name, const RegistryOptions& options) {
  std::string first = name.substr(0, name.find('/'));
  bool qualified = name.find('/') != std::string::npos &&
                   (first.find('.') != std::string::npos || first.find(':') != std::string::npos || first == "localhost");
  if (qualified || options.search.empty()) return {parse_reference(name)};
  std::vector<Reference> out;
  for (auto& registry : options.search) out.push_back(parse_reference(registry + "/" + name));
  return out;
}

}  // namespace berth::images
