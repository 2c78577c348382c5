// Registry commands: pull, push, login, logout, search.
//
// Credentials live in a docker-compatible config.json ({"auths": {"host:port":
// {"auth": base64(user:pass)}}}, mode 0600): $BERTH_CONFIG/config.json when
// BERTH_CONFIG is set (like DOCKER_CONFIG), else <root>/config.json.
// Insecure registries (https without verification, then plain http):
// 127.0.0.0/8, ::1 and localhost always (as docker), plus
// $BERTH_INSECURE_REGISTRIES (comma separated host:port, host or CIDR),
// --insecure-registry on pull/push/login, and registries.insecure.
//
// Daemon-wide registry options (search, block, insecure, mirrors, certs.d;
// see images/registry.h load_registry_config) come from
// $BERTH_REGISTRIES_CONFIG when set, else <root>/registries.json when it
// exists, else /etc/berth/registries.json. Per-registry CAs and client
// certificates: <root>/certs.d/<host:port>/, /etc/berth/certs.d/<host:port>/
// then /etc/docker/certs.d/ (a CA is ca.crt or any *.crt; a client pair is
// NAME.cert + NAME.key), or the colon separated directories in
// $BERTH_CERTS_D, or "certs.d" in the registries file. $BERTH_RESOLVE
// (comma separated host:port:address, as curl --resolve) pins names.
// $BERTH_UPLOAD_CHUNK_SIZE (bytes) makes push upload larger layers in
// chunks of that size (PATCH) instead of one PUT.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <iterator>
#include <memory>

#include "base/error.h"
#include "base/human.h"
#include "base/fs.h"
#include "cli/cli.h"
#include "images/images.h"
#include "images/registry.h"
#include "cli/registry_cli.h"

namespace berth::cli {

using images::ProgressEvent;

namespace {

std::string config_path(const GlobalOptions& global) {
  if (const char* dir = std::getenv("BERTH_CONFIG"); dir && *dir) return path_join(dir, "config.json");
  return path_join(global.root, "config.json");
}

}  // namespace

images::RegistryOptions registry_options(const GlobalOptions& global, const std::vector<std::string>& insecure_flags) {
  images::RegistryOptions o;
  o.certs_dirs.insert(o.certs_dirs.begin(), path_join(global.root, "certs.d"));
  std::string config;
  if (const char* env = std::getenv("BERTH_REGISTRIES_CONFIG"); env && *env)
    config = env;
  else if (std::string local = path_join(global.root, "registries.json"); ::access(local.c_str(), F_OK) == 0)
    config = local;
  else
    config = "/etc/berth/registries.json";
  images::load_registry_config(config, o);
  if (const char* env = std::getenv("BERTH_CERTS_D"); env && *env) {
    o.certs_dirs.clear();
    std::string list = env;
    for (size_t start = 0; start <= list.size();) {
      size_t colon = list.find(':', start);
      std::string item = list.substr(start, colon == std::string::npos ? std::string::npos : colon - start);
      if (!item.empty()) o.certs_dirs.push_back(item);
      if (colon == std::string::npos) break;
      start = colon + 1;
    }
  }
  if (const char* env = std::getenv("BERTH_RESOLVE"); env && *env) o.resolve = images::split_registry_list(env);
  if (const char* env = std::getenv("BERTH_UPLOAD_CHUNK_SIZE"); env && *env) {
    char* end = nullptr;
    unsigned long long n = std::strtoull(env, &end, 10);
    if (*end || n == 0) throw UsageError("BERTH_UPLOAD_CHUNK_SIZE=\"" + std::string(env) + "\": want a positive number of bytes");
    o.upload_chunk = n;
  }
  if (const char* env = std::getenv("BERTH_INSECURE_REGISTRIES"); env && *env)
    for (auto& r : images::split_registry_list(env)) o.insecure.push_back(r);
  for (auto& f : insecure_flags)
    for (auto& r : images::split_registry_list(f)) o.insecure.push_back(r);
  std::string path = config_path(global);
  o.credentials = [path](const std::string& registry) { return images::AuthFile(path).get(registry); };
  return o;
}

namespace {

// docker's registry name from the CLI argument: "host:port", "https://host/", ...
std::string registry_argument(std::string text) {
  for (const char* scheme : {"https://", "http://"})
    if (text.rfind(scheme, 0) == 0) text = text.substr(std::string(scheme).size());
  if (auto slash = text.find('/'); slash != std::string::npos) text.resize(slash);
  if (text.empty()) throw UsageError("login: name a registry");
  if (text == "index.docker.io" || text == "registry-1.docker.io") text = "docker.io";
  return text;
}

}  // namespace

// On a terminal, docker's live view: one line per layer, rewritten in place
// (cursor up, clear line) as its state changes, with progress bars.
// Otherwise plain lines, the way docker prints them when stdout is not a
// terminal: "<short id>: Pull complete"; Downloading progress is not shown.
images::ProgressFn progress_printer(bool quiet) {
  if (quiet) return {};
  if (!::isatty(STDOUT_FILENO))
    return [](const ProgressEvent& ev) {
      if (ev.kind == ProgressEvent::Kind::Advance && (ev.action == "Downloading" || ev.action == "Pushing")) return;
      std::cout << ev.id << ": " << ev.action << "\n" << std::flush;
    };
  auto lines = std::make_shared<std::vector<std::string>>();  // ids, in order of appearance
  return [lines](const ProgressEvent& ev) {
    std::string text = ev.id + ": " + ev.action;
    if (ev.kind == ProgressEvent::Kind::Advance && (ev.action == "Downloading" || ev.action == "Pushing"))
      text += " " + progress_bar(ev.done, ev.total);
    auto it = std::find(lines->begin(), lines->end(), ev.id);
    if (it == lines->end()) {
      lines->push_back(ev.id);
      std::cout << text << "\n" << std::flush;
      return;
    }
    size_t up = static_cast<size_t>(lines->end() - it);
    std::cout << "\033[" << up << "A\r\033[2K" << text << "\033[" << up << "B\r" << std::flush;
  };
}

PulledImage pull_by_name(images::Store& store, const std::string& name, const images::RegistryOptions& options,
                         const images::ProgressFn& progress,
                         const std::function<void(const images::Reference&, size_t)>& before) {
  std::vector<images::Reference> candidates = images::search_references(name, options);
  PulledImage out;
  std::string failures;
  for (size_t i = 0; i < candidates.size(); ++i) {
    out.ref = candidates[i];
    if (before) before(out.ref, candidates.size());
    try {
      out.result = images::pull_image(store, out.ref, options, progress);
      return out;
    } catch (const Error& e) {
      if (candidates.size() == 1) throw;
      failures += std::string(failures.empty() ? "" : "; ") + out.ref.domain + ": " + e.what();
    }
  }
  throw Error(name + ": not found in any search registry (registries.search in " + options.config_path + "): " + failures);
}

namespace {

void register_registry_commands(CLI::App& app, GlobalOptions& global) {
  {
    auto* cmd = add_command(app, "pull", "Download an image from a registry (or, in a compose project, its services' images)");
    auto args = std::make_shared<std::vector<std::string>>();
    auto platform = std::make_shared<std::string>();
    auto quiet = std::make_shared<bool>(false);
    auto ignore_failures = std::make_shared<bool>(false);
    auto insecure = std::make_shared<std::vector<std::string>>();
    auto project = std::make_shared<ProjectFlags>();
    cmd->add_flag("-q,--quiet", *quiet, "Suppress verbose output");
    cmd->add_option("--platform", *platform, "Set platform if server is multi-platform capable (os/arch[/variant])");
    // One value per --insecure-registry: the image name after it is not a second one.
    cmd->add_option("--insecure-registry", *insecure, "Allow plain HTTP to this registry (host:port)")->allow_extra_args(false);
    cmd->add_flag("--ignore-pull-failures", *ignore_failures, "Project: pull what it can and ignore images with pull failures");
    add_project_flags(cmd, *project);
    cmd->add_option("NAME", *args,
                    "Image reference: NAME[:TAG|@DIGEST]; with no image, or with -f/-p/--project-directory, the "
                    "project's SERVICES (compose pull)");
    cmd->callback([&global, args, platform, quiet, ignore_failures, insecure, project] {
      // docker compose's pull: no image named, or a project named.
      // In a project directory, `berth pull SERVICE...` names services.
      bool project_mode = args->empty() || !project->files.empty() || !project->project_name.empty() || !project->project_directory.empty();
      if (!project_mode)
        if (auto p = try_load_project(*project))
          project_mode = std::all_of(args->begin(), args->end(), [&](const std::string& a) { return p->services.count(a) > 0; });
      if (project_mode) {
        if (!platform->empty() || !insecure->empty())
          throw UsageError("pull: --platform and --insecure-registry apply to one image, not to a project");
        run_project_pull(*project, global, *args, *quiet, *ignore_failures);
        return;
      }
      if (args->size() != 1) throw UsageError("pull: want one image (NAME[:TAG|@DIGEST]), got " + std::to_string(args->size()));
      if (*ignore_failures) throw UsageError("pull: --ignore-pull-failures applies to a project's images");
      const std::string& ref = args->front();
      images::RegistryOptions options = registry_options(global, *insecure);
      if (!platform->empty()) options.platform = images::parse_platform(*platform);
      bool default_tag = ref.find('@') == std::string::npos && images::parse_reference_no_default(ref).tag.empty();
      if (!*quiet && default_tag) std::cout << "Using default tag: latest\n";
      images::Store store(global.root);
      PulledImage pulled = pull_by_name(store, ref, options, progress_printer(*quiet), [&](const images::Reference& r, size_t n) {
        if (!*quiet) std::cout << (r.tag.empty() ? r.digest : r.tag) << ": Pulling from " << (n > 1 ? r.repository() : r.path) << "\n" << std::flush;
      });
      if (!*quiet) {
        std::cout << "Digest: " << pulled.result.manifest_digest << "\n";
        std::cout << (pulled.result.downloaded ? "Status: Downloaded newer image for " : "Status: Image is up to date for ")
                  << pulled.ref.familiar() << "\n";
      }
      std::cout << pulled.ref.full() << "\n";
    });
  }
  {
    auto* cmd = add_command(app, "push", "Upload an image to a registry");
    auto ref = std::make_shared<std::string>();
    auto quiet = std::make_shared<bool>(false);
    auto insecure = std::make_shared<std::vector<std::string>>();
    cmd->add_flag("-q,--quiet", *quiet, "Suppress verbose output");
    cmd->add_option("--insecure-registry", *insecure, "Allow plain HTTP to this registry (host:port)");
    cmd->add_option("NAME", *ref, "Image reference: NAME[:TAG]")->required();
    cmd->callback([&global, ref, quiet, insecure] {
      images::RegistryOptions options = registry_options(global, *insecure);
      images::Reference r = images::parse_reference(*ref);
      images::Store store(global.root);
      if (!*quiet) std::cout << "The push refers to repository [" << r.familiar_repository() << "]\n" << std::flush;
      images::PushResult result = images::push_image(store, r, options, progress_printer(*quiet));
      if (!*quiet)
        std::cout << (r.tag.empty() ? r.digest : r.tag) << ": digest: " << result.manifest_digest << " size: " << result.manifest_size
                  << "\n";
      else
        std::cout << r.familiar() << "\n";
    });
  }
  {
    auto* cmd = add_command(app, "login", "Log in to a registry");
    auto registry = std::make_shared<std::string>();
    auto user = std::make_shared<std::string>();
    auto password = std::make_shared<std::string>();
    auto from_stdin = std::make_shared<bool>(false);
    auto insecure = std::make_shared<std::vector<std::string>>();
    cmd->add_option("-u,--username", *user, "Username");
    cmd->add_option("-p,--password", *password, "Password");
    cmd->add_flag("--password-stdin", *from_stdin, "Take the password from stdin");
    cmd->add_option("--insecure-registry", *insecure, "Allow plain HTTP to this registry (host:port)");
    cmd->add_option("SERVER", *registry, "Registry (host[:port])")->required();
    cmd->callback([&global, registry, user, password, from_stdin, insecure] {
      if (*from_stdin && !password->empty()) throw UsageError("--password and --password-stdin are mutually exclusive");
      if (*from_stdin && user->empty()) throw UsageError("Must provide --username with --password-stdin");
      std::string pass = *password;
      if (*from_stdin) {
        std::string line, all;
        while (std::getline(std::cin, line)) all += (all.empty() ? "" : "\n") + line;
        while (!all.empty() && (all.back() == '\n' || all.back() == '\r')) all.pop_back();
        pass = all;
      } else if (!password->empty()) {
        std::cerr << "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n";
      }
      if (user->empty() || pass.empty()) throw UsageError("login: give -u USER and -p PASSWORD or --password-stdin (no interactive prompt yet)");
      std::string name = registry_argument(*registry);
      images::RegistryOptions options = registry_options(global, *insecure);
      images::Credentials creds{*user, pass};
      images::check_login(name, creds, options);
      images::AuthFile file(config_path(global));
      file.set(name, creds);
      std::cout << "Login Succeeded\n";
    });
  }
  {
    auto* cmd = add_command(app, "search", "Search a registry's catalog for images");
    auto term = std::make_shared<std::string>();
    auto limit = std::make_shared<size_t>(25);
    auto insecure = std::make_shared<std::vector<std::string>>();
    cmd->add_option("--limit", *limit, "Max number of search results")->capture_default_str();
    cmd->add_option("--insecure-registry", *insecure, "Allow plain HTTP to this registry (host:port)");
    cmd->add_option("TERM", *term, "[REGISTRY/]TERM: the registry's repositories whose name contains TERM")->required();
    cmd->callback([&global, term, limit, insecure] {
      images::RegistryOptions options = registry_options(global, *insecure);
      // "host:5000/app" searches host:5000 for "app"; a bare term searches
      // the first search registry (registries.search), else Docker Hub.
      std::string registry, what = *term;
      if (auto slash = what.find('/'); slash != std::string::npos) {
        std::string first = what.substr(0, slash);
        if (first.find('.') != std::string::npos || first.find(':') != std::string::npos || first == "localhost") {
          registry = first;
          what = what.substr(slash + 1);
        }
      }
      if (registry.empty()) registry = options.search.empty() ? "docker.io" : options.search.front();
      std::vector<std::string> names = images::search_catalog(registry, what, options, *limit);
      // docker's table (a tabwriter: minimum width 10, padding 3).
      size_t width = std::string("NAME").size();
      for (auto& n : names) width = std::max(width, registry.size() + 1 + n.size());
      width = std::max<size_t>(width + 3, 10);
      auto pad = [](const std::string& text, size_t w) { return text + std::string(w > text.size() ? w - text.size() : 0, ' '); };
      std::cout << pad("NAME", width) << pad("DESCRIPTION", 14) << pad("STARS", 10) << "OFFICIAL\n";
      for (auto& n : names) std::cout << pad(registry + "/" + n, width) << pad("", 14) << pad("0", 10) << "\n";
    });
  }
  {
    auto* cmd = add_command(app, "logout", "Log out from a registry");
    auto registry = std::make_shared<std::string>();
    cmd->add_option("SERVER", *registry, "Registry (host[:port])")->required();
    cmd->callback([&global, registry] {
      std::string name = registry_argument(*registry);
      images::AuthFile file(config_path(global));
      if (file.erase(name))
        std::cout << "Removing login credentials for " << name << "\n";
      else
        std::cout << "Not logged in to " << name << "\n";
    });
  }
}

}  // namespace

BERTH_REGISTER_COMMANDS(310, register_registry_commands, "pull", "push", "login", "search", "logout");

}  // namespace berth::cli
