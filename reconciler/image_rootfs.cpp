#include "reconciler/image_rootfs.h"

#include <dirent.h>

#include <set>

#include "base/error.h"
#include "base/fs.h"
#include "images/images.h"
#include "runtime/state.h"

namespace berth::reconciler {

namespace {

bool store_exists(const std::string& root) { return is_directory(path_join(root, "image")); }

bool looks_like_container_id(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

ImageRootfs resolve_image(const std::string& root, const std::string& name) {
  // A reference that cannot parse (and is no ID prefix) is a usage error, as docker's.
  std::string familiar = name;
  bool parsed = false;
  try {
    familiar = images::parse_reference(name).familiar();
    parsed = true;
  } catch (const Error&) {
  }
  auto not_found = [&] {
    if (!parsed) {
      try {
        images::parse_reference(name);
      } catch (const Error& e) {
        throw Error(std::string("invalid reference format: ") + e.what(), 0, 125);
      }
    }
    return Error("Unable to find image '" + familiar + "' locally", 0, 125);
  };
  if (!store_exists(root)) throw not_found();
  images::Store store(root);
  ImageRootfs out;
  out.reference = name;
  try {
    out.id = store.resolve(name);
  } catch (const Error& e) {
    if (std::string(e.what()).rfind("No such image", 0) == 0) throw not_found();
    throw Error(e.what(), 0, 125);
  }
  try {
    out.lower_dirs = store.layer_dirs(out.id);
    auto cfg = nlohmann::json::parse(store.config_bytes(out.id));
    out.config = cfg.contains("config") && cfg["config"].is_object() ? cfg["config"] : nlohmann::json::object();
  } catch (const nlohmann::json::exception& e) {
    throw Error("image " + name + ": unreadable config: " + e.what(), 0, 125);
  } catch (const std::out_of_range&) {
    throw not_found();  // removed between resolve and layer_dirs
  } catch (const Error& e) {
    throw Error(e.what(), 0, 125);
  }
  return out;
}

void hold_image(const std::string& root, const std::string& image_id, const std::string& container_id) {
  try {
    images::Store(root).acquire(image_id, container_id);
  } catch (const Error& e) {
    throw Error(std::string("cannot hold image ") + image_id + ": " + e.what(), 0, 125);
  }
}

void release_image(const std::string& root, const std::string& container_id) {
  if (!store_exists(root)) return;
  images::Store(root).release(container_id);
}

void sync_image_holds(const std::string& root) {
  if (!store_exists(root)) return;
  images::Store store(root);
  std::set<std::string> held;
  for (auto& image : store.list())
    for (auto& holder : image.holders) {
      if (looks_like_container_id(holder) && !path_exists(path_join(root, "containers/" + holder)))
        store.release(holder);
      else
        held.insert(holder);
    }
  std::string containers = path_join(root, "containers");
  DIR* d = ::opendir(containers.c_str());
  if (!d) return;
  std::vector<std::string> ids;
  while (dirent* e = ::readdir(d))
    if (looks_like_container_id(e->d_name) && !held.count(e->d_name)) ids.push_back(e->d_name);
  ::closedir(d);
  for (auto& id : ids) {
    try {
      auto spec = runtime::state::load_spec(path_join(containers, id));
      auto it = spec.annotations.find(kImageIdAnnotation);
      if (it != spec.annotations.end()) store.acquire(it->second, id);
    } catch (const Error&) {
      // Unreadable (a create cut off by a power loss), removed meanwhile,
      // or its image is gone already: nothing to hold.
    }
  }
}

}  // namespace berth::reconciler
