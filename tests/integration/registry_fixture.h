// What the registry test files share: skip without docker-registry or
// busybox, the busybox fixture imported into a root, image ids.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <nlohmann/json.hpp>
#include <string>

#include "base/fs.h"
#include "tests/support/busybox.h"
#include "tests/support/registry.h"
#include "tests/support/run.h"

namespace berth::test {

class RegistryFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_docker_registry()) GTEST_SKIP() << "docker-registry is not installed (apt-get install docker-registry)";
    if (!have_busybox()) GTEST_SKIP() << "busybox-static is not installed";
  }

  // Imports the busybox fixture into root as ref; returns the image ID.
  std::string import_busybox(const std::string& root, const std::string& ref) {
    std::string tar = dir.path() + "/busybox.tar";
    if (::access(tar.c_str(), R_OK) != 0) make_busybox_tar(tar);
    Result r = run_berth({"--root", root, "import", tar, ref});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return trim(r.out);
  }

  // The image's ID in root, "" when it has none.
  std::string image_id(const std::string& root, const std::string& ref) {
    Result r = run_berth({"--root", root, "image", "inspect", ref});
    if (r.exit_code != 0) return "";
    return nlohmann::json::parse(r.out)[0].value("Id", "");
  }

  TempDir dir;
};

}  // namespace berth::test
