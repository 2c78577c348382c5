// The loading pipeline: files → located trees → interpolation → include →
// extends → multi-file merge → decode → profiles → normalize → validate.
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <functional>
#include <set>
#include <unordered_map>

#include "base/error.h"
#include "base/fs.h"
#include "spec/decode.h"
#include "spec/interpolate.h"
#include "spec/merge.h"
#include "spec/spec.h"

namespace berth::spec {

std::string normalize_project_name(const std::string& name) {
  std::string out;
  for (char c : name) {
    char l = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (std::isalnum(static_cast<unsigned char>(l)) || l == '_' || l == '-') out += l;
  }
  std::size_t start = 0;
  while (start < out.size() && !std::isalnum(static_cast<unsigned char>(out[start]))) ++start;
  return out.substr(start);
}

std::vector<std::string> known_keys(const std::string& where) { return known_keys_at(where); }

std::int64_t Service::replicas() const {
  if (deploy && deploy->replicas) return *deploy->replicas;
  if (scale) return *scale;
  return 1;
}

std::vector<std::string> Project::service_order() const {
  std::vector<std::string> order;
  std::set<std::string> done, visiting;
  std::function<void(const std::string&)> visit = [&](const std::string& name) {
    if (done.count(name) || visiting.count(name)) return;
    visiting.insert(name);
    auto it = services.find(name);
    if (it != services.end())
      for (auto& [dep, _] : it->second.depends_on) visit(dep);
    visiting.erase(name);
    done.insert(name);
    if (it != services.end()) order.push_back(name);
  };
  for (auto& [name, _] : services) visit(name);
  return order;
}

namespace {

const char* const kDefaultFiles[] = {"compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml",
                                     "berth.yaml"};

bool is_remote_context(const std::string& s) {
  return s.find("://") != std::string::npos || s.rfind("git@", 0) == 0 || s.rfind("github.com/", 0) == 0;
}

// Finds the node at a key path below `root` (for locating errors found after
// decoding); falls back to the deepest node that exists.
Location locate(const Node* root, std::initializer_list<std::string_view> path, bool key = true) {
  if (!root) return {};
  Location loc = root->loc;
  const Node* cur = root;
  for (std::string_view k : path) {
    if (!cur->is_mapping()) break;
    const Node::Entry* found = nullptr;
    for (auto& e : cur->entries)
      if (e.key == k) found = &e;
    if (!found) break;
    loc = key ? found->key_loc : found->value.loc;
    cur = &found->value;
  }
  return loc;
}

// A file's directory, used to resolve its relative paths.
struct SourceFile {
  std::string path;
  std::string dir;
  Node root;
};

class Loader {
 public:
  explicit Loader(const LoadOptions& options) : options_(options) {
    working_dir_ = options.working_directory;
    if (working_dir_.empty()) working_dir_ = path_absolute(".");
  }

  Project load(const std::vector<std::pair<std::string, std::string>>& inline_files) {
    std::vector<std::string> files;
    for (auto& f : options_.files) files.push_back(path_absolute(f, working_dir_));
    std::string project_dir;
    if (!options_.project_directory.empty()) project_dir = path_absolute(options_.project_directory, working_dir_);
    if (files.empty() && inline_files.empty()) {
      // COMPOSE_FILE stands in for -f: from the process environment, else
      // from the .env (or --env-file) of the project directory, as compose.
      Environment early = compose_file_environment(project_dir.empty() ? working_dir_ : project_dir);
      if (auto it = early.find("COMPOSE_FILE"); it != early.end() && !it->second.empty()) {
        std::string separator = ":";
        if (auto sep = early.find("COMPOSE_PATH_SEPARATOR"); sep != early.end() && !sep->second.empty())
          separator = sep->second;
        std::size_t start = 0;
        while (start <= it->second.size()) {
          std::size_t end = it->second.find(separator, start);
          std::string f = it->second.substr(start, end == std::string::npos ? std::string::npos : end - start);
          if (!f.empty()) files.push_back(path_absolute(f, working_dir_));
          if (end == std::string::npos) break;
          start = end + separator.size();
        }
      }
    }
    if (files.empty() && inline_files.empty()) {
      std::string dir = project_dir.empty() ? working_dir_ : project_dir;
      discover(dir, files);
      // Like compose, look in the parent directories when the given one has none.
      for (std::string up = path_dirname(dir); files.empty() && project_dir.empty() && up != dir; up = path_dirname(up)) {
        dir = up;
        discover(dir, files);
      }
      if (files.empty())
        throw Error("no configuration file provided: none of compose.yaml, compose.yml, docker-compose.yaml, "
                    "docker-compose.yml or berth.yaml found in " + (project_dir.empty() ? working_dir_ : project_dir) +
                    " or its parents");
    }
    if (project_dir.empty())
      project_dir = inline_files.empty() ? path_dirname(files[0]) : path_dirname(inline_files[0].first);
    project_dir_ = project_dir;
    project_.working_dir = project_dir;

    build_environment();

    Node merged;
    bool first = true;
    auto add = [&](SourceFile file) {
      prepare_file(file, env_, 0);
      project_.config_files.push_back(file.path);
      if (first) merged = std::move(file.root);
      else merge_project(merged, file.root);
      first = false;
    };
    for (auto& [name, text] : inline_files) add(SourceFile{name, path_dirname(name), parse(text, name)});
    for (auto& f : files) add(SourceFile{f, path_dirname(f), parse(read_text(f), f)});

    for (auto& [name, where] : missing_)
      project_.warnings.push_back(Warning{where, "the \"" + name + "\" variable is not set; substituting a blank string"});

    decode_project(merged);
    return std::move(project_);
  }

 private:
  // The first default file name present in dir, plus its override file.
  void discover(const std::string& dir, std::vector<std::string>& files) const {
    for (const char* name : kDefaultFiles) {
      std::string candidate = path_join(dir, name);
      if (!exists(candidate)) continue;
      files.push_back(candidate);
      std::string base(name);
      std::string stem = base.substr(0, base.rfind('.'));
      for (const char* ext : {".override.yaml", ".override.yml"}) {
        std::string override_file = path_join(dir, stem + ext);
        if (exists(override_file)) {
          files.push_back(override_file);
          break;
        }
      }
      return;
    }
  }

  // All file access goes through these, so that it can be switched off.
  bool exists(const std::string& path) const {
    if (!options_.read_files) return false;
    return path_exists(path) && !is_directory(path);
  }
  bool read_if_exists(const std::string& path, std::string& out) const {
    if (!exists(path)) return false;
    return read_file_if_exists(path, out);
  }
  std::string read_text(const std::string& path) const {
    if (!options_.read_files) throw Error(path + ": file access is disabled");
    return read_file(path);
  }

  // The variables that locate the compose files, before any file is read:
  // the process environment over the env files (or <dir>/.env).
  Environment compose_file_environment(const std::string& dir) {
    Environment process(options_.environment.begin(), options_.environment.end());
    if (process.count("COMPOSE_FILE")) return process;
    Environment dotenv;
    std::vector<std::string> paths;
    for (auto& f : options_.env_files) paths.push_back(path_absolute(f, working_dir_));
    if (paths.empty()) paths.push_back(path_join(dir, ".env"));
    for (auto& path : paths) {
      std::string text;
      if (read_if_exists(path, text)) parse_dotenv(text, path, process, dotenv);
    }
    for (auto& [k, v] : process) dotenv[k] = v;
    return dotenv;
  }

  Node parse(const std::string& text, const std::string& file) {
    Node root = parse_yaml(text, file);
    if (!root.is_mapping()) throw Error(root.loc.str() + ": a compose file must be a mapping, got " + root.kind_name());
    return root;
  }

  void build_environment() {
    Environment process;
    for (auto& [k, v] : options_.environment) process[k] = v;
    Environment dotenv;
    if (!options_.env_files.empty()) {
      for (auto& f : options_.env_files) {
        std::string path = path_absolute(f, working_dir_);
        if (!exists(path)) throw Error(path + ": env file not found (from --env-file)");
        parse_dotenv(read_text(path), path, process, dotenv);
      }
    } else {
      std::string path = path_join(project_dir_, ".env");
      std::string text;
      if (read_if_exists(path, text)) parse_dotenv(text, path, process, dotenv);
    }
    // The process environment wins over .env / --env-file.
    env_ = dotenv;
    for (auto& [k, v] : process) env_[k] = v;
  }

  // Interpolates a file, then resolves its include and extends (which both
  // need the file's own directory and environment).
  void prepare_file(SourceFile& file, const Environment& env, int depth) {
    if (depth > 16) throw Error(file.root.loc.str() + ": include nesting deeper than 16 levels");
    InterpolationContext ictx{env, &missing_};
    interpolate_tree(file.root, ictx);
    if (file.root.find("version"))
      project_.warnings.push_back(
          Warning{locate(&file.root, {"version"}).str(), "the top-level \"version\" is obsolete and ignored"});
    process_includes(file, depth);
    resolve_extends(file);
  }

  void process_includes(SourceFile& file, int depth) {
    Node* include = file.root.find("include");
    if (!include) return;
    Node list = std::move(*include);
    file.root.erase("include");
    if (list.is_null()) return;
    if (!list.is_sequence()) throw Error(list.loc.str() + ": include: expected a list, got " + list.kind_name());
    for (auto& item : list.items) {
      std::vector<std::string> paths;
      std::vector<std::string> env_files;
      std::string project_directory;
      auto strings = [&](const Node& n, std::vector<std::string>& out, const char* what) {
        if (n.is_scalar()) out.push_back(n.scalar);
        else if (n.is_sequence())
          for (auto& s : n.items) {
            if (!s.is_scalar()) throw Error(s.loc.str() + ": include." + what + ": expected a string");
            out.push_back(s.scalar);
          }
        else throw Error(n.loc.str() + ": include." + what + ": expected a string or a list");
      };
      if (item.is_scalar()) {
        paths.push_back(item.scalar);
      } else if (item.is_mapping()) {
        for (auto& e : item.entries) {
          if (e.key == "path") strings(e.value, paths, "path");
          else if (e.key == "env_file") strings(e.value, env_files, "env_file");
          else if (e.key == "project_directory" && e.value.is_scalar()) project_directory = e.value.scalar;
          else throw Error(e.key_loc.str() + ": include: unknown key \"" + e.key + "\"");
        }
        if (paths.empty()) throw Error(item.loc.str() + ": include: \"path\" is required");
      } else {
        throw Error(item.loc.str() + ": include: expected a path or a mapping");
      }
      std::vector<std::string> abs_paths;
      for (auto& p : paths) {
        std::string abs = path_absolute(p, file.dir);
        if (!exists(abs)) throw Error(item.loc.str() + ": include: " + abs + " not found");
        if (std::find(include_stack_.begin(), include_stack_.end(), abs) != include_stack_.end())
          throw Error(item.loc.str() + ": include cycle through " + abs);
        abs_paths.push_back(abs);
      }
      std::string sub_dir = project_directory.empty() ? path_dirname(abs_paths[0]) : path_absolute(project_directory, file.dir);
      // The included project's own .env (or the given env files) provide
      // defaults; the including project's environment wins.
      Environment env;
      std::vector<std::string> envs = env_files;
      if (envs.empty() && exists(path_join(sub_dir, ".env"))) envs.push_back(path_join(sub_dir, ".env"));
      for (auto& f : envs) {
        std::string abs = path_absolute(f, file.dir);
        std::string text;
        if (!read_if_exists(abs, text)) throw Error(item.loc.str() + ": include: env file " + abs + " not found");
        parse_dotenv(text, abs, env_, env);
      }
      for (auto& [k, v] : env_) env[k] = v;
      Node sub;
      bool first = true;
      for (auto& abs : abs_paths) {
        include_stack_.push_back(abs);
        SourceFile inc{abs, sub_dir, parse(read_text(abs), abs)};
        prepare_file(inc, env, 0 + 1);
        include_stack_.pop_back();
        absolutize_project_paths(inc.root, sub_dir);
        if (first) sub = std::move(inc.root);
        else merge_project(sub, inc.root);
        first = false;
      }
      // Imported resources must not collide with the including file's own.
      for (const char* section : {"services", "networks", "volumes", "configs", "secrets", "models"}) {
        const Node* from = sub.find(section);
        if (!from || !from->is_mapping()) continue;
        Node* into = file.root.find(section);
        if (!into) into = &file.root.set(section, Node::make_mapping(from->loc));
        if (into->is_null()) *into = Node::make_mapping(from->loc);
        for (auto& e : from->entries) {
          if (const Node* clash = into->find(e.key)) {
            if (std::string(section) == "services" || !(clash->is_mapping() && canon_equal(*clash, e.value)))
              throw Error(locate(&file.root, {section, e.key}).str() + ": " + section + "." + e.key +
                          " conflicts with the one imported from " + e.key_loc.str());
            continue;
          }
          into->entries.push_back(e);
        }
      }
    }
  }

  static bool canon_equal(const Node& a, const Node& b) {
    if (a.kind != b.kind || a.scalar != b.scalar || a.items.size() != b.items.size() ||
        a.entries.size() != b.entries.size())
      return false;
    for (std::size_t i = 0; i < a.items.size(); ++i)
      if (!canon_equal(a.items[i], b.items[i])) return false;
    for (std::size_t i = 0; i < a.entries.size(); ++i)
      if (a.entries[i].key != b.entries[i].key || !canon_equal(a.entries[i].value, b.entries[i].value)) return false;
    return true;
  }

  // Resolves `extends` for every service of the file, depth first.
  void resolve_extends(SourceFile& file) {
    Node* services = file.root.find("services");
    if (!services || !services->is_mapping()) return;
    std::vector<std::string> stack;
    for (auto& e : services->entries) resolve_service(file, e.key, stack);
  }

  Node* service_node(SourceFile& file, const std::string& name) {
    Node* services = file.root.find("services");
    return services && services->is_mapping() ? services->find(name) : nullptr;
  }

  void resolve_service(SourceFile& file, const std::string& name, std::vector<std::string>& stack) {
    Node* svc = service_node(file, name);
    if (!svc || !svc->is_mapping()) return;
    const Node* ext = svc->find("extends");
    if (!ext) return;
    std::string key = file.path + "#" + name;
    if (std::find(stack.begin(), stack.end(), key) != stack.end()) {
      std::string cycle;
      for (auto& s : stack) cycle += s.substr(s.find('#') + 1) + " -> ";
      throw Error(locate(svc, {"extends"}).str() + ": services." + name + ": extends cycle: " + cycle + name);
    }
    std::string base_name, base_file;
    if (ext->is_scalar()) {
      base_name = ext->scalar;
    } else if (ext->is_mapping()) {
      for (auto& e : ext->entries) {
        if (e.key == "service" && e.value.is_scalar()) base_name = e.value.scalar;
        else if (e.key == "file" && e.value.is_scalar()) base_file = e.value.scalar;
        else throw Error(e.key_loc.str() + ": services." + name + ".extends: unknown key \"" + e.key + "\"");
      }
    }
    Location ext_loc = ext->loc;
    if (base_name.empty())
      throw Error(ext_loc.str() + ": services." + name + ".extends: \"service\" is required");
    stack.push_back(key);
    Node base;
    if (base_file.empty()) {
      resolve_service(file, base_name, stack);
      Node* b = service_node(file, base_name);
      if (!b)
        throw Error(ext_loc.str() + ": services." + name + ".extends: service \"" + base_name + "\" not found in " + file.path);
      base = *b;
    } else {
      std::string path = path_absolute(base_file, file.dir);
      std::string text;
      if (!read_if_exists(path, text))
        throw Error(ext_loc.str() + ": services." + name + ".extends: file " + path + " not found");
      SourceFile other{path, path_dirname(path), parse(text, path)};
      InterpolationContext ictx{env_, &missing_};
      interpolate_tree(other.root, ictx);
      resolve_service(other, base_name, stack);
      Node* b = service_node(other, base_name);
      if (!b)
        throw Error(ext_loc.str() + ": services." + name + ".extends: service \"" + base_name + "\" not found in " + path);
      base = *b;
      // Relative paths in the extended service are relative to its own file.
      absolutize_service_paths(base, other.dir);
    }
    stack.pop_back();
    svc = service_node(file, name);  // resolve_service may have reallocated nothing, but be safe
    Node own = *svc;
    own.erase("extends");
    if (!base.is_mapping()) base = Node::make_mapping(own.loc);
    base.erase("extends");
    merge_service(base, own);
    base.loc = own.loc;
    *svc = std::move(base);
  }

  static bool relative_path(const std::string& p) { return !p.empty() && p[0] != '/' && p[0] != '~'; }

  static void absolutize_scalar(Node& n, const std::string& dir) {
    if (n.is_scalar() && relative_path(n.scalar)) n.scalar = path_absolute(n.scalar, dir);
  }

  static void absolutize_service_paths(Node& svc, const std::string& dir) {
    if (!svc.is_mapping()) return;
    if (Node* build = svc.find("build")) {
      if (build->is_scalar() && !is_remote_context(build->scalar)) absolutize_scalar(*build, dir);
      else if (build->is_mapping()) {
        Node* ctx = build->find("context");
        if (!ctx) build->set("context", Node::make_scalar(dir, build->loc));
        else if (!is_remote_context(ctx->scalar)) absolutize_scalar(*ctx, dir);
      }
    }
    for (const char* key : {"env_file", "label_file"}) {
      Node* files = svc.find(key);
      if (!files) continue;
      if (files->is_scalar()) absolutize_scalar(*files, dir);
      else if (files->is_sequence())
        for (auto& f : files->items) {
          if (f.is_scalar()) absolutize_scalar(f, dir);
          else if (f.is_mapping())
            if (Node* p = f.find("path")) absolutize_scalar(*p, dir);
        }
    }
    if (Node* volumes = svc.find("volumes"); volumes && volumes->is_sequence()) {
      for (auto& v : volumes->items) {
        if (v.is_scalar()) {
          std::size_t colon = v.scalar.find(':');
          if (colon != std::string::npos && v.scalar[0] == '.')
            v.scalar = path_absolute(v.scalar.substr(0, colon), dir) + v.scalar.substr(colon);
        } else if (v.is_mapping()) {
          const Node* type = v.find("type");
          Node* source = v.find("source");
          if (type && type->is_scalar() && type->scalar == "bind" && source) absolutize_scalar(*source, dir);
        }
      }
    }
  }

  static void absolutize_project_paths(Node& root, const std::string& dir) {
    if (Node* services = root.find("services"); services && services->is_mapping())
      for (auto& e : services->entries) absolutize_service_paths(e.value, dir);
    for (const char* section : {"configs", "secrets"})
      if (Node* objs = root.find(section); objs && objs->is_mapping())
        for (auto& e : objs->entries)
          if (e.value.is_mapping())
            if (Node* file = e.value.find("file")) absolutize_scalar(*file, dir);
  }

  // ------------------------------------------------------------------ decode

  void decode_project(const Node& root) {
    DecodeContext ctx;
    ctx.warnings = &project_.warnings;
    static const std::vector<std::string> top = known_keys_at("project");
    for (auto& e : root.entries) {
      if (std::find(top.begin(), top.end(), e.key) != top.end() || e.key.rfind("x-", 0) == 0) continue;
      std::string hint;
      for (auto& k : top)
        if (edit_distance(e.key, k) <= 2) hint = k;
      ctx.error(e.key_loc, "unknown top-level key \"" + e.key + "\"" + (hint.empty() ? "" : " (did you mean \"" + hint + "\"?)"));
    }
    for (auto& e : root.entries)
      if (e.key.rfind("x-", 0) == 0) project_.extensions[e.key] = node_to_json(e.value);

    // Project name: -p > COMPOSE_PROJECT_NAME > name: > directory.
    // A name the user set imperatively (-p, COMPOSE_PROJECT_NAME) must
    // already be valid, as compose insists; names from the file or the
    // directory are normalized.
    auto imperative = [](const std::string& name, const char* source) {
      if (normalize_project_name(name) != name)
        throw Error("invalid project name \"" + name + "\" (" + source +
                    "): it must contain only lowercase letters, digits, \"-\" and \"_\", and start with a letter "
                    "or digit");
      return name;
    };
    std::string raw_name;
    Location name_loc;
    if (!options_.project_name.empty()) raw_name = imperative(options_.project_name, "-p");
    else if (auto it = env_.find("COMPOSE_PROJECT_NAME"); it != env_.end() && !it->second.empty())
      raw_name = imperative(it->second, "COMPOSE_PROJECT_NAME");
    else if (const Node* n = root.find("name"); n && n->is_scalar() && !n->scalar.empty()) {
      raw_name = n->scalar;
      name_loc = n->loc;
    } else raw_name = path_basename(project_dir_);
    project_.name = normalize_project_name(raw_name);
    if (project_.name.empty())
      throw Error((name_loc.line ? name_loc.str() + ": " : std::string()) + "invalid project name \"" + raw_name +
                  "\": it must contain at least one letter or digit");

    for (auto& [k, v] : env_) project_.environment[k] = v;

    auto sections = [&](const char* key, auto each) {
      const Node* n = root.find(key);
      if (!n || n->is_null()) return;
      if (!n->is_mapping()) {
        ctx.error(n->loc, std::string(key) + ": expected a mapping, got " + n->kind_name());
        return;
      }
      for (auto& e : n->entries) {
        PathScope scope(ctx, std::string(key) + "." + e.key);
        each(e);
      }
    };
    sections("services", [&](const Node::Entry& e) {
      if (!valid_resource_name(e.key)) ctx.error(e.key_loc, "invalid service name (want [a-zA-Z0-9._-]+)");
      if (!e.value.is_mapping() && !e.value.is_null()) {
        ctx.error(e.value.loc, "expected a mapping, got " + e.value.kind_name());
        return;
      }
      Service s;
      s.name = e.key;
      decode(e.value, s, ctx);
      service_nodes_[e.key] = &e.value;
      service_key_locs_[e.key] = e.key_loc;
      project_.services.emplace(e.key, std::move(s));
    });
    sections("networks", [&](const Node::Entry& e) {
      Network n;
      decode(e.value, n, ctx);
      project_.networks.emplace(e.key, std::move(n));
    });
    sections("volumes", [&](const Node::Entry& e) {
      Volume v;
      decode(e.value, v, ctx);
      project_.volumes.emplace(e.key, std::move(v));
    });
    sections("configs", [&](const Node::Entry& e) {
      FileObject c;
      decode_config(e.value, c, ctx);
      check_file_object(e, c, "config", ctx);
      project_.configs.emplace(e.key, std::move(c));
    });
    sections("secrets", [&](const Node::Entry& e) {
      FileObject s;
      decode_secret(e.value, s, ctx);
      check_file_object(e, s, "secret", ctx);
      project_.secrets.emplace(e.key, std::move(s));
    });
    sections("models", [&](const Node::Entry& e) {
      Model m;
      decode(e.value, m, ctx);
      project_.models.emplace(e.key, std::move(m));
    });
    root_ = &root;
    if (ctx.errors.empty()) {
      apply_profiles(ctx);
      normalize(ctx);
      validate(ctx);
    }
    if (!ctx.errors.empty()) {
      std::string message;
      for (auto& m : ctx.errors) message += (message.empty() ? "" : "\n") + m;
      throw Error(message);
    }
  }

  static bool valid_resource_name(const std::string& s) {
    if (s.empty()) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
    });
  }

  void check_file_object(const Node::Entry& e, FileObject& o, const char* kind, DecodeContext& ctx) {
    int sources = !o.file.empty() + !o.environment.empty() + !o.content.empty() + o.external;
    if (sources != 1)
      ctx.error(e.key_loc, std::string("a ") + kind + " needs exactly one of file, environment" +
                               (std::string(kind) == "config" ? ", content" : "") + " or external");
  }

  // ------------------------------------------------------------------ profiles

  void apply_profiles(DecodeContext& ctx) {
    std::set<std::string> all;
    for (auto& [name, s] : project_.services) all.insert(s.profiles.begin(), s.profiles.end());
    project_.all_profiles.assign(all.begin(), all.end());
    std::vector<std::string> active = options_.profiles;
    if (active.empty())
      if (auto it = env_.find("COMPOSE_PROFILES"); it != env_.end()) {
        std::size_t start = 0;
        while (start <= it->second.size()) {
          std::size_t comma = it->second.find(',', start);
          std::string p = it->second.substr(start, comma - start);
          if (!p.empty()) active.push_back(p);
          if (comma == std::string::npos) break;
          start = comma + 1;
        }
      }
    bool everything = std::find(active.begin(), active.end(), "*") != active.end();
    std::set<std::string> enabled;
    for (auto& [name, s] : project_.services) {
      bool on = s.profiles.empty() || everything ||
                std::any_of(s.profiles.begin(), s.profiles.end(),
                            [&](const std::string& p) { return std::find(active.begin(), active.end(), p) != active.end(); }) ||
                std::find(options_.services.begin(), options_.services.end(), name) != options_.services.end();
      if (on) enabled.insert(name);
    }
    // A service an enabled service depends on is enabled too (transitively).
    std::vector<std::string> queue(enabled.begin(), enabled.end());
    while (!queue.empty()) {
      std::string name = queue.back();
      queue.pop_back();
      auto it = project_.services.find(name);
      if (it == project_.services.end()) continue;
      for (auto& [dep, d] : it->second.depends_on)
        if (project_.services.count(dep) && enabled.insert(dep).second) queue.push_back(dep);
    }
    for (auto it = project_.services.begin(); it != project_.services.end();) {
      if (enabled.count(it->first)) ++it;
      else it = project_.services.erase(it);
    }
    (void)ctx;
  }

  // ------------------------------------------------------------------ normalize

  std::string resolve_path(const std::string& p) const {
    if (p.empty()) return p;
    if (p == "~" || p.rfind("~/", 0) == 0) {
      auto home = env_.find("HOME");
      return home == env_.end() ? p : home->second + p.substr(1);
    }
    return path_absolute(p, project_dir_);
  }

  void normalize(DecodeContext& ctx) {
    bool default_network_used = false;
    for (auto& [name, s] : project_.services) {
      PathScope scope(ctx, "services." + name);
      const Node* node = service_nodes_[name];
      if (s.build) {
        if (s.build->context.empty()) s.build->context = ".";
        if (!is_remote_context(s.build->context)) s.build->context = resolve_path(s.build->context);
        if (s.build->dockerfile.empty() && s.build->dockerfile_inline.empty()) s.build->dockerfile = "Dockerfile";
      }
      // env_file contents fill in variables that `environment` does not set.
      std::map<std::string, std::optional<std::string>> from_files;
      for (std::size_t i = 0; i < s.env_file.size(); ++i) {
        EnvFile& f = s.env_file[i];
        f.path = resolve_path(f.path);
        std::string text;
        if (!read_if_exists(f.path, text)) {
          if (f.required) ctx.error(locate(node, {"env_file"}, false), "env file " + f.path + " not found");
          continue;
        }
        Environment parsed;
        try {
          if (f.format == "raw") {
            parse_raw_env(text, parsed);
          } else if (f.format.empty() || f.format == "dotenv") {
            parse_dotenv(text, f.path, env_, parsed);
          } else {
            ctx.error(locate(node, {"env_file"}, false),
                      "env file " + f.path + ": unsupported format \"" + f.format + "\" (want dotenv or raw)");
            continue;
          }
        } catch (const Error& e) {
          ctx.errors.push_back(e.what());
          continue;
        }
        for (auto& [k, v] : parsed) from_files[k] = v;
      }
      for (auto& [k, v] : from_files) s.environment.emplace(k, v);
      // "KEY" without a value takes it from the environment when it is there.
      for (auto& [k, v] : s.environment)
        if (!v)
          if (auto it = env_.find(k); it != env_.end()) v = it->second;
      for (auto& f : s.label_file) {
        f = resolve_path(f);
        std::string text;
        if (!read_if_exists(f, text)) {
          ctx.error(locate(node, {"label_file"}, false), "label file " + f + " not found");
          continue;
        }
        Environment parsed;
        parse_dotenv(text, f, {}, parsed);
        for (auto& [k, v] : parsed) s.labels.emplace(k, v);
      }
      for (auto& v : s.volumes) {
        if (v.type == "bind") v.source = resolve_path(v.source);
      }
      // Merging keys ports by their text, so "80:80" from one file and the
      // same port in long syntax from another both survive it; once both
      // are typed they compare equal, and compose keeps one.
      for (std::size_t i = 0; i < s.ports.size(); ++i)
        for (std::size_t j = i + 1; j < s.ports.size();)
          if (s.ports[j] == s.ports[i]) s.ports.erase(s.ports.begin() + static_cast<std::ptrdiff_t>(j));
          else ++j;
      if (s.healthcheck && s.healthcheck->disable && s.healthcheck->test.empty()) s.healthcheck->test = {"NONE"};
      if (s.scale && s.deploy && s.deploy->replicas && *s.scale != *s.deploy->replicas)
        ctx.error(locate(node, {"scale"}), "scale (" + std::to_string(*s.scale) + ") and deploy.replicas (" +
                                               std::to_string(*s.deploy->replicas) + ") disagree");
      if (s.replicas() < 0) ctx.error(locate(node, {"scale"}), "replicas must not be negative");
      if (!s.network_mode.empty() && !s.networks.empty())
        ctx.error(locate(node, {"network_mode"}), "network_mode and networks cannot be combined");
      if (s.network_mode.empty() && s.networks.empty()) {
        s.networks["default"] = std::nullopt;
      }
      if (s.networks.count("default")) default_network_used = true;
    }
    if (default_network_used && !project_.networks.count("default")) project_.networks["default"] = Network{};
    for (auto& [key, n] : project_.networks)
      if (n.name.empty()) n.name = n.external ? key : project_.name + "_" + key;
    for (auto& [key, v] : project_.volumes)
      if (v.name.empty()) v.name = v.external ? key : project_.name + "_" + key;
    for (auto* objs : {&project_.configs, &project_.secrets})
      for (auto& [key, o] : *objs) {
        if (o.name.empty()) o.name = o.external ? key : project_.name + "_" + key;
        if (!o.file.empty()) o.file = resolve_path(o.file);
      }
  }

  // ------------------------------------------------------------------ validate

  void validate(DecodeContext& ctx) {
    static const std::set<std::string> pull_policies = {"always", "never", "missing", "if_not_present",
                                                         "build", "daily", "weekly", "refresh"};
    for (auto& [name, s] : project_.services) {
      PathScope scope(ctx, "services." + name);
      const Node* node = service_nodes_[name];
      if (s.image.empty() && !s.build && !s.provider)
        ctx.error(service_key_locs_[name], "has neither an image nor a build context");
      if (!s.restart.empty() && s.restart != "no" && s.restart != "always" && s.restart != "unless-stopped" &&
          s.restart != "on-failure") {
        std::int64_t n = 0;
        bool ok = s.restart.rfind("on-failure:", 0) == 0 && !s.restart.substr(11).empty() &&
                  std::all_of(s.restart.begin() + 11, s.restart.end(),
                                  [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; });
        (void)n;
        if (!ok)
          ctx.error(locate(node, {"restart"}, false),
                    "invalid restart policy \"" + s.restart + "\" (want no, always, on-failure[:N] or unless-stopped)");
      }
      if (!s.pull_policy.empty() && !pull_policies.count(s.pull_policy) && s.pull_policy.rfind("every_", 0) != 0)
        ctx.error(locate(node, {"pull_policy"}, false), "invalid pull_policy \"" + s.pull_policy + "\"");
      if (!s.container_name.empty() && s.replicas() > 1)
        ctx.error(locate(node, {"container_name"}),
                  "container_name \"" + s.container_name + "\" cannot be used with " + std::to_string(s.replicas()) +
                      " replicas (names must be unique)");
      for (auto& [dep, d] : s.depends_on) {
        if (dep == name) ctx.error(locate(node, {"depends_on"}), "depends on itself");
        else if (!project_.services.count(dep) && d.required)
          ctx.error(locate_list_item(node, "depends_on", dep), "depends on undefined service \"" + dep + "\"");
      }
      for (auto& [net, _] : s.networks)
        if (!project_.networks.count(net))
          ctx.error(locate_list_item(node, "networks", net), "refers to undefined network \"" + net + "\"");
      for (std::size_t i = 0; i < s.volumes.size(); ++i) {
        const ServiceVolume& v = s.volumes[i];
        if (v.type == "volume" && !v.source.empty() && !project_.volumes.count(v.source))
          ctx.error(locate_index(node, "volumes", i), "refers to undefined volume \"" + v.source + "\"");
      }
      for (std::size_t i = 0; i < s.configs.size(); ++i)
        if (!project_.configs.count(s.configs[i].source))
          ctx.error(locate_index(node, "configs", i), "refers to undefined config \"" + s.configs[i].source + "\"");
      for (std::size_t i = 0; i < s.secrets.size(); ++i)
        if (!project_.secrets.count(s.secrets[i].source))
          ctx.error(locate_index(node, "secrets", i), "refers to undefined secret \"" + s.secrets[i].source + "\"");
      if (s.network_mode.rfind("service:", 0) == 0 && !project_.services.count(s.network_mode.substr(8)))
        ctx.error(locate(node, {"network_mode"}, false),
                  "network_mode refers to undefined service \"" + s.network_mode.substr(8) + "\"");
      for (std::size_t i = 0; i < s.volumes_from.size(); ++i) {
        std::string ref = s.volumes_from[i];
        if (ref.rfind("container:", 0) == 0) continue;
        if (ref.rfind("service:", 0) == 0) ref = ref.substr(8);
        ref = ref.substr(0, ref.find(':'));
        if (!project_.services.count(ref))
          ctx.error(locate_index(node, "volumes_from", i), "volumes_from refers to undefined service \"" + ref + "\"");
      }
      for (std::size_t i = 0; i < s.links.size(); ++i) {
        std::string ref = s.links[i].substr(0, s.links[i].find(':'));
        if (!project_.services.count(ref))
          ctx.error(locate_index(node, "links", i), "links to undefined service \"" + ref + "\"");
      }
    }
    find_cycles(ctx);
  }

  Location locate_index(const Node* svc, const char* key, std::size_t index) {
    const Node* list = svc ? svc->find(key) : nullptr;
    if (list && list->is_sequence() && index < list->items.size()) return list->items[index].loc;
    return locate(svc, {key});
  }

  Location locate_list_item(const Node* svc, const char* key, const std::string& item) {
    const Node* list = svc ? svc->find(key) : nullptr;
    if (list && list->is_sequence())
      for (auto& i : list->items)
        if (i.is_scalar() && i.scalar == item) return i.loc;
    if (list && list->is_mapping())
      for (auto& e : list->entries)
        if (e.key == item) return e.key_loc;
    return locate(svc, {key});
  }

  void find_cycles(DecodeContext& ctx) {
    std::map<std::string, int> state;  // 0 new, 1 on stack, 2 done
    std::vector<std::string> stack;
    std::function<bool(const std::string&)> visit = [&](const std::string& name) -> bool {
      state[name] = 1;
      stack.push_back(name);
      auto& s = project_.services.at(name);
      for (auto& [dep, _] : s.depends_on) {
        if (!project_.services.count(dep) || dep == name) continue;
        if (state[dep] == 1) {
          std::string cycle;
          auto from = std::find(stack.begin(), stack.end(), dep);
          for (auto it = from; it != stack.end(); ++it) cycle += *it + " -> ";
          cycle += dep;
          PathScope scope(ctx, "services." + dep);
          ctx.error(locate(service_nodes_[dep], {"depends_on"}), "dependency cycle: " + cycle);
          return true;
        }
        if (state[dep] == 0 && visit(dep)) return true;
      }
      stack.pop_back();
      state[name] = 2;
      return false;
    };
    for (auto& [name, _] : project_.services)
      if (state[name] == 0 && visit(name)) return;
  }

  const LoadOptions& options_;
  std::string working_dir_;
  std::string project_dir_;
  Environment env_;
  std::map<std::string, std::string> missing_;
  std::vector<std::string> include_stack_;
  Project project_;
  const Node* root_ = nullptr;
  std::unordered_map<std::string, const Node*> service_nodes_;
  std::unordered_map<std::string, Location> service_key_locs_;
};

}  // namespace

Project load_project(const LoadOptions& options) {
  Loader loader(options);
  return loader.load({});
}

Project load_project_from_string(const std::string& yaml, const LoadOptions& options, const std::string& file_name) {
  LoadOptions opts = options;
  std::string wd = opts.working_directory.empty() ? path_absolute(".") : opts.working_directory;
  opts.working_directory = wd;
  Loader loader(opts);
  return loader.load({{path_absolute(file_name, wd), yaml}});
}

}  // namespace berth::spec
