// Rendering the model: JSON (the canonical form), YAML like `docker compose
// config`, and the per-service config hash.
#include <openssl/evp.h>

#include <cctype>
#include <cstdio>

#include "base/error.h"
#include "spec/decode.h"
#include "spec/spec.h"

namespace berth::spec {

Json to_json_value(const Service& service) { return encode(service); }

Json to_json_value(const Project& project) {
  Json out = Json::object();
  out["name"] = project.name;
  Json services = Json::object();
  for (auto& [name, s] : project.services) services[name] = encode(s);
  out["services"] = std::move(services);
  auto section = [&](const char* key, const auto& objects, auto encoder) {
    if (objects.empty()) return;
    Json j = Json::object();
    for (auto& [name, o] : objects) j[name] = encoder(o);
    out[key] = std::move(j);
  };
  section("networks", project.networks, [](const Network& n) { return encode(n); });
  section("volumes", project.volumes, [](const Volume& v) { return encode(v); });
  section("secrets", project.secrets, [](const FileObject& s) { return encode_secret(s); });
  section("configs", project.configs, [](const FileObject& c) { return encode_config(c); });
  section("models", project.models, [](const Model& m) { return encode(m); });
  for (auto& [k, v] : project.extensions.items()) out[k] = v;
  return out;
}

namespace {

// The rendered project is valid compose input again: a literal "$" in a
// value must be written "$$" or re-loading would interpolate it.
void escape_dollars(Json& j) {
  if (j.is_string()) {
    const std::string& s = j.get_ref<const std::string&>();
    if (s.find('$') == std::string::npos) return;
    std::string out;
    for (char c : s) {
      out += c;
      if (c == '$') out += '$';
    }
    j = out;
  } else if (j.is_structured()) {
    for (auto& item : j) escape_dollars(item);
  }
}

Json rendered(const Project& project) {
  Json j = to_json_value(project);
  escape_dollars(j);
  return j;
}

}  // namespace

std::string to_json(const Project& project) { return rendered(project).dump(2, ' ', false, Json::error_handler_t::replace) + "\n"; }

namespace {

// Whether a string must be quoted so that YAML reads it back as the same string.
bool needs_quotes(const std::string& s) {
  if (s.empty()) return true;
  static const char* const reserved[] = {"true", "false", "yes", "no", "on", "off", "null", "~", "y", "n"};
  std::string l;
  for (char c : s) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* r : reserved)
    if (l == r) return true;
  // Anything a YAML 1.1 or 1.2 reader could take for a number: ints, floats,
  // hex/octal, and 1.1's sexagesimal "8080:80".
  {
    std::size_t i = (s[0] == '-' || s[0] == '+') ? 1 : 0;
    bool digits = false, only_number_chars = i < s.size();
    int dots = 0;
    for (std::size_t k = i; k < s.size(); ++k) {
      char c = s[k];
      if (std::isdigit(static_cast<unsigned char>(c))) digits = true;
      else if (c == '.') ++dots;
      else if (c == '_' || c == ':') {
      } else if ((c == 'e' || c == 'E') && digits) {
        if (k + 1 < s.size() && (s[k + 1] == '-' || s[k + 1] == '+')) ++k;
      } else only_number_chars = false;
    }
    if (only_number_chars && digits && dots <= 1) return true;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o' || s[1] == 'b')) return true;
  }
  if (l == ".inf" || l == "-.inf" || l == ".nan") return true;
  static const std::string special_start = "!&*-?{}[],#|>@`\"'%: ";
  if (special_start.find(s[0]) != std::string::npos) {
    // "-foo" is fine only when not followed by a space; keep it simple and quote.
    return true;
  }
  if (s.back() == ' ' || s.back() == ':') return true;
  if (s.find(": ") != std::string::npos || s.find(" #") != std::string::npos) return true;
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return true;
  return false;
}

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string scalar(const Json& j) {
  if (j.is_null()) return "null";
  if (j.is_boolean()) return j.get<bool>() ? "true" : "false";
  if (j.is_number()) return j.dump();
  const std::string& s = j.get_ref<const std::string&>();
  return needs_quotes(s) ? quote(s) : s;
}

std::string key_text(const std::string& k) { return needs_quotes(k) ? quote(k) : k; }

bool is_collection(const Json& j) { return (j.is_object() || j.is_array()) && !j.empty(); }

void emit(const Json& j, int indent, std::string& out);

void emit_object(const Json& j, int indent, std::string& out) {
  std::string pad(indent, ' ');
  for (auto& [k, v] : j.items()) {
    out += pad + key_text(k) + ":";
    if (is_collection(v)) {
      out += "\n";
      emit(v, v.is_object() ? indent + 2 : indent + 2, out);
    } else {
      out += " " + (v.is_object() ? std::string("{}") : v.is_array() ? std::string("[]") : scalar(v)) + "\n";
    }
  }
}

void emit(const Json& j, int indent, std::string& out) {
  std::string pad(indent, ' ');
  if (j.is_object()) {
    emit_object(j, indent, out);
    return;
  }
  for (auto& item : j) {
    if (is_collection(item)) {
      // "- " then the collection's first line on the same line.
      std::string nested;
      emit(item, indent + 2, nested);
      out += pad + "- " + nested.substr(indent + 2);
    } else {
      out += pad + "- " + (item.is_object() ? std::string("{}") : item.is_array() ? std::string("[]") : scalar(item)) + "\n";
    }
  }
}

// nlohmann::json (not ordered_json) keeps object keys sorted: canonical form.
nlohmann::json canonicalize(const Json& j) {
  return nlohmann::json::parse(j.dump(-1, ' ', false, Json::error_handler_t::replace));
}

std::string sha256_hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

}  // namespace

std::string to_yaml(const Project& project) {
  std::string out;
  emit(rendered(project), 0, out);
  return out;
}

std::string service_config_hash(const Project& project, const std::string& name) {
  auto it = project.services.find(name);
  if (it == project.services.end()) throw Error("no such service: " + name);
  Service s = it->second;
  // What compose leaves out: none of these require recreating a container.
  s.build.reset();
  s.pull_policy.clear();
  s.scale.reset();
  if (s.deploy) s.deploy->replicas.reset();
  s.depends_on.clear();
  s.profiles.clear();
  return sha256_hex(canonicalize(encode(s)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

std::ostream& operator<<(std::ostream& os, const Service& s) {
  return os << encode(s).dump(-1, ' ', false, Json::error_handler_t::replace);
}
std::ostream& operator<<(std::ostream& os, const Project& p) {
  return os << to_json_value(p).dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace berth::spec
