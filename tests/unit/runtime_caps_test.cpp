#include <gtest/gtest.h>

#include "base/error.h"
#include "runtime/caps.h"

namespace berth::runtime {
namespace {

SecuritySpec sec(std::vector<std::string> add, std::vector<std::string> drop, bool privileged = false) {
  SecuritySpec s;
  s.cap_add = std::move(add);
  s.cap_drop = std::move(drop);
  s.privileged = privileged;
  return s;
}

TEST(RuntimeCaps, DefaultIsDockers) {
  EXPECT_EQ(resolve_capabilities(sec({}, {})), 0xa80425fbULL);
}

TEST(RuntimeCaps, NamesAreCaseInsensitiveWithOrWithoutPrefix) {
  EXPECT_EQ(capability_from_name("CAP_SYS_ADMIN"), 21);
  EXPECT_EQ(capability_from_name("sys_admin"), 21);
  EXPECT_EQ(capability_from_name("Cap_Sys_Admin"), 21);
  EXPECT_EQ(capability_name(21), "CAP_SYS_ADMIN");
}

TEST(RuntimeCaps, UnknownCapabilityIsA125) {
  try {
    resolve_capabilities(sec({"CAP_FLY"}, {}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 125);
    EXPECT_NE(std::string(e.what()).find("CAP_FLY"), std::string::npos);
  }
  // Even when ALL would make it irrelevant.
  EXPECT_THROW(resolve_capabilities(sec({"ALL"}, {"bogus"})), Error);
}

TEST(RuntimeCaps, AddDropAndAll) {
  EXPECT_EQ(resolve_capabilities(sec({"NET_ADMIN"}, {})), 0xa80425fbULL | (1ULL << 12));
  EXPECT_EQ(resolve_capabilities(sec({}, {"CHOWN", "kill"})), 0xa80425fbULL & ~1ULL & ~(1ULL << 5));
  EXPECT_EQ(resolve_capabilities(sec({}, {"ALL"})), 0u);
  EXPECT_EQ(resolve_capabilities(sec({"chown"}, {"all"})), 1u);
  uint64_t everything = resolve_capabilities(sec({"ALL"}, {}));
  EXPECT_EQ(everything & 0xa80425fbULL, 0xa80425fbULL);
  EXPECT_EQ(resolve_capabilities(sec({"ALL"}, {"SYS_ADMIN"})), everything & ~(1ULL << 21));
  EXPECT_EQ(resolve_capabilities(sec({}, {}, true)), everything);
}

}  // namespace
}  // namespace berth::runtime
