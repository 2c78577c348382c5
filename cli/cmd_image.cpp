// Image commands: images, import, load, save, tag, rmi, and the `image`
// group (ls, inspect, prune, rm, tag, import, load, save) as docker has them.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "base/error.h"
#include "base/human.h"
#include "base/template.h"
#include "base/fs.h"
#include "cli/cli.h"
#include "reconciler/image_rootfs.h"
#include "images/images.h"

namespace berth::cli {

namespace {

using images::ProgressEvent;

std::string created_since(int64_t created_unix) {
  if (created_unix <= 0) return "N/A";
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  return human_duration(now - created_unix) + " ago";
}

std::string short_hex(const std::string& id) { return id.substr(7, 12); }

// Progress on stderr: on a terminal one live bar per step (layers unpack in
// parallel, so several bars update at once, redrawn in place); otherwise one
// plain line per finished step.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool quiet) : quiet_(quiet), tty_(::isatty(STDERR_FILENO) == 1) {}

  images::ProgressFn fn() {
    return [this](const ProgressEvent& ev) { on_event(ev); };
  }

 private:
  void on_event(const ProgressEvent& ev) {
    if (quiet_) return;
    std::string label = ev.action + (ev.id.empty() ? "" : " " + ev.id);
    std::string text;
    switch (ev.kind) {
      case ProgressEvent::Kind::AlreadyExists:
        text = "already exists";
        break;
      case ProgressEvent::Kind::Done:
        text = tty_ ? progress_bar(ev.done, ev.total) + "  done" : "done";
        break;
      case ProgressEvent::Kind::Start:
      case ProgressEvent::Kind::Advance:
        if (!tty_) return;
        text = progress_bar(ev.done, ev.total);
        break;
    }
    if (!tty_) {
      std::cerr << label << "  " << text << "\n" << std::flush;
      return;
    }
    auto it = std::find_if(lines_.begin(), lines_.end(), [&](auto& l) { return l.first == label; });
    if (it == lines_.end())
      lines_.emplace_back(label, text);
    else
      it->second = text;
    redraw();
  }


  // Moves up over the lines drawn before and draws them all again.
  void redraw() {
    std::string out;
    if (drawn_ > 0) out += "\033[" + std::to_string(drawn_) + "A";
    for (auto& [label, text] : lines_) out += "\r" + label + "  " + text + "\033[K\n";
    drawn_ = lines_.size();
    std::cerr << out << std::flush;
  }

  bool quiet_;
  bool tty_;
  std::vector<std::pair<std::string, std::string>> lines_;
  size_t drawn_ = 0;
};

// Opens FILE for reading, or stdin for "-" / "".
UniqueFd open_input(const std::string& path, const char* what) {
  if (path.empty() || path == "-") {
    if (::isatty(STDIN_FILENO) == 1)
      throw UsageError(std::string(what) + ": requested to read from stdin, but stdin is a terminal (use -i FILE or redirect)");
    return UniqueFd(::dup(STDIN_FILENO));
  }
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno(std::string(what) + ": cannot open " + path);
  return fd;
}

struct ListOptions {
  bool quiet = false, all = false, digests = false, no_trunc = false;
  std::string format;
  std::string filter;
};

void list_images(const GlobalOptions& global, const ListOptions& o) {
  if (!o.format.empty() && o.format != "json" && o.format != "table")
    throw UsageError("--format: unknown format \"" + o.format + "\" (want json or table)");
  images::Store store(global.root);
  std::optional<images::Reference> filter;
  if (!o.filter.empty()) filter = images::parse_reference_no_default(o.filter);
  struct Row {
    std::string repo, tag, digest, id, created, size;
    const images::ImageSummary* image;
  };
  std::vector<images::ImageSummary> all = store.list();
  std::vector<Row> rows;
  for (auto& img : all) {
    std::string id = o.no_trunc ? img.id : short_hex(img.id);
    std::string size = human_size(static_cast<double>(img.size), 3);  // docker images: 3 digits
    std::string created = created_since(img.created_unix);
    std::vector<std::pair<std::string, std::string>> names;
    for (auto& t : img.repo_tags) {
      images::Reference ref = images::parse_reference(t);
      if (filter && (filter->repository() != ref.repository() || (!filter->tag.empty() && filter->tag != ref.tag))) continue;
      std::string digest = "<none>";
      for (auto& d : img.repo_digests)
        if (d.rfind(ref.repository() + "@", 0) == 0) digest = d.substr(d.find('@') + 1);
      rows.push_back({ref.familiar_repository(), ref.tag, digest, id, created, size, &img});
    }
    if (img.repo_tags.empty() && !filter) rows.push_back({"<none>", "<none>", "<none>", id, created, size, &img});
  }
  if (o.quiet) {
    std::set<std::string> seen;
    for (auto& r : rows)
      if (seen.insert(r.id).second) std::cout << r.id << "\n";
    return;
  }
  if (o.format == "json") {
    for (auto& r : rows) {
      char when[64] = "";
      std::time_t t = r.image->created_unix;
      std::tm tm{};
      ::gmtime_r(&t, &tm);
      std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
      nlohmann::json j = {{"Containers", "N/A"}, {"CreatedAt", when},     {"CreatedSince", r.created}, {"Digest", r.digest},
                          {"ID", r.id},          {"Repository", r.repo},   {"SharedSize", "N/A"},      {"Size", r.size},
                          {"Tag", r.tag},        {"UniqueSize", "N/A"},    {"VirtualSize", r.size}};
      std::cout << j.dump() << "\n";
    }
    return;
  }
  std::vector<std::vector<std::string>> table;
  std::vector<std::string> header = {"REPOSITORY", "TAG"};
  if (o.digests) header.push_back("DIGEST");
  for (const char* h : {"IMAGE ID", "CREATED", "SIZE"}) header.push_back(h);
  table.push_back(header);
  for (auto& r : rows) {
    std::vector<std::string> line = {r.repo, r.tag};
    if (o.digests) line.push_back(r.digest);
    for (auto* s : {&r.id, &r.created, &r.size}) line.push_back(*s);
    table.push_back(line);
  }
  std::vector<size_t> widths(header.size(), 0);
  for (auto& line : table)
    for (size_t i = 0; i < line.size(); ++i) widths[i] = std::max(widths[i], line[i].size());
  for (auto& line : table) {
    std::string out;
    for (size_t i = 0; i < line.size(); ++i) {
      out += line[i];
      if (i + 1 < line.size()) out += std::string(widths[i] - line[i].size() + 3, ' ');
    }
    std::cout << out << "\n";
  }
}

void add_ls_options(CLI::App* cmd, std::shared_ptr<ListOptions> o) {
  cmd->add_option("REPOSITORY", o->filter, "Only images of this repository[:tag]");
  cmd->add_flag("-q,--quiet", o->quiet, "Only show image IDs");
  cmd->add_flag("-a,--all", o->all, "Show all images (berth keeps no intermediate images)");
  cmd->add_flag("--digests", o->digests, "Show digests");
  cmd->add_flag("--no-trunc", o->no_trunc, "Don't truncate output");
  cmd->add_option("--format", o->format, "Output format: table or json");
}

void print_removal(const images::RemoveReport& r, bool prune_style) {
  for (auto& u : r.untagged) std::cout << (prune_style ? "untagged: " : "Untagged: ") << u << "\n";
  for (auto& d : r.deleted) std::cout << (prune_style ? "deleted: " : "Deleted: ") << d << "\n";
}

void add_rm(CLI::App& parent, const std::string& name, GlobalOptions& global) {
  auto* cmd = add_command(parent, name, "Remove one or more images");
  auto images_ = std::make_shared<std::vector<std::string>>();
  auto force = std::make_shared<bool>(false);
  cmd->add_option("IMAGE", *images_, "Images to remove")->required();
  cmd->add_flag("-f,--force", *force, "Remove even if tagged in several repositories");
  auto no_prune = std::make_shared<bool>(false);
  cmd->add_flag("--no-prune", *no_prune, "Accepted for docker compatibility (berth keeps no parent images)");
  cmd->callback([&global, images_, force, no_prune] {
    reconciler::sync_image_holds(global.root);
    images::Store store(global.root);
    bool failed = false;
    for (auto& name : *images_) {
      try {
        print_removal(store.remove(name, *force), false);
      } catch (const Error& e) {
        std::cout.flush();
        std::cerr << "Error: " << e.what() << "\n";
        failed = true;
      }
    }
    if (failed) exit_with(1);
  });
}

void add_tag(CLI::App& parent, const std::string& name, GlobalOptions& global) {
  auto* cmd = add_command(parent, name, "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE");
  auto args = std::make_shared<std::pair<std::string, std::string>>();
  cmd->add_option("SOURCE_IMAGE", args->first, "Existing image")->required();
  cmd->add_option("TARGET_IMAGE", args->second, "New name[:tag]")->required();
  cmd->callback([&global, args] { images::Store(global.root).tag(args->first, args->second); });
}

void add_import(CLI::App& parent, const std::string& name, GlobalOptions& global) {
  auto* cmd = add_command(parent, name, "Import the contents from a tarball to create a filesystem image");
  struct Opts {
    std::string file, reference, message;
    std::vector<std::string> changes;
    std::string platform;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("FILE", o->file, "Rootfs tarball (tar, gzip, zstd, bzip2, xz), or - for stdin")->required();
  cmd->add_option("REPOSITORY[:TAG]", o->reference, "Name for the image");
  cmd->add_option("-c,--change", o->changes, "Apply a Dockerfile instruction (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL)")
      ->allow_extra_args(false);  // one instruction per -c, as docker: FILE may follow
  cmd->add_option("-m,--message", o->message, "Commit message for the imported image");
  cmd->add_option("--platform", o->platform, "Accepted for docker compatibility (the host platform is used)");
  cmd->callback([&global, o] {
    images::ImportOptions options;
    if (!o->reference.empty()) options.reference = images::parse_reference(o->reference);
    options.changes = o->changes;
    options.message = o->message;
    options.source_name = o->file;
    UniqueFd in = open_input(o->file, "import");
    images::Store store(global.root);
    std::string id;
    {
      ProgressPrinter printer(false);
      id = store.import_rootfs(in.get(), options, printer.fn());
    }
    std::cout << id << "\n";
  });
}

void add_load(CLI::App& parent, const std::string& name, GlobalOptions& global) {
  auto* cmd = add_command(parent, name, "Load an image from a tar archive (docker save or OCI layout) or STDIN");
  auto input = std::make_shared<std::string>();
  auto quiet = std::make_shared<bool>(false);
  cmd->add_option("-i,--input", *input, "Read from tar archive file, instead of STDIN");
  cmd->add_flag("-q,--quiet", *quiet, "Suppress the load output");
  cmd->callback([&global, input, quiet] {
    UniqueFd in = open_input(*input, "load");
    images::Store store(global.root);
    images::LoadResult result;
    {
      ProgressPrinter printer(*quiet);
      result = store.load(in.get(), printer.fn());
    }
    for (auto& t : result.tagged) std::cout << "Loaded image: " << t << "\n";
    for (auto& id : result.untagged) std::cout << "Loaded image ID: " << id << "\n";
  });
}

void add_save(CLI::App& parent, const std::string& name, GlobalOptions& global) {
  auto* cmd = add_command(parent, name, "Save one or more images to a tar archive (streamed to STDOUT by default)");
  struct Opts {
    std::vector<std::string> images;
    std::string output, format = "docker";
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("IMAGE", o->images, "Images to save")->required();
  cmd->add_option("-o,--output", o->output, "Write to a file, instead of STDOUT");
  cmd->add_option("--format", o->format, "Archive format: docker (default) or oci");
  cmd->callback([&global, o] {
    images::ArchiveFormat format;
    if (o->format == "docker")
      format = images::ArchiveFormat::Docker;
    else if (o->format == "oci")
      format = images::ArchiveFormat::Oci;
    else
      throw UsageError("--format: unknown archive format \"" + o->format + "\" (want docker or oci)");
    images::Store store(global.root);
    ProgressPrinter printer(::isatty(STDERR_FILENO) != 1);  // plain "done" lines would only clutter pipelines
    if (o->output.empty() || o->output == "-") {
      if (::isatty(STDOUT_FILENO) == 1)
        throw UsageError("save: cowardly refusing to write an archive to a terminal; use -o FILE or redirect");
      store.save(o->images, format, STDOUT_FILENO, printer.fn());
      return;
    }
    // Write next to the target and rename: a failed save leaves no half archive behind.
    std::string tmp = o->output + ".berth-tmp." + std::to_string(::getpid());
    UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!out) throw_errno("save: cannot create " + tmp);
    try {
      store.save(o->images, format, out.get(), printer.fn());
      if (::close(out.release()) != 0) throw_errno("save: cannot write " + tmp);
      if (::rename(tmp.c_str(), o->output.c_str()) != 0) throw_errno("save: cannot rename " + tmp + " to " + o->output);
    } catch (...) {
      ::unlink(tmp.c_str());
      throw;
    }
  });
}

void add_inspect(CLI::App& parent, GlobalOptions& global) {
  auto* cmd = add_command(parent, "inspect", "Display detailed information on one or more images");
  auto names = std::make_shared<std::vector<std::string>>();
  auto format = std::make_shared<std::string>();
  cmd->add_option("IMAGE", *names, "Images to inspect")->required();
  cmd->add_option("-f,--format", *format, "Format the output: json (the default) or a Go template ({{.Config.Cmd}})");
  cmd->callback([&global, names, format] {
    images::Store store(global.root);
    nlohmann::json out = nlohmann::json::array();
    std::vector<std::string> errors;
    for (auto& n : *names) {
      try {
        out.push_back(store.inspect(n));
      } catch (const Error& e) {
        errors.push_back(e.what());
      }
    }
    if (format->empty() || *format == "json") {
      std::cout << out.dump(4) << "\n";
    } else {
      for (auto& j : out) std::cout << render_template(*format, j) << "\n";
    }
    if (!errors.empty()) {
      std::cout.flush();
      for (auto& e : errors) std::cerr << "Error: " << e << "\n";
      exit_with(1);
    }
  });
}

void add_prune(CLI::App& parent, GlobalOptions& global) {
  auto* cmd = add_command(parent, "prune", "Remove unused images");
  auto all = std::make_shared<bool>(false);
  auto force = std::make_shared<bool>(false);
  cmd->add_flag("-a,--all", *all, "Remove all images not used by a container, not just dangling ones");
  cmd->add_flag("-f,--force", *force, "Do not prompt for confirmation");
  cmd->callback([&global, all, force] {
    if (!*force) {
      std::cout << (*all ? "WARNING! This will remove all images without at least one container associated to them.\n"
                         : "WARNING! This will remove all dangling images.\n")
                << "Are you sure you want to continue? [y/N] " << std::flush;
      std::string answer;
      std::getline(std::cin, answer);
      if (answer != "y" && answer != "Y" && answer != "yes") return;
    }
    reconciler::sync_image_holds(global.root);
    images::RemoveReport r = images::Store(global.root).prune(*all);
    if (!r.untagged.empty() || !r.deleted.empty()) {
      std::cout << "Deleted Images:\n";
      print_removal(r, true);
      std::cout << "\n";
    }
    std::cout << "Total reclaimed space: " << human_size(static_cast<double>(r.reclaimed)) << "\n";
  });
}

void register_image_commands(CLI::App& app, GlobalOptions& global) {
  auto* images_cmd = add_command(app, "images", "List images");
  auto ls_options = std::make_shared<ListOptions>();
  add_ls_options(images_cmd, ls_options);
  images_cmd->callback([&global, ls_options] { list_images(global, *ls_options); });

  add_import(app, "import", global);
  add_load(app, "load", global);
  add_save(app, "save", global);
  add_tag(app, "tag", global);
  add_rm(app, "rmi", global);

  auto* group = add_command(app, "image", "Manage images");
  group->require_subcommand(1);
  auto* ls = add_command(*group, "ls", "List images");
  ls->alias("list");
  auto ls_group_options = std::make_shared<ListOptions>();
  add_ls_options(ls, ls_group_options);
  ls->callback([&global, ls_group_options] { list_images(global, *ls_group_options); });
  add_inspect(*group, global);
  add_prune(*group, global);
  add_rm(*group, "rm", global);
  add_tag(*group, "tag", global);
  add_import(*group, "import", global);
  add_load(*group, "load", global);
  add_save(*group, "save", global);
}

}  // namespace

BERTH_REGISTER_COMMANDS(300, register_image_commands, "images", "import", "load", "save", "tag", "rmi", "image");

}  // namespace berth::cli
