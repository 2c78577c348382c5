// The glue between the image store and the runtime, in the reconciler layer
// (images/ and runtime/ never include each other), used by the CLI's
// run/create/commit and by the compose Driver: an image reference becomes the
// runtime's overlay lower dirs plus the image config's defaults, and a
// container holds its image in the store for as long as it exists.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace berth::reconciler {

// Keys of runtime::ContainerSpec::annotations berth writes for a container
// made from an image.
inline constexpr const char* kImageIdAnnotation = "berth.image.id";  // "sha256:<hex>"
// Docker's Config pieces the runtime spec cannot express (JSON object):
// Entrypoint, Cmd, Env (as merged, without the runtime's additions),
// WorkingDir, User, Labels, StopSignal, ExposedPorts, Volumes.
inline constexpr const char* kConfigAnnotation = "berth.config";

struct ImageRootfs {
  std::string reference;                // as the user named it
  std::string id;                       // "sha256:<hex>"
  std::vector<std::string> lower_dirs;  // topmost first
  nlohmann::json config;                // the image config's "config" object ({} when absent)
};

// Resolves name (reference, ID or unique ID prefix) in <root>/image. A missing
// image is docker's "Unable to find image 'x:latest' locally", exit 125.
ImageRootfs resolve_image(const std::string& root, const std::string& name);

// Marks image_id as used by the container (rmi then refuses). Throws (125) if
// the image is gone.
void hold_image(const std::string& root, const std::string& image_id, const std::string& container_id);

// Drops the container's hold, if any. Never creates the store.
void release_image(const std::string& root, const std::string& container_id);

// Makes the holds match the containers, before rmi / prune: drops holds of
// containers that no longer exist (<root>/containers/<id> is gone: a --rm
// container removed by its monitor, or an rm cut off between removing the
// container and releasing its image), and restores the hold of a container
// that has none (its hold file lost in a crash; holds are not fsync'd).
void sync_image_holds(const std::string& root);

}  // namespace berth::reconciler
