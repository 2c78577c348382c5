// `berth attach` and `run -it` through the container's monitor, driven
// from a pseudo-terminal like a user's: keystrokes reach the container,
// its output comes back, ctrl-p ctrl-q (or --detach-keys) detaches and
// leaves it running; without a tty, attach streams output and proxies
// signals, and returns the container's exit code.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/wait.h>

#include "tests/integration/container_fixture.h"

using namespace berth::test;

namespace {

// A berth client on the slave side of a new pty (its controlling terminal).
class PtyClient {
 public:
  explicit PtyClient(const std::vector<std::string>& args) {
    int slave = -1;
    if (::openpty(&master_, &slave, nullptr, nullptr, nullptr) != 0) return;
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setsid();
      ::ioctl(slave, TIOCSCTTY, 0);
      for (int fd = 0; fd < 3; ++fd) ::dup2(slave, fd);
      if (slave > 2) ::close(slave);
      ::close(master_);
      std::vector<char*> argv;
      std::string exe = berth_binary();
      argv.push_back(exe.data());
      std::vector<std::string> copy = args;
      for (auto& a : copy) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(exe.c_str(), argv.data());
      ::_exit(127);
    }
    ::close(slave);
  }
  ~PtyClient() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (master_ >= 0) ::close(master_);
  }
  bool ok() const { return master_ >= 0 && pid_ > 0; }
  void type(const std::string& keys) { ASSERT_EQ(::write(master_, keys.data(), keys.size()), (ssize_t)keys.size()); }
  // Reads the terminal until `want` shows up (true) or timeout_ms passes.
  bool expect(const std::string& want, int timeout_ms = 10000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (seen_.find(want) == std::string::npos) {
      int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                      deadline - std::chrono::steady_clock::now()).count());
      if (left <= 0) return false;
      pollfd p{master_, POLLIN, 0};
      if (::poll(&p, 1, left) <= 0) continue;
      char buf[4096];
      ssize_t n = ::read(master_, buf, sizeof buf);
      if (n <= 0) return seen_.find(want) != std::string::npos;
      seen_.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  // The client's exit code, or -1 if it is still running after timeout_ms.
  int wait_exit(int timeout_ms = 10000) {
    for (int waited = 0; waited <= timeout_ms; waited += 20) {
      int st = 0;
      // Keep draining the terminal so the client never blocks writing.
      pollfd p{master_, POLLIN, 0};
      if (::poll(&p, 1, 0) > 0) {
        char buf[4096];
        ssize_t n = ::read(master_, buf, sizeof buf);
        if (n > 0) seen_.append(buf, static_cast<size_t>(n));
      }
      if (::waitpid(pid_, &st, WNOHANG) == pid_) {
        reaped_ = true;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  const std::string& seen() const { return seen_; }
  pid_t pid() const { return pid_; }

 private:
  int master_ = -1;
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string seen_;
};

class ContainerAttach : public ContainerTest {
 protected:
  std::vector<std::string> with_args(std::vector<std::string> args) {
    args.insert(args.begin(), {"--root", root_, "--run-root", run_root_});
    return args;
  }
  bool running(const std::string& name) {
    auto j = inspect(name);
    return j.is_object() && j["State"]["Running"].get<bool>();
  }
};

}  // namespace

TEST_F(ContainerAttach, AttachTypesIntoTheContainerAndCtrlPCtrlQDetaches) {
  std::string id = run_detached({"-it", "--name", "shell"}, {"sh"});
  ASSERT_FALSE(id.empty());
  {
    PtyClient client(with_args({"attach", "shell"}));
    ASSERT_TRUE(client.ok());
    // The shell computes what it prints, so the echo of the keys alone cannot match.
    client.type("echo at$((6*7))tached\r");
    EXPECT_TRUE(client.expect("at42tached")) << client.seen();
    client.type("\x10\x11");
    EXPECT_EQ(client.wait_exit(), 0) << client.seen();
  }
  EXPECT_TRUE(running("shell"));

  // Again, with other detach keys; then exit the shell: attach returns its code.
  {
    PtyClient client(with_args({"attach", "--detach-keys", "ctrl-x", "shell"}));
    ASSERT_TRUE(client.ok());
    client.type("echo a$((2+3))b\r");
    EXPECT_TRUE(client.expect("a5b")) << client.seen();
    client.type("\x18");
    EXPECT_EQ(client.wait_exit(), 0) << client.seen();
  }
  EXPECT_TRUE(running("shell"));
  {
    PtyClient client(with_args({"attach", "shell"}));
    ASSERT_TRUE(client.ok());
    client.type("exit 3\r");
    EXPECT_EQ(client.wait_exit(), 3) << client.seen();
  }
  EXPECT_TRUE(eventually([&] { return !running("shell"); }));
  EXPECT_EQ(inspect("shell")["State"]["ExitCode"], 3);
}

TEST_F(ContainerAttach, RunItDetachesWithCtrlPCtrlQAndCanBeAttachedAgain) {
  PtyClient run(with_args({"run", "--network", "none", "-it", "--name", "it", "--rootfs", rootfs_, "sh"}));
  ASSERT_TRUE(run.ok());
  run.type("echo r$((1+2))un\r");
  EXPECT_TRUE(run.expect("r3un")) << run.seen();
  run.type("\x10\x11");
  EXPECT_EQ(run.wait_exit(), 0) << run.seen();
  EXPECT_TRUE(running("it"));

  PtyClient again(with_args({"attach", "it"}));
  ASSERT_TRUE(again.ok());
  again.type("echo ag$((4*4))ain\r");
  EXPECT_TRUE(again.expect("ag16ain")) << again.seen();
  again.type("exit 5\r");
  EXPECT_EQ(again.wait_exit(), 5) << again.seen();
  EXPECT_TRUE(eventually([&] { return !running("it"); }));
}

TEST_F(ContainerAttach, NoStdinKeepsKeystrokesAwayAndBadDetachKeysFail) {
  std::string id = run_detached({"-it", "--name", "quiet"}, {"sh"});
  ASSERT_FALSE(id.empty());
  {
    PtyClient client(with_args({"attach", "--no-stdin", "quiet"}));
    ASSERT_TRUE(client.ok());
    client.type("exit 9\r");
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_TRUE(running("quiet")) << "keystrokes reached the container despite --no-stdin";
  }
  auto bad = berth({"attach", "--detach-keys", "ctrl-1", "quiet"});
  EXPECT_EQ(bad.exit_code, 125);
  EXPECT_NE(bad.err.find("Invalid detach keys"), std::string::npos) << bad.err;
  auto stopped = berth({"create", "--network", "none", "--rootfs", rootfs_, "--name", "idle", "true"});
  ASSERT_EQ(stopped.exit_code, 0) << stopped.err;
  auto not_running = berth({"attach", "idle"});
  EXPECT_NE(not_running.exit_code, 0);
  EXPECT_NE(not_running.err.find("start it first"), std::string::npos) << not_running.err;
}

TEST_F(ContainerAttach, WithoutATtyOutputStreamsAndTheClientsSignalsReachTheContainer) {
  std::string id = run_detached({"--name", "ticker"},
                                {"sh", "-c", "trap 'echo bye >&2; exit 7' TERM; while true; do echo tick; sleep 0.1; done"});
  ASSERT_FALSE(id.empty());
  PtyClient client(with_args({"attach", "ticker"}));
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE(client.expect("tick")) << client.seen();
  // --sig-proxy (the default): the client's SIGTERM goes to the container,
  // whose trap exits 7; attach ends with that code.
  ::kill(client.pid(), SIGTERM);
  EXPECT_EQ(client.wait_exit(), 7) << client.seen();
  EXPECT_NE(client.seen().find("bye"), std::string::npos) << client.seen();
  EXPECT_TRUE(eventually([&] { return !running("ticker"); }));
}
