// Observing the world for the reconciler: one ObservedState snapshot from
// the runtime (containers), the network store and the volume store, all
// selected by berth's compose labels. Reads files only (no process per
// container), so observing a project of any size costs a few milliseconds.
#pragma once

#include <string>

#include "reconciler/state.h"
#include "runtime/runtime.h"

namespace berth::reconciler {

// The observed form of one runtime container: its labels, state, exit
// code, health (as the supervisor wrote it) and image id (the
// berth.image.id annotation).
ObservedContainer observe_container(const runtime::Container& container);

// Every container, network and volume under paths.root that carries
// com.docker.compose.project=<project>; all of them when project is "".
ObservedState observe(const runtime::Paths& paths, const std::string& project);

}  // namespace berth::reconciler
