// Internal: Compose merge rules on the located tree, shared by multi-file
// overrides (-f a -f b), `extends` and `include`.
#pragma once

#include <string>

#include "spec/node.h"

namespace berth::spec {

// Merges one service definition over another (override wins), with compose's
// per-key rules: command/entrypoint/healthcheck.test replace; environment,
// labels and other list-or-dict keys merge by key; ports, volumes, secrets,
// configs merge by their identity; other lists append without duplicates;
// mappings merge recursively. `!reset` removes a key, `!override` replaces it.
void merge_service(Node& base, const Node& override_node);

// Merges a whole compose file over another (top-level sections by name).
void merge_project(Node& base, const Node& override_node);

// Turns a list-or-dict ["K=V", "K2"] into a mapping {K: V, K2: null} (in place).
void list_to_mapping(Node& node);

}  // namespace berth::spec
