#include "tests/support/golden.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "base/fs.h"

namespace berth::test {

bool updating_golden() {
  const char* v = std::getenv("BERTH_UPDATE_GOLDEN");
  return v && std::string(v) == "1";
}

void compare_or_update_golden(const std::string& path, const std::string& actual) {
  if (updating_golden()) {
    if (actual.empty()) std::remove(path.c_str());
    else write_file_atomic(path, actual);
    return;
  }
  std::string expected;
  read_file_if_exists(path, expected);
  EXPECT_EQ(expected, actual) << "golden mismatch for " << path << " (BERTH_UPDATE_GOLDEN=1 to regenerate)";
}

}  // namespace berth::test
