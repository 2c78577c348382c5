// Detach keys (docker's --detach-keys syntax) and the scanner that watches
// a user's keystrokes for them; the monitor's argv round trip.
#include <gtest/gtest.h>

#include "base/error.h"
#include "runtime/attach.h"
#include "runtime/monitor_loop.h"

using namespace berth::runtime;

TEST(DetachKeys, ParsesDockersSyntax) {
  EXPECT_EQ(parse_detach_keys(""), std::string("\x10\x11"));
  EXPECT_EQ(parse_detach_keys("ctrl-p,ctrl-q"), std::string("\x10\x11"));
  EXPECT_EQ(parse_detach_keys("ctrl-x"), std::string("\x18"));
  EXPECT_EQ(parse_detach_keys("a,ctrl-@,ctrl-["), std::string("a\0\x1b", 3));
  for (const char* bad : {"ctrl-1", "ctrl-", "alt-x", "ab", "ctrl-p,,ctrl-q"}) {
    try {
      parse_detach_keys(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const berth::Error& e) {
      EXPECT_EQ(e.exit_code(), 125);
      EXPECT_NE(std::string(e.what()).find("Invalid detach keys"), std::string::npos) << e.what();
    }
  }
}

TEST(DetachScanner, PassesKeysOnAndStopsAtTheSequence) {
  DetachScanner s("\x10\x11");
  EXPECT_EQ(s.feed("ls\r", 3), "ls\r");
  // A ctrl-p alone is held back until the next key shows it was not a detach.
  EXPECT_EQ(s.feed("\x10", 1), "");
  EXPECT_EQ(s.feed("x", 1), "\x10x");
  EXPECT_FALSE(s.detached());
  // ctrl-p ctrl-p ctrl-q: the first ctrl-p goes on, the next two detach.
  EXPECT_EQ(s.feed("\x10\x10\x11tail", 7), "\x10");
  EXPECT_TRUE(s.detached());
}

TEST(DetachScanner, SequenceSplitAcrossReads) {
  DetachScanner s("\x10\x11");
  EXPECT_EQ(s.feed("echo\x10", 5), "echo");
  EXPECT_EQ(s.feed("\x11", 1), "");
  EXPECT_TRUE(s.detached());
}

TEST(MonitorArgv, RoundTrips) {
  MonitorArgs a;
  a.id = "abc";
  a.container_dir = "/r/containers/abc";
  a.run_dir = "/rr/containers/abc";
  a.pid = 42;
  a.out_fd = 5;
  a.err_fd = 6;
  a.report_fd = 7;
  a.attach_fd = 8;
  a.tty = true;
  a.attached = true;
  a.forward_stdin = true;
  a.log_driver = "none";
  a.log_max_size = 1024;
  a.log_max_file = 3;
  a.auto_remove = true;
  a.netns_file = "/rr/netns/abc";
  a.volumes = {"v1", "v2"};
  a.berth_exe = "/usr/bin/berth";
  a.root = "/r";
  a.run_root = "/rr";
  auto args = monitor_argv("/usr/bin/berth-monitor", a);
  std::vector<char*> argv;
  for (auto& s : args) argv.push_back(s.data());
  MonitorArgs b;
  std::string why;
  ASSERT_TRUE(parse_monitor_argv(static_cast<int>(argv.size()), argv.data(), b, why)) << why;
  EXPECT_EQ(b.id, a.id);
  EXPECT_EQ(b.container_dir, a.container_dir);
  EXPECT_EQ(b.run_dir, a.run_dir);
  EXPECT_EQ(b.pid, 42);
  EXPECT_EQ(b.out_fd, 5);
  EXPECT_EQ(b.err_fd, 6);
  EXPECT_EQ(b.report_fd, 7);
  EXPECT_EQ(b.attach_fd, 8);
  EXPECT_TRUE(b.tty && b.attached && b.forward_stdin && b.auto_remove);
  EXPECT_EQ(b.log_driver, "none");
  EXPECT_EQ(b.log_max_size, 1024);
  EXPECT_EQ(b.log_max_file, 3);
  EXPECT_EQ(b.netns_file, a.netns_file);
  EXPECT_EQ(b.volumes, a.volumes);
  EXPECT_EQ(b.berth_exe, a.berth_exe);
  EXPECT_EQ(b.root, "/r");
  EXPECT_EQ(b.run_root, "/rr");

  char prog[] = "berth-monitor", bad[] = "--pid", val[] = "x";
  char* broken[] = {prog, bad, val};
  MonitorArgs c;
  EXPECT_FALSE(parse_monitor_argv(3, broken, c, why));
}
