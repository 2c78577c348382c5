// compose's image transfers: pulling a project's images before `up` (by
// each service's pull_policy, or `up --pull`), `compose pull` (also `berth
// pull` in a project) and `compose push`. Images are pulled in parallel,
// each image once however many services use it; the lines go to stderr the
// way compose prints them without a terminal:
//   web Pulling
//     4f4fb700ef54 Pulling fs layer
//     4f4fb700ef54 Pull complete
//   web Pulled
#include <algorithm>
#include <atomic>
#include <cctype>
#include <iostream>
#include <map>
#include <optional>
#include <mutex>
#include <set>
#include <thread>

#include "base/error.h"
#include "base/time.h"
#include "cli/cli.h"
#include "cli/project_flags.h"
#include "cli/registry_cli.h"
#include "images/images.h"
#include "images/registry.h"
#include "reconciler/process_driver.h"
#include "spec/model.h"

namespace berth::cli {

namespace {

constexpr std::size_t kDefaultPullParallel = 4;

std::mutex g_output;
void say(const std::string& line) {
  std::lock_guard<std::mutex> guard(g_output);
  std::cerr << line << "\n" << std::flush;
}

// Seconds between refreshes of daily, weekly and every_<N><w|d|h|m|s>...;
// 0 for a policy without an interval; -1 for a malformed every_.
long long refresh_seconds(const std::string& policy) {
  if (policy == "daily") return 24 * 3600;
  if (policy == "weekly") return 7 * 24 * 3600;
  if (policy.rfind("every_", 0) != 0) return 0;
  std::string text = policy.substr(6);
  if (text.empty()) return -1;
  long long total = 0;
  for (size_t i = 0; i < text.size();) {
    size_t j = i;
    while (j < text.size() && std::isdigit(static_cast<unsigned char>(text[j]))) ++j;
    if (j == i || j == text.size() || j - i > 9) return -1;
    long long n = std::stoll(text.substr(i, j - i));
    switch (text[j]) {
      case 'w': n *= 7 * 24 * 3600; break;
      case 'd': n *= 24 * 3600; break;
      case 'h': n *= 3600; break;
      case 'm': n *= 60; break;
      case 's': break;
      default: return -1;
    }
    total += n;
    i = j + 1;
  }
  return total;
}

// One image to pull, for the services that use it.
struct PullJob {
  std::string image;
  std::vector<std::string> services;
  std::string error;
};

void run_jobs(std::vector<PullJob>& jobs, const GlobalOptions& global, bool quiet, int parallel_flag) {
  if (jobs.empty()) return;
  images::RegistryOptions options = registry_options(global, {});
  images::Store store(global.root);
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t k; (k = next++) < jobs.size();) {
      PullJob& job = jobs[k];
      const std::string& shown = job.services.front();
      if (!quiet) say(shown + " Pulling");
      images::ProgressFn progress;
      if (!quiet)
        progress = [](const images::ProgressEvent& ev) {
          // As compose without a terminal: every state, not the byte counts.
          if (ev.kind == images::ProgressEvent::Kind::Advance && ev.action == "Downloading") return;
          say("  " + ev.id + " " + ev.action);
        };
      try {
        pull_by_name(store, job.image, options, progress);
        if (!quiet)
          for (auto& s : job.services) say(s + " Pulled");
      } catch (const Error& e) {
        job.error = e.what();
        if (!quiet) say(shown + " Error " + e.what());
      }
    }
  };
  size_t threads = std::min(jobs.size(), reconciler::parallel_limit(parallel_flag, kDefaultPullParallel));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
}

bool selected(const std::vector<std::string>& services, const std::string& name) {
  return services.empty() || std::find(services.begin(), services.end(), name) != services.end();
}

// -f/-p given after `compose` and after the verb: the verb's win (as cmd_compose.cpp's verbs).
ProjectFlags with_outer(const std::shared_ptr<ProjectFlags>& outer, ProjectFlags f) {
  if (!outer) return f;
  if (f.files.empty()) f.files = outer->files;
  if (f.project_name.empty()) f.project_name = outer->project_name;
  if (f.project_directory.empty()) f.project_directory = outer->project_directory;
  if (f.env_files.empty()) f.env_files = outer->env_files;
  if (f.profiles.empty()) f.profiles = outer->profiles;
  if (f.parallel == 0) f.parallel = outer->parallel;
  return f;
}

void check_services(const spec::Project& project, const std::vector<std::string>& services) {
  for (auto& s : services)
    if (!project.services.count(s)) throw UsageError("no such service: " + s);
}

}  // namespace

void check_pull_policy(const std::string& policy, const std::string& what) {
  static const std::set<std::string> known = {"always", "never", "missing", "if_not_present", "build", "daily", "weekly", "refresh"};
  if (known.count(policy)) return;
  if (policy.rfind("every_", 0) == 0 && refresh_seconds(policy) > 0) return;
  throw UsageError(what + ": invalid pull policy \"" + policy + "\" (want always, missing, never, build, daily, weekly or every_<N>[wdhms])");
}

std::map<std::string, std::string> pull_project_images(const spec::Project& project, const GlobalOptions& global,
                                                       const ProjectPullOptions& o) {
  std::map<std::string, std::string> errors;
  std::vector<PullJob> jobs;
  std::map<std::string, size_t> job_of;  // image -> jobs index
  std::optional<images::Store> store;
  // One store lookup per image, not per service: twenty services of one
  // image cost one read of the index on a no-op `up`.
  std::map<std::string, std::optional<images::ImageSummary>> known;
  auto local = [&](const std::string& image) -> std::optional<images::ImageSummary> {
    if (auto it = known.find(image); it != known.end()) return it->second;
    if (!store) store.emplace(global.root);
    std::optional<images::ImageSummary> found;
    try {
      found = store->summary(image);
    } catch (const Error&) {
    }
    return known[image] = found;
  };
  double now = now_epoch_seconds();
  for (const auto& [name, s] : project.services) {
    if (!selected(o.services, name) || s.image.empty()) continue;
    std::string declared = o.policy.empty() || o.policy == "policy" ? s.pull_policy : o.policy;
    if (!declared.empty()) check_pull_policy(declared, "service " + name + ": pull_policy");
    std::string policy = declared;
    if (policy.empty() || policy == "if_not_present" || policy == "refresh") policy = "missing";
    bool pull = false;
    if (!o.for_up) {
      // compose pull: every image, except those never pulled and, when
      // missing is asked for (the service's pull_policy or --policy), those
      // already here.
      if (policy == "never" || policy == "build") {
        if (!o.quiet) say(name + " Skipped - pull_policy is " + policy);
        continue;
      }
      if (!declared.empty() && policy == "missing" && local(s.image)) {
        if (!o.quiet) say(name + " Skipped - Image is already present locally");
        continue;
      }
      pull = true;
    } else if (policy == "always") {
      pull = true;
    } else {
      auto have = local(s.image);
      if (policy == "never") {
        if (!have) errors[name] = "Unable to find image '" + s.image + "' locally, and its pull_policy is never (pull it first: berth pull " + s.image + ")";
        continue;
      }
      if (policy == "build") {
        if (!have) errors[name] = "Unable to find image '" + s.image + "' locally, and its pull_policy is build, but berth cannot build images yet";
        continue;
      }
      long long every = refresh_seconds(policy);
      if (!have) {
        pull = true;
      } else if (every > 0) {
        // compose refreshes an image tagged longer ago than the interval.
        double tagged = rfc3339_seconds(store->inspect(have->id)["Metadata"].value("LastTagTime", ""));
        pull = tagged <= 0 || now - tagged >= static_cast<double>(every);
      }
    }
    if (!pull) continue;
    auto it = job_of.find(s.image);
    if (it == job_of.end()) {
      job_of[s.image] = jobs.size();
      jobs.push_back(PullJob{s.image, {name}, ""});
    } else {
      jobs[it->second].services.push_back(name);
      if (!o.quiet) say(name + " Skipped - Image is already being pulled by " + jobs[it->second].services.front());
    }
  }
  run_jobs(jobs, global, o.quiet, o.parallel);
  for (auto& job : jobs) {
    if (job.error.empty() || o.ignore_failures) continue;
    // As docker run: say first that the image is not here, when it is not.
    std::string what = o.for_up && !local(job.image) ? "Unable to find image '" + job.image + "' locally; pulling it: " : "pulling " + job.image + ": ";
    for (auto& s : job.services) errors[s] = what + job.error;
  }
  return errors;
}

void run_project_pull(const ProjectFlags& flags, const GlobalOptions& global, const std::vector<std::string>& services, bool quiet,
                      bool ignore_failures, const std::string& policy) {
  spec::Project project = load_project_or_exit(flags, services);
  check_services(project, services);
  ProjectPullOptions o;
  o.quiet = quiet;
  o.ignore_failures = ignore_failures;
  o.services = services;
  o.policy = policy;
  o.parallel = flags.parallel;
  auto errors = pull_project_images(project, global, o);
  if (errors.empty()) return;
  for (auto& [service, error] : errors) std::cerr << "Error service " << service << ": " << error << "\n";
  exit_with(1);
}

void add_compose_pull(CLI::App& parent, GlobalOptions& global, const std::shared_ptr<ProjectFlags>& outer) {
  struct Flags {
    ProjectFlags project;
    std::vector<std::string> services;
    bool quiet = false, ignore_failures = false;
    std::string policy;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = add_command(parent, "pull", "Pull service images");
  add_project_flags(cmd, f->project);
  cmd->add_option("--policy", f->policy, "Apply pull policy (\"missing\"|\"always\")")
      ->check(CLI::IsMember({"missing", "always"}));
  cmd->add_flag("-q,--quiet", f->quiet, "Pull without printing progress information");
  cmd->add_flag("--ignore-pull-failures", f->ignore_failures, "Pull what it can and ignores images with pull failures");
  cmd->add_option("services", f->services, "Services whose images to pull (default: all)");
  cmd->callback([f, outer, &global] {
    ProjectFlags project = with_outer(outer, f->project);
    run_project_pull(project, global, f->services, f->quiet, f->ignore_failures, f->policy);
  });
}

void add_compose_push(CLI::App& parent, GlobalOptions& global, const std::shared_ptr<ProjectFlags>& outer) {
  struct Flags {
    ProjectFlags project;
    std::vector<std::string> services;
    bool quiet = false, ignore_failures = false;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = add_command(parent, "push", "Push service images");
  add_project_flags(cmd, f->project);
  cmd->add_flag("-q,--quiet", f->quiet, "Push without printing progress information");
  cmd->add_flag("--ignore-push-failures", f->ignore_failures, "Push what it can and ignores images with push failures");
  cmd->add_option("services", f->services, "Services whose images to push (default: all)");
  cmd->callback([f, outer, &global] {
    ProjectFlags flags = with_outer(outer, f->project);
    spec::Project project = load_project_or_exit(flags, f->services);
    check_services(project, f->services);
    images::RegistryOptions options = registry_options(global, {});
    images::Store store(global.root);
    std::set<std::string> pushed;
    int failed = 0;
    for (const auto& [name, s] : project.services) {
      if (!selected(f->services, name)) continue;
      // As compose: only images the project builds are pushed (a service
      // with both build and image); the others are someone else's.
      if (!s.build || s.image.empty()) {
        if (!f->quiet) say(name + " Skipped");
        continue;
      }
      if (!pushed.insert(s.image).second) continue;
      if (!f->quiet) say(name + " Pushing");
      images::ProgressFn progress;
      if (!f->quiet)
        progress = [](const images::ProgressEvent& ev) {
          if (ev.kind == images::ProgressEvent::Kind::Advance && ev.action == "Pushing") return;
          say("  " + ev.id + " " + ev.action);
        };
      try {
        images::push_image(store, images::parse_reference(s.image), options, progress);
        if (!f->quiet) say(name + " Pushed");
      } catch (const Error& e) {
        std::cerr << "Error service " << name << ": pushing " << s.image << ": " << e.what() << "\n";
        if (!f->ignore_failures) ++failed;
      }
    }
    if (failed) exit_with(1);
  });
}

}  // namespace berth::cli
