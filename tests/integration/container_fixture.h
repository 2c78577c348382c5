// Shared fixture for the container integration tests: a busybox rootfs, a
// private --root and --run-root per test, and a TearDown that force-removes
// every container the test made, even when the test failed.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <dirent.h>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.h"
#include "tests/support/busybox.h"
#include "tests/support/run.h"

namespace berth::test {

class ContainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "container tests need root";
    if (!have_busybox()) GTEST_SKIP() << "busybox-static is not installed";
    root_ = tmp_.path() + "/root";
    run_root_ = tmp_.path() + "/run";
    rootfs_ = tmp_.path() + "/rootfs";
    make_busybox_rootfs(rootfs_);
  }

  void TearDown() override {
    if (root_.empty()) return;
    auto ids = berth({"ps", "-aq", "--no-trunc"});
    std::istringstream in(ids.out);
    for (std::string id; std::getline(in, id);)
      if (!id.empty()) berth({"rm", "-f", id});
    stop_daemon();
  }

  // A `berth serve` the CLI started for this test's roots (`up` does):
  // SIGTERM, and wait until it is gone.
  void stop_daemon() {
    std::string pid_text;
    if (!read_file_if_exists(run_root_ + "/berth.pid", pid_text)) return;
    pid_t pid = std::atoi(pid_text.c_str());
    std::string cmdline;
    if (pid <= 0 || !read_file_if_exists("/proc/" + std::to_string(pid) + "/cmdline", cmdline)) return;
    if (cmdline.find(run_root_) == std::string::npos) return;
    ::kill(pid, SIGTERM);
    eventually([&] {
      std::string stat;
      if (!read_file_if_exists("/proc/" + std::to_string(pid) + "/stat", stat)) return true;
      auto rp = stat.rfind(')');
      return rp != std::string::npos && stat[rp + 2] == 'Z';
    });
  }

  Result berth(std::vector<std::string> args, const std::string& input = {}) {
    // run/create join docker's default bridge network unless told otherwise;
    // these tests stay off the host's links and nft tables (network_*_test
    // files, which hold the host network lock, pass --network themselves).
    if (!args.empty() && (args[0] == "run" || args[0] == "create") &&
        std::none_of(args.begin(), args.end(), [](const std::string& a) {
          return a == "--network" || a == "--net" || a.rfind("--network=", 0) == 0 || a.rfind("--net=", 0) == 0;
        }))
      args.insert(args.begin() + 1, {"--network", "none"});
    args.insert(args.begin(), {"--root", root_, "--run-root", run_root_});
    return run_berth(args, input);
  }

  // `berth run --rootfs <busybox> FLAGS... -- CMD...`
  Result run(std::vector<std::string> flags, std::vector<std::string> cmd, const std::string& input = {}) {
    std::vector<std::string> args{"run", "--rootfs", rootfs_};
    args.insert(args.end(), flags.begin(), flags.end());
    args.insert(args.end(), cmd.begin(), cmd.end());
    return berth(args, input);
  }

  // Starts a detached container and returns its id (fails the test if it cannot).
  std::string run_detached(std::vector<std::string> flags, std::vector<std::string> cmd) {
    flags.insert(flags.begin(), "-d");
    auto r = run(flags, cmd);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::string id = r.out;
    while (!id.empty() && id.back() == '\n') id.pop_back();
    return id;
  }

  // As run_detached, but `run` does its work in this process and starts no
  // serve (BERTH_IN_SERVE set): for what berth does with nobody watching.
  std::string run_detached_without_serve(std::vector<std::string> cmd) {
    std::vector<std::string> args{"--root", root_, "--run-root", run_root_, "run", "-d", "--network", "none", "--rootfs", rootfs_};
    args.insert(args.end(), cmd.begin(), cmd.end());
    auto r = run_berth(args, "", {"BERTH_IN_SERVE="});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }

  nlohmann::json inspect(const std::string& ref) {
    auto r = berth({"inspect", ref});
    if (r.exit_code != 0) return nlohmann::json();
    auto j = nlohmann::json::parse(r.out, nullptr, false);
    return j.is_array() && !j.empty() ? j[0] : nlohmann::json();
  }

  // Polls until pred() holds or timeout; returns pred()'s last value.
  template <typename F>
  static bool eventually(F pred, int timeout_ms = 5000) {
    for (int waited = 0; waited < timeout_ms; waited += 20) {
      if (pred()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return pred();
  }

  std::vector<std::string> container_dirs() const {
    std::vector<std::string> out;
    DIR* d = ::opendir((root_ + "/containers").c_str());
    if (!d) return out;
    while (auto* e = ::readdir(d))
      if (e->d_name[0] != '.') out.push_back(e->d_name);
    ::closedir(d);
    return out;
  }

  // Every place a container could leave something: mounts under our root,
  // cgroup directories named after it, its processes and its state.
  void expect_no_trace_of(const std::string& id, pid_t pid = 0) {
    std::string mountinfo;
    read_file_if_exists("/proc/self/mountinfo", mountinfo);
    EXPECT_EQ(mountinfo.find(root_), std::string::npos) << "a mount is left under " << root_;
    EXPECT_EQ(mountinfo.find(id), std::string::npos) << "a mount mentions " << id;
    for (const char* h : {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "unified", ""}) {
      std::string dir = std::string("/sys/fs/cgroup/") + h + (*h ? "/" : "") + "berth/" + id;
      EXPECT_FALSE(path_exists(dir)) << "cgroup left: " << dir;
    }
    EXPECT_FALSE(path_exists(root_ + "/containers/" + id)) << "state dir left";
    EXPECT_FALSE(path_exists(run_root_ + "/containers/" + id)) << "runtime dir left";
    // No process anywhere is still in one of its cgroups.
    if (DIR* d = ::opendir("/proc")) {
      while (auto* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::string cg, stat;
        try {
          read_file_if_exists(std::string("/proc/") + e->d_name + "/cgroup", cg);
          read_file_if_exists(std::string("/proc/") + e->d_name + "/stat", stat);
        } catch (...) {
          continue;
        }
        // A zombie holds nothing but its pid; its parent (not berth, once
        // the monitor is gone) reaps it.
        auto rp = stat.rfind(')');
        if (rp != std::string::npos && rp + 2 < stat.size() && stat[rp + 2] == 'Z') continue;
        EXPECT_EQ(cg.find("berth/" + id), std::string::npos) << "process " << e->d_name << " is in " << cg;
      }
      ::closedir(d);
    }
    if (pid > 0) {
      bool gone = eventually([&] {
        std::string stat;
        if (!read_file_if_exists("/proc/" + std::to_string(pid) + "/stat", stat)) return true;
        auto rp = stat.rfind(')');
        return rp != std::string::npos && stat[rp + 2] == 'Z';
      });
      EXPECT_TRUE(gone) << "process " << pid << " still runs";
    }
  }

  // A compose project: busybox imported as busybox:latest and an empty
  // project directory; stop_compose_project() takes the app down again.
  void start_compose_project() {
    std::string tar = tmp_.path() + "/busybox.tar";
    make_busybox_tar(tar);
    auto r = berth({"import", tar, "busybox:latest"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    project_dir_ = tmp_.path() + "/app";
    make_dirs(project_dir_);
  }
  void stop_compose_project() {
    if (!project_dir_.empty()) compose({"down", "-v", "-t", "0"});
  }
  void write_app(const std::string& yaml) { write_file_atomic(project_dir_ + "/compose.yaml", yaml); }
  std::vector<std::string> with_roots(std::vector<std::string> args) {
    args.insert(args.begin(), {"--root", root_, "--run-root", run_root_});
    return args;
  }
  // berth --root R --run-root RR ARGS... in the project directory.
  Result compose(std::vector<std::string> args) { return run_berth(with_roots(std::move(args)), "", {}, project_dir_); }

  TempDir tmp_;
  std::string root_, run_root_, rootfs_;
  std::string project_dir_;
};

}  // namespace berth::test
