// Sizes, durations and progress bars as docker prints them.
#include <gtest/gtest.h>

#include "base/human.h"
#include "base/time.h"

namespace berth {
namespace {

TEST(Human, SizesInDecimalUnits) {
  EXPECT_EQ(human_size(0), "0B");
  EXPECT_EQ(human_size(999), "999B");
  EXPECT_EQ(human_size(1500), "1.5kB");
  EXPECT_EQ(human_size(1234567), "1.235MB");
  EXPECT_EQ(human_size(1234567, 3), "1.23MB");
  EXPECT_EQ(human_size(4.5e9), "4.5GB");
}

TEST(Human, DurationsInWords) {
  EXPECT_EQ(human_duration(0.4), "Less than a second");
  EXPECT_EQ(human_duration(1), "1 second");
  EXPECT_EQ(human_duration(59), "59 seconds");
  EXPECT_EQ(human_duration(60), "About a minute");
  EXPECT_EQ(human_duration(150), "2 minutes");
  EXPECT_EQ(human_duration(3600), "About an hour");
  EXPECT_EQ(human_duration(5 * 3600), "5 hours");
  EXPECT_EQ(human_duration(3 * 86400), "3 days");
  EXPECT_EQ(human_duration(20 * 86400), "2 weeks");
  EXPECT_EQ(human_duration(90 * 86400), "3 months");
  EXPECT_EQ(human_duration(800 * 86400), "2 years");
}

TEST(Human, ProgressBar) {
  EXPECT_EQ(progress_bar(1500, 0), "1.5kB");
  std::string half = progress_bar(500, 1000);
  EXPECT_EQ(half, "[" + std::string(24, '=') + ">" + std::string(25, ' ') + "] 500B/1kB");
  EXPECT_EQ(progress_bar(1000, 1000), "[" + std::string(49, '=') + ">] 1kB/1kB");
  EXPECT_EQ(progress_bar(2000, 1000).substr(0, 53), "[" + std::string(49, '=') + ">] ") << "never past full";
}

TEST(Time, Rfc3339Seconds) {
  EXPECT_EQ(rfc3339_seconds(""), 0);
  EXPECT_EQ(rfc3339_seconds("garbage"), 0);
  EXPECT_DOUBLE_EQ(rfc3339_seconds("1970-01-01T00:01:40Z"), 100);
  EXPECT_DOUBLE_EQ(rfc3339_seconds("2026-11-27T23:27:52.5Z"), 1795822072.5);
}

}  // namespace
}  // namespace berth
