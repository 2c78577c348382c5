// `berth volume create|ls|inspect|rm|prune`, docker's flags, output and
// exit codes (1 for a failed volume command). The store is runtime/volume.h.
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"
#include "base/human.h"
#include "base/template.h"
#include "cli/cli.h"
#include "cli/table.h"
#include "runtime/volume.h"

namespace berth::cli {

namespace {

using runtime::Volume;
using runtime::VolumeStore;

VolumeStore store_for(const GlobalOptions& g) { return VolumeStore(runtime::Paths{g.root, g.run_root, {}}); }

std::map<std::string, std::string> parse_pairs(const std::vector<std::string>& items, const char* what) {
  std::map<std::string, std::string> out;
  for (auto& l : items) {
    auto eq = l.find('=');
    if (l.empty() || eq == 0) throw Error(std::string("invalid ") + what + " \"" + l + "\" (want key=value)", 0, 1);
    out[l.substr(0, eq)] = eq == std::string::npos ? "" : l.substr(eq + 1);
  }
  return out;
}

nlohmann::json inspect_json(const Volume& v) {
  return {{"CreatedAt", v.created_at},
          {"Driver", v.driver},
          {"Labels", v.labels.empty() ? nlohmann::json() : nlohmann::json(v.labels)},
          {"Mountpoint", v.mountpoint},
          {"Name", v.name},
          {"Options", v.options.empty() ? nlohmann::json() : nlohmann::json(v.options)},
          {"Scope", "local"}};
}

std::vector<std::string> split_cells(const std::string& line) {
  std::vector<std::string> cells;
  size_t pos = 0;
  for (size_t tab; (tab = line.find('\t', pos)) != std::string::npos; pos = tab + 1) cells.push_back(line.substr(pos, tab - pos));
  cells.push_back(line.substr(pos));
  return cells;
}

bool has_label(const Volume& v, const std::string& filter) {
  auto eq = filter.find('=');
  auto it = v.labels.find(filter.substr(0, eq));
  return it != v.labels.end() && (eq == std::string::npos || it->second == filter.substr(eq + 1));
}

void register_volume_commands(CLI::App& app, GlobalOptions& global) {
  auto* volume = add_command(app, "volume", "Manage volumes");
  volume->require_subcommand(1);

  struct CreateFlags {
    std::string positional, name, driver = "local";
    std::vector<std::string> labels, options;
  };
  auto cf = std::make_shared<CreateFlags>();
  auto* create = add_command(*volume, "create", "Create a volume");
  create->add_option("VOLUME", cf->positional, "Volume name (default: a random 64-hex name)");
  create->add_option("--name", cf->name, "Specify volume name");
  create->add_option("-d,--driver", cf->driver, "Specify volume driver name (local)");
  create->add_option("--label", cf->labels, "Set metadata for a volume")->allow_extra_args(false);
  create->add_option("-o,--opt", cf->options, "Set driver specific options (type, device, o)")
      ->allow_extra_args(false);
  create->callback([&global, cf] {
    if (!cf->positional.empty() && !cf->name.empty() && cf->positional != cf->name)
      throw Error("conflicting options: either specify --name or provide positional arg, not both", 0, 1);
    runtime::VolumeCreate req;
    req.name = cf->name.empty() ? cf->positional : cf->name;
    req.driver = cf->driver;
    req.labels = parse_pairs(cf->labels, "label");
    req.options = parse_pairs(cf->options, "option");
    // Unnamed: a random name, but not anonymous in docker's sense (prune
    // without -a keeps it); only volumes made for a container are.
    std::cout << store_for(global).create(req).name << "\n";
  });

  struct LsFlags {
    bool quiet = false;
    std::vector<std::string> filters;
    std::string format;
  };
  auto lf = std::make_shared<LsFlags>();
  auto* ls = add_command(*volume, "ls", "List volumes");
  ls->alias("list");
  ls->add_flag("-q,--quiet", lf->quiet, "Only display volume names");
  ls->add_option("-f,--filter", lf->filters, "Provide filter values (e.g. 'dangling=true', 'label=k=v')")
      ->allow_extra_args(false);
  ls->add_option("--format", lf->format, "Format output: table, json or a template ({{.Name}})");
  ls->callback([&global, lf] {
    auto store = store_for(global);
    // Same key ORs, different keys AND, as docker's filters.
    std::map<std::string, std::vector<std::string>> filters;
    for (auto& f : lf->filters) {
      auto eq = f.find('=');
      if (eq == std::string::npos) throw Error("bad format of filter (expected name=value): " + f, 0, 1);
      std::string key = f.substr(0, eq), value = f.substr(eq + 1);
      if (key != "name" && key != "driver" && key != "label" && key != "dangling")
        throw Error("Invalid filter '" + key + "'", 0, 1);
      if (key == "dangling" && value != "true" && value != "false" && value != "1" && value != "0")
        throw Error("Invalid filter 'dangling=[" + value + "]'", 0, 1);
      filters[key].push_back(value);
    }
    std::vector<Volume> shown;
    for (auto& v : store.list()) {
      bool ok = true;
      for (auto& [key, values] : filters) {
        bool any = false;
        for (auto& value : values) {
          if (key == "name") any |= v.name.find(value) != std::string::npos;
          else if (key == "driver") any |= v.driver == value;
          else if (key == "label") any |= has_label(v, value);
          else if (key == "dangling") any |= store.users(v.name).empty() == (value == "true" || value == "1");
        }
        ok &= any;
      }
      if (ok) shown.push_back(v);
    }
    if (lf->quiet) {
      for (auto& v : shown) std::cout << v.name << "\n";
      return;
    }
    if (lf->format.empty() || lf->format == "table") {
      std::vector<std::vector<std::string>> rows = {{"DRIVER", "VOLUME NAME"}};
      for (auto& v : shown) rows.push_back({v.driver, v.name});
      print_table(rows, 10);
      return;
    }
    // "table TEMPLATE": a header of the fields' docker names, then one
    // row per volume, cells split at tabs and aligned as docker's tabwriter.
    bool table = lf->format.starts_with("table ");
    std::string tmpl = table ? lf->format.substr(6) : lf->format;
    // docker's formatter: surrounding spaces trimmed, \t and \n unescaped.
    tmpl.erase(0, tmpl.find_first_not_of(' '));
    while (!tmpl.empty() && tmpl.back() == ' ') tmpl.pop_back();
    for (auto [esc, ch] : {std::pair{"\\t", '\t'}, std::pair{"\\n", '\n'}})
      for (size_t at; (at = tmpl.find(esc)) != std::string::npos;) tmpl.replace(at, 2, 1, ch);
    std::vector<std::vector<std::string>> rows;
    if (table) {
      static const std::map<std::string, std::string> headers = {
          {"Name", "VOLUME NAME"}, {"Driver", "DRIVER"},   {"Scope", "SCOPE"},   {"Mountpoint", "MOUNTPOINT"},
          {"Labels", "LABELS"},    {"Links", "LINKS"},     {"Size", "SIZE"},     {"Group", "GROUP"},
          {"Status", "STATUS"},    {"Availability", "AVAILABILITY"}};
      nlohmann::json names = nlohmann::json::object();
      for (auto& [field, header] : headers) names[field] = header;
      rows.push_back(split_cells(render_template(tmpl, names)));
    }
    for (auto& v : shown) {
      std::string labels;
      for (auto& [k, val] : v.labels) labels += (labels.empty() ? "" : ",") + k + "=" + val;
      nlohmann::json j = {{"Availability", "N/A"}, {"Driver", v.driver},         {"Group", "N/A"},
                          {"Labels", labels},      {"Links", "N/A"},            {"Mountpoint", v.mountpoint},
                          {"Name", v.name},        {"Scope", "local"},          {"Size", "N/A"},
                          {"Status", "N/A"}};
      std::string line = lf->format == "json" ? j.dump() : render_template(tmpl, j);
      if (table) rows.push_back(split_cells(line));
      else std::cout << line << "\n";
    }
    if (table) print_table(rows, 10);
  });

  auto inspect_names = std::make_shared<std::vector<std::string>>();
  auto inspect_format = std::make_shared<std::string>();
  auto* inspect = add_command(*volume, "inspect", "Display detailed information on one or more volumes");
  inspect->add_option("VOLUME", *inspect_names, "Volume names")->required();
  inspect->add_option("-f,--format", *inspect_format, "Format output: json or a template ({{.Mountpoint}})");
  inspect->callback([&global, inspect_names, inspect_format] {
    auto store = store_for(global);
    nlohmann::json out = nlohmann::json::array();
    std::vector<std::string> errors;
    for (auto& name : *inspect_names) {
      try {
        out.push_back(inspect_json(store.get(name)));
      } catch (const Error& e) {
        errors.push_back(e.what());
      }
    }
    auto& f = *inspect_format;
    if (f.empty() || f == "json") {
      std::cout << out.dump(4) << "\n";
    } else {
      for (auto& j : out) std::cout << render_template(f, j) << "\n";
    }
    for (auto& e : errors) std::cerr << "Error response from daemon: " << e << "\n";
    if (!errors.empty()) exit_with(1);
  });

  auto rm_names = std::make_shared<std::vector<std::string>>();
  auto rm_force = std::make_shared<bool>(false);
  auto* rm = add_command(*volume, "rm", "Remove one or more volumes");
  rm->alias("remove");
  rm->add_option("VOLUME", *rm_names, "Volume names")->required();
  rm->add_flag("-f,--force", *rm_force, "Do not error if the volume does not exist");
  rm->callback([&global, rm_names, rm_force] {
    auto store = store_for(global);
    bool failed = false;
    for (auto& name : *rm_names) {
      try {
        if (*rm_force && !store.find(name)) {
          std::cout << name << "\n";  // docker prints it all the same
          continue;
        }
        store.remove(name);
        std::cout << name << "\n";
      } catch (const Error& e) {
        std::cerr << "Error response from daemon: " << e.what() << "\n";
        failed = true;
      }
    }
    if (failed) exit_with(1);
  });

  auto prune_force = std::make_shared<bool>(false), prune_all = std::make_shared<bool>(false);
  auto prune_filters = std::make_shared<std::vector<std::string>>();
  auto* prune = add_command(*volume, "prune", "Remove unused local volumes");
  prune->add_flag("-f,--force", *prune_force, "Do not prompt for confirmation");
  prune->add_flag("-a,--all", *prune_all, "Remove all unused volumes, not just anonymous ones");
  prune->add_option("--filter", *prune_filters, "Provide filter values (e.g. 'label=<key>=<value>', 'all=true')")
      ->allow_extra_args(false);
  prune->callback([&global, prune_force, prune_all, prune_filters] {
    std::vector<std::string> labels;
    bool all = *prune_all;
    for (auto& f : *prune_filters) {
      if (f.starts_with("label=")) labels.push_back(f.substr(6));
      else if (f.starts_with("label!=")) labels.push_back("!" + f.substr(7));
      else if (f == "all=true" || f == "all=1") all = true;
      else if (f == "all=false" || f == "all=0") continue;
      else throw Error("invalid filter \"" + f + "\" (berth supports label=, label!= and all=)", 0, 1);
    }
    if (!*prune_force) {
      std::cout << (all ? "WARNING! This will remove all local volumes not used by at least one container.\n"
                        : "WARNING! This will remove anonymous local volumes not used by at least one container.\n")
                << "Are you sure you want to continue? [y/N] " << std::flush;
      std::string answer;
      std::getline(std::cin, answer);
      if (answer != "y" && answer != "Y" && answer != "yes") return;
    }
    auto result = store_for(global).prune(all, labels);
    if (!result.removed.empty()) {
      std::cout << "Deleted Volumes:\n";
      for (auto& name : result.removed) std::cout << name << "\n";
      std::cout << "\n";
    }
    std::cout << "Total reclaimed space: " << human_size(static_cast<double>(result.reclaimed_bytes)) << "\n";
  });
}

}  // namespace

BERTH_REGISTER_COMMANDS(420, register_volume_commands, "volume");

}  // namespace berth::cli
