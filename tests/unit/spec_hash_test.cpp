// The per-service config hash: stable under key order, spelled-out defaults
// and unrelated changes; different when the service really changes.
#include <gtest/gtest.h>

#include "spec/spec.h"
#include "tests/support/run.h"

using namespace berth::spec;

namespace {

std::string hash_of(const std::string& yaml, const std::string& service = "web") {
  berth::test::TempDir dir;
  LoadOptions o;
  o.working_directory = dir.path();
  o.project_name = "p";
  return service_config_hash(load_project_from_string(yaml, o), service);
}

}  // namespace

TEST(SpecHash, IsAHexSha256) {
  std::string h = hash_of("services:\n  web: {image: nginx}\n");
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(h.find_first_not_of("0123456789abcdef"), std::string::npos);
}

TEST(SpecHash, StableUnderKeyReordering) {
  EXPECT_EQ(hash_of("services:\n  web:\n    image: nginx\n    environment: {A: '1', B: '2'}\n    ports: ['80:80']\n"),
            hash_of("services:\n  web:\n    ports: ['80:80']\n    environment: {B: '2', A: '1'}\n    image: nginx\n"));
}

TEST(SpecHash, StableWhenDefaultsAreSpelledOut) {
  EXPECT_EQ(hash_of("services:\n  web:\n    image: nginx\n    ports: ['8080:80']\n    environment: [A=1]\n"
                    "    healthcheck: {test: 'curl -f localhost'}\n    volumes: ['data:/d']\nvolumes: {data: {}}\n"),
            hash_of("services:\n  web:\n    image: nginx\n"
                    "    ports: [{target: 80, published: '8080', protocol: tcp, mode: ingress}]\n"
                    "    environment: {A: '1'}\n    networks: {default: null}\n"
                    "    healthcheck: {test: [CMD-SHELL, 'curl -f localhost']}\n"
                    "    volumes: [{type: volume, source: data, target: /d}]\nvolumes: {data: {}}\n"));
}

TEST(SpecHash, StableWhenAnUnrelatedServiceChanges) {
  EXPECT_EQ(hash_of("services:\n  web: {image: nginx}\n  db: {image: postgres:15}\n"),
            hash_of("services:\n  web: {image: nginx}\n  db: {image: postgres:16, ports: ['5432:5432']}\n"));
}

TEST(SpecHash, IgnoresReplicasAndDependsOn) {
  EXPECT_EQ(hash_of("services:\n  web: {image: nginx, deploy: {replicas: 1}}\n  db: {image: x}\n"),
            hash_of("services:\n  web: {image: nginx, deploy: {replicas: 5}, depends_on: [db]}\n  db: {image: x}\n"));
}

TEST(SpecHash, ChangesWhenTheServiceChanges) {
  std::string base = hash_of("services:\n  web: {image: nginx}\n");
  EXPECT_NE(base, hash_of("services:\n  web: {image: nginx:1.25}\n"));
  EXPECT_NE(base, hash_of("services:\n  web: {image: nginx, environment: {A: '1'}}\n"));
  EXPECT_NE(base, hash_of("services:\n  web: {image: nginx, ports: ['80:80']}\n"));
  EXPECT_NE(base, hash_of("services:\n  web: {image: nginx, x-processes: {w: {command: run}}}\n"));
}
