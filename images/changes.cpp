// `import --change`: the Dockerfile instructions that only touch the config.
#include <cctype>

#include "base/error.h"
#include "images/images.h"

namespace berth::images {

namespace {

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  size_t e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// Splits on unquoted whitespace; double and single quotes group, backslash escapes.
std::vector<std::string> split_words(const std::string& s, const std::string& instruction) {
  std::vector<std::string> words;
  std::string cur;
  bool in_word = false;
  char quote = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (quote) {
      if (c == quote) {
        quote = 0;
      } else if (c == '\\' && quote == '"' && i + 1 < s.size()) {
        cur += s[++i];
      } else {
        cur += c;
      }
      continue;
    }
    if (c == '"' || c == '\'') {
      quote = c;
      in_word = true;
    } else if (c == '\\' && i + 1 < s.size()) {
      cur += s[++i];
      in_word = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (in_word) words.push_back(cur);
      cur.clear();
      in_word = false;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (quote) throw Error("--change " + instruction + ": unterminated quote in \"" + s + "\"");
  if (in_word) words.push_back(cur);
  return words;
}

// JSON array form (["a","b"]) if it parses as one, else nullopt.
std::optional<std::vector<std::string>> json_array(const std::string& args) {
  if (args.empty() || args[0] != '[') return std::nullopt;
  try {
    auto j = nlohmann::json::parse(args);
    if (!j.is_array()) return std::nullopt;
    std::vector<std::string> out;
    for (auto& v : j) {
      if (!v.is_string()) return std::nullopt;
      out.push_back(v.get<std::string>());
    }
    return out;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

// CMD/ENTRYPOINT: exec form as is, shell form wrapped in /bin/sh -c.
nlohmann::json command(const std::string& args) {
  if (auto exec = json_array(args)) return *exec;
  return nlohmann::json::array({"/bin/sh", "-c", args});
}

// ENV/LABEL: "k=v k2=v2" or the legacy "k v w" (one pair, value is the rest).
std::vector<std::pair<std::string, std::string>> pairs(const std::string& args, const std::string& instruction) {
  std::vector<std::pair<std::string, std::string>> out;
  std::vector<std::string> words = split_words(args, instruction);
  if (words.empty()) throw Error("--change " + instruction + " needs at least one argument");
  if (words[0].find('=') == std::string::npos) {
    size_t space = args.find_first_of(" \t");
    if (space == std::string::npos) throw Error("--change " + instruction + " " + args + ": want KEY=VALUE or KEY VALUE");
    out.emplace_back(words[0], trim(args.substr(space)));
    return out;
  }
  for (auto& w : words) {
    size_t eq = w.find('=');
    if (eq == std::string::npos || eq == 0) throw Error("--change " + instruction + ": \"" + w + "\" is not KEY=VALUE");
    out.emplace_back(w.substr(0, eq), w.substr(eq + 1));
  }
  return out;
}

}  // namespace

void apply_changes(nlohmann::json& cfg, const std::vector<std::string>& changes) {
  if (!cfg.is_object()) cfg = nlohmann::json::object();
  for (const std::string& raw : changes) {
    std::string line = trim(raw);
    if (line.empty()) continue;
    size_t space = line.find_first_of(" \t");
    std::string instruction = line.substr(0, space);
    for (auto& c : instruction) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    std::string args = space == std::string::npos ? "" : trim(line.substr(space));
    if (instruction == "CMD") {
      cfg["Cmd"] = command(args);
    } else if (instruction == "ENTRYPOINT") {
      cfg["Entrypoint"] = command(args);
    } else if (instruction == "ENV") {
      nlohmann::json env = cfg.contains("Env") && cfg["Env"].is_array() ? cfg["Env"] : nlohmann::json::array();
      for (auto& [k, v] : pairs(args, instruction)) {
        std::string entry = k + "=" + v;
        bool replaced = false;
        for (auto& e : env)
          if (e.is_string() && e.get<std::string>().rfind(k + "=", 0) == 0) {
            e = entry;
            replaced = true;
          }
        if (!replaced) env.push_back(entry);
      }
      cfg["Env"] = env;
    } else if (instruction == "LABEL") {
      if (!cfg.contains("Labels") || !cfg["Labels"].is_object()) cfg["Labels"] = nlohmann::json::object();
      for (auto& [k, v] : pairs(args, instruction)) cfg["Labels"][k] = v;
    } else if (instruction == "WORKDIR") {
      if (args.empty()) throw Error("--change WORKDIR needs a path");
      cfg["WorkingDir"] = args;
    } else if (instruction == "USER") {
      if (args.empty()) throw Error("--change USER needs a user");
      cfg["User"] = args;
    } else if (instruction == "STOPSIGNAL") {
      if (args.empty()) throw Error("--change STOPSIGNAL needs a signal");
      cfg["StopSignal"] = args;
    } else if (instruction == "EXPOSE") {
      if (!cfg.contains("ExposedPorts") || !cfg["ExposedPorts"].is_object()) cfg["ExposedPorts"] = nlohmann::json::object();
      std::vector<std::string> ports = split_words(args, instruction);
      if (ports.empty()) throw Error("--change EXPOSE needs a port");
      for (std::string p : ports) {
        std::string number = p.substr(0, p.find('/'));
        if (number.empty() || number.find_first_not_of("0123456789-") != std::string::npos)
          throw Error("--change EXPOSE: invalid port \"" + p + "\"");
        if (p.find('/') == std::string::npos) p += "/tcp";
        cfg["ExposedPorts"][p] = nlohmann::json::object();
      }
    } else if (instruction == "VOLUME") {
      if (!cfg.contains("Volumes") || !cfg["Volumes"].is_object()) cfg["Volumes"] = nlohmann::json::object();
      std::vector<std::string> vols = json_array(args).value_or(split_words(args, instruction));
      if (vols.empty()) throw Error("--change VOLUME needs a path");
      for (auto& v : vols) cfg["Volumes"][v] = nlohmann::json::object();
    } else {
      throw Error("--change: \"" + instruction + "\" is not a valid change command (want CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR or STOPSIGNAL)");
    }
  }
}

}  // namespace berth::images
