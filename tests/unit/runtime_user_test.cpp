#include <gtest/gtest.h>

#include "base/error.h"
#include "runtime/user.h"
#include "tests/support/run.h"

namespace berth::runtime {
namespace {

class RuntimeUser : public ::testing::Test {
 protected:
  void SetUp() override {
    upper_ = tmp_.path() + "/upper";
    lower_ = tmp_.path() + "/lower";
    tmp_.write("lower/etc/passwd",
               "root:x:0:0:root:/root:/bin/sh\n# comment\nberth:x:1000:1000::/home/berth:/bin/sh\n"
               "svc:x:500:500::/srv:/bin/false\n");
    tmp_.write("lower/etc/group", "root:x:0:\nwheel:x:10:berth,svc\naudio:x:29:berth\nberth:x:1000:\nsvc:x:500:\n");
  }
  ResolvedUser resolve(const std::string& spec) { return resolve_user({upper_, lower_}, spec); }

  test::TempDir tmp_;
  std::string upper_, lower_;
};

TEST_F(RuntimeUser, EmptyIsRoot) {
  auto u = resolve("");
  EXPECT_EQ(u.uid, 0u);
  EXPECT_EQ(u.gid, 0u);
  EXPECT_EQ(u.home, "/root");
}

TEST_F(RuntimeUser, NameGivesIdsHomeAndSupplementaryGroups) {
  auto u = resolve("berth");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 1000u);
  EXPECT_EQ(u.home, "/home/berth");
  EXPECT_EQ(u.groups, (std::vector<gid_t>{10, 29}));
}

TEST_F(RuntimeUser, NumericUidAndGroups) {
  auto u = resolve("1000");
  EXPECT_EQ(u.uid, 1000u);
  EXPECT_EQ(u.gid, 1000u);
  u = resolve("4242");
  EXPECT_EQ(u.uid, 4242u);
  EXPECT_EQ(u.gid, 0u);
  EXPECT_EQ(u.home, "/");
  u = resolve("berth:audio");
  EXPECT_EQ(u.gid, 29u);
  EXPECT_TRUE(u.groups.empty());
  u = resolve("svc:77");
  EXPECT_EQ(u.uid, 500u);
  EXPECT_EQ(u.gid, 77u);
}

TEST_F(RuntimeUser, UpperLayerWins) {
  tmp_.write("upper/etc/passwd", "berth:x:2000:2000::/elsewhere:/bin/sh\n");
  auto u = resolve("berth");
  EXPECT_EQ(u.uid, 2000u);
  EXPECT_EQ(u.home, "/elsewhere");
}

TEST_F(RuntimeUser, UnknownNamesAre125) {
  for (const char* bad : {"nobody", "berth:nogroup", ":0", "berth:"}) {
    try {
      resolve(bad);
      ADD_FAILURE() << "accepted " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), 125) << bad;
    }
  }
}

}  // namespace
}  // namespace berth::runtime
