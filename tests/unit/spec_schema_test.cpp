// Every property of the Compose JSON schema is known to berth's decoder, so
// coverage cannot silently rot when the schema grows.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "spec/spec.h"

using nlohmann::json;

namespace {

const json& schema() {
  static const json s = [] {
    std::ifstream in(std::string(BERTH_TESTS_DIR) + "/../../shared/reference/compose-spec.json");
    if (!in) return json();
    return json::parse(in);
  }();
  return s;
}

// Follows "$ref" and returns the object alternative (with "properties") of a node.
const json* object_form(const json& node) {
  const json* n = &node;
  if (n->contains("$ref")) {
    std::string ref = (*n)["$ref"];
    n = &schema()["definitions"][ref.substr(ref.rfind('/') + 1)];
  }
  if (n->contains("properties")) return n;
  for (const char* alt : {"oneOf", "anyOf"})
    if (n->contains(alt))
      for (const auto& option : (*n)[alt]) {
        if (const json* o = option.contains("$ref") || option.contains("properties") ? object_form(option) : nullptr) return o;
        if (option.contains("items"))
          if (const json* o = object_form(option["items"])) return o;
        if (option.contains("patternProperties"))
          for (auto& [_, v] : option["patternProperties"].items())
            if (const json* o = object_form(v)) return o;
      }
  if (n->contains("items")) return object_form((*n)["items"]);
  if (n->contains("patternProperties"))
    for (auto& [_, v] : (*n)["patternProperties"].items())
      if (const json* o = object_form(v)) return o;
  return nullptr;
}

void expect_known(const std::string& where, const json* node) {
  ASSERT_NE(node, nullptr) << "schema has no object at " << where;
  std::vector<std::string> known = berth::spec::known_keys(where);
  ASSERT_FALSE(known.empty()) << "berth has no table for " << where;
  for (auto& [key, _] : (*node)["properties"].items())
    EXPECT_NE(std::find(known.begin(), known.end(), key), known.end()) << where << "." << key << " is not known to berth";
}

// The schema lives in shared/reference beside the clone (as in CI). Outside
// CI a checkout without it skips; in CI (CI set) its absence is a failure.
#define REQUIRE_SCHEMA()                                                              \
  do {                                                                                \
    if (!schema().is_object()) {                                                      \
      if (std::getenv("CI")) FAIL() << "compose-spec.json not found beside the clone"; \
      GTEST_SKIP() << "compose-spec.json not found beside the clone (../shared/reference)"; \
    }                                                                                 \
  } while (0)

const json& def(const char* name) { return schema()["definitions"][name]; }
const json& prop(const json& n, const char* name) { return (*object_form(n))["properties"][name]; }

}  // namespace

TEST(SpecSchema, SchemaIsReadable) {
  REQUIRE_SCHEMA();
  EXPECT_EQ(def("service")["properties"].size(), 92u) << "the schema changed: review the new service keys";
}

TEST(SpecSchema, EveryTopLevelKeyIsKnown) {
  REQUIRE_SCHEMA();
  expect_known("project", &schema());
}

TEST(SpecSchema, EveryServiceKeyIsKnown) {
  REQUIRE_SCHEMA();
  expect_known("service", &def("service"));
  for (const char* sub : {"build", "blkio_config", "credential_spec", "depends_on", "devices", "env_file", "extends",
                          "logging", "models", "networks", "ports", "provider", "configs", "secrets", "ulimits", "volumes"})
    expect_known(std::string("service.") + sub, object_form(prop(def("service"), sub)));
  const json& volumes = prop(def("service"), "volumes");
  for (const char* sub : {"bind", "volume", "tmpfs", "image"})
    expect_known(std::string("service.volumes.") + sub, object_form(prop(volumes, sub)));
}

TEST(SpecSchema, EveryNestedDefinitionIsKnown) {
  REQUIRE_SCHEMA();
  for (const char* d : {"healthcheck", "development", "deployment", "devices", "gpus", "generic_resources", "network",
                        "volume", "secret", "config", "model", "service_hook", "blkio_limit", "blkio_weight", "include"})
    expect_known(d, object_form(def(d)));
  expect_known("development.watch", object_form(prop(def("development"), "watch")));
  expect_known("generic_resources.discrete_resource_spec", object_form(prop(def("generic_resources"), "discrete_resource_spec")));
  for (const char* d : {"rollback_config", "update_config", "resources", "restart_policy", "placement"})
    expect_known(std::string("deployment.") + d, object_form(prop(def("deployment"), d)));
  const json& resources = prop(def("deployment"), "resources");
  expect_known("deployment.resources.limits", object_form(prop(resources, "limits")));
  expect_known("deployment.resources.reservations", object_form(prop(resources, "reservations")));
  expect_known("deployment.placement.preferences", object_form(prop(prop(def("deployment"), "placement"), "preferences")));
  expect_known("network.ipam", object_form(prop(def("network"), "ipam")));
  expect_known("network.ipam.config", object_form(prop(prop(def("network"), "ipam"), "config")));
}
