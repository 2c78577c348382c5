// `berth attach` and `run -it` through the container's monitor, driven
// from a pseudo-terminal like a user's: keystrokes reach the container,
// its output comes back, ctrl-p ctrl-q (or --detach-keys) detaches and
// leaves it running; without a tty, attach streams output and proxies
// signals, and returns the container's exit code.
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>

#include <cstring>
#include <future>
#include <regex>

#include "runtime/attach.h"
#include "tests/integration/container_fixture.h"

using namespace berth::test;
namespace attach_proto = berth::runtime::attach_proto;

namespace {

// A berth client on the slave side of a new pty (its controlling terminal).
class PtyClient {
 public:
  // rows/cols: the terminal's window size from the start (0: none).
  explicit PtyClient(const std::vector<std::string>& args, unsigned short rows = 0, unsigned short cols = 0) {
    int slave = -1;
    struct winsize ws {};
    ws.ws_row = rows;
    ws.ws_col = cols;
    if (::openpty(&master_, &slave, nullptr, nullptr, rows ? &ws : nullptr) != 0) return;
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
  // A new window size, as a terminal emulator sets it (the client gets SIGWINCH).
  void resize(unsigned short rows, unsigned short cols) {
    struct winsize ws {};
    ws.ws_row = rows;
    ws.ws_col = cols;
    ASSERT_EQ(::ioctl(master_, TIOCSWINSZ, &ws), 0);
  }
  // Types `command` until `want` shows up (a resize reaches the container
  // asynchronously), at most about timeout_ms.
  bool retype_until(const std::string& command, const std::string& want, int timeout_ms = 10000) {
    for (int waited = 0; waited < timeout_ms; waited += 500) {
      type(command);
      if (expect(want, 500)) return true;
    }
    return false;
  }
  // The terminal's line discipline is in raw mode (the client set it).
  bool raw() const {
    struct termios t {};
    return ::tcgetattr(master_, &t) == 0 && !(t.c_lflag & (ICANON | ECHO));
  }

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

// A container keeps the monitor it was started with across an upgrade of
// berth: a client of another attach protocol is told so, in words, and the
// container is left alone.
TEST_F(ContainerAttach, AClientOfAnotherProtocolVersionIsToldSoAndTheContainerRunsOn) {
  std::string id = run_detached({"--name", "steady"}, {"sh", "-c", "while true; do echo tick; sleep 0.1; done"});
  ASSERT_FALSE(id.empty());
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  // Through an fd on its directory: the full path is longer than sun_path.
  int dir = ::open((run_root_ + "/containers/" + id).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0);
  std::string path = "/proc/self/fd/" + std::to_string(dir) + "/attach.sock";
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  int connected = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::close(dir);
  ASSERT_EQ(connected, 0) << std::strerror(errno);
  struct timeval patience {5, 0};  // a monitor that streams on instead of closing fails, not hangs
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof patience);
  char hello = static_cast<char>(15 << 4 | 2 | 4);  // protocol 15, stdout and stderr
  ASSERT_EQ(::write(fd, &hello, 1), 1);
  auto read_exactly = [&](size_t n) {
    std::string out;
    char buf[4096];
    while (out.size() < n) {
      ssize_t got = ::read(fd, buf, std::min(sizeof buf, n - out.size()));
      if (got <= 0) break;
      out.append(buf, static_cast<size_t>(got));
    }
    return out;
  };
  // One error frame, and then the end of the connection.
  std::string head = read_exactly(attach_proto::kHeader);
  ASSERT_EQ(head.size(), attach_proto::kHeader);
  EXPECT_EQ(head[0], attach_proto::kFrameError);
  std::string message = read_exactly(std::min<size_t>(attach_proto::decode_length(head.data()), 4096));
  EXPECT_NE(message.find("attach protocol 1, this berth 15"), std::string::npos) << message;
  EXPECT_NE(message.find("restart it"), std::string::npos) << message;
  char more;
  EXPECT_EQ(::read(fd, &more, 1), 0) << "the monitor kept the connection";
  ::close(fd);
  EXPECT_TRUE(running("steady"));
  // This berth's own client still attaches.
  PtyClient client(with_args({"attach", "steady"}));
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE(client.expect("tick")) << client.seen();
}

// The other side: a monitor that refuses this berth's client (a newer one,
// after a downgrade) is heard, and attach fails with its words.
TEST_F(ContainerAttach, AnAttachTheMonitorRefusesFailsWithItsWords) {
  std::string id = run_detached({"--name", "older"}, {"sleep", "600"});
  ASSERT_FALSE(id.empty());
  // In the monitor's place at its socket's path: a listener that refuses.
  int dir = ::open((run_root_ + "/containers/" + id).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(dir, 0);
  ASSERT_EQ(::unlinkat(dir, "attach.sock", 0), 0);
  int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string path = "/proc/self/fd/" + std::to_string(dir) + "/attach.sock";
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  ::close(dir);
  ASSERT_EQ(::listen(listener, 1), 0);
  auto refuse = std::async(std::launch::async, [listener] {
    int c = ::accept(listener, nullptr, nullptr);
    if (c < 0) return -1;
    char hello = 0;
    if (::read(c, &hello, 1) != 1) hello = 0;
    std::string why = "speaks attach protocol 2";
    char head[attach_proto::kHeader];
    attach_proto::encode_header(head, attach_proto::kFrameError, static_cast<uint32_t>(why.size()));
    std::string frame = std::string(head, sizeof head) + why;
    if (::write(c, frame.data(), frame.size()) < 0) {
    }
    ::close(c);
    return attach_proto::hello_version(hello);
  });
  // Bounded: a client that missed the refusal would wait for the container.
  Result r = berth::test::run({"/usr/bin/timeout", "-s", "KILL", "20", berth_binary(), "--root", root_, "--run-root", run_root_, "attach", "older"});
  ::close(listener);
  EXPECT_EQ(refuse.get(), attach_proto::kVersion) << "the client did not say its protocol";
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("cannot attach to container older: speaks attach protocol 2"), std::string::npos) << r.err;
  EXPECT_TRUE(running("older"));
}

TEST_F(ContainerAttach, ExecTGivesTheProcessAPtyOfTheContainersOwnDevPts) {
  std::string id = run_detached({"--name", "box"}, {"sleep", "100"});
  ASSERT_FALSE(id.empty());
  // The pty is the container's (its /dev/pts has the node), stdin is a
  // terminal, and it is the controlling terminal (/dev/tty opens).
  auto r = berth({"exec", "-t", "box", "sh", "-c",
                  "t=$(tty); echo $t; [ -t 0 ] && echo stdin-tty; [ -c $t ] && echo node-inside; "
                  "echo ctty > /dev/tty; exit 4"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_TRUE(std::regex_match(r.out, std::regex("/dev/pts/[0-9]+\r\nstdin-tty\r\nnode-inside\r\nctty\r\n"))) << r.out;
  // Without -t: no terminal; without -i: no stdin; with -i: stdin is fed.
  r = berth({"exec", "box", "sh", "-c", "[ -t 0 ] || [ -t 1 ] || echo no-tty"});
  EXPECT_EQ(r.out, "no-tty\n");
  r = berth({"exec", "box", "cat"}, "not for cat\n");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "");
  r = berth({"exec", "-i", "box", "sh", "-c", "cat; echo done"}, "fed\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "fed\ndone\n");
}

TEST_F(ContainerAttach, ExecItIsRawForwardsKeysAndResizeAndRestoresTheTerminal) {
  std::string id = run_detached({"--name", "box"}, {"sleep", "100"});
  ASSERT_FALSE(id.empty());
  PtyClient client(with_args({"exec", "-it", "box", "sh"}), 24, 80);
  ASSERT_TRUE(client.ok());
  client.type("echo e$((3*3))x\r");
  EXPECT_TRUE(client.expect("e9x")) << client.seen();
  EXPECT_TRUE(client.raw());
  EXPECT_TRUE(client.retype_until("stty size\r", "24 80")) << client.seen();
  client.resize(41, 101);
  EXPECT_TRUE(client.retype_until("stty size\r", "41 101")) << client.seen();
  client.type("exit 6\r");
  EXPECT_EQ(client.wait_exit(), 6) << client.seen();
  EXPECT_FALSE(client.raw()) << "the terminal was left in raw mode";
}

TEST_F(ContainerAttach, RunIPipesStdinAndItsEofEndsTheContainer) {
  auto r = run({"-i", "--rm"}, {"cat"}, "hi\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "hi\n");
  // Without -i the container's stdin is empty.
  r = run({"--rm"}, {"cat"}, "hi\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(ContainerAttach, StartAStreamsOutputAndStartAiFeedsStdin) {
  auto made = berth({"create", "--rootfs", rootfs_, "--name", "talk", "sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  auto r = berth({"start", "-a", "talk"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.out, "out\n");
  EXPECT_EQ(r.err, "err\n");

  made = berth({"create", "-i", "--rootfs", rootfs_, "--name", "eat", "sh", "-c", "cat; echo eof; exit 2"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  EXPECT_EQ(inspect("eat")["Config"]["StdinOnce"], true);
  r = berth({"start", "-ai", "eat"}, "fed\n");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.out, "fed\neof\n");
}

TEST_F(ContainerAttach, AttachFeedsStdinOfAnIContainerAndItsEofClosesItWithStdinOnce) {
  // create -i: StdinOnce, so the client's EOF closes the container's stdin.
  auto made = berth({"create", "-i", "--rootfs", rootfs_, "--name", "once", "sh", "-c",
                     "while read l; do echo got-$l; done; echo closed; exit 4"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  ASSERT_EQ(berth({"start", "once"}).exit_code, 0);
  auto r = berth({"attach", "once"}, "line\n");
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_EQ(r.out, "got-line\nclosed\n");

  // run -d -i: no StdinOnce; a client's EOF ends only that client's streams,
  // and the stdin stays open for the next one (docker).
  std::string id = run_detached({"-i", "--name", "open"}, {"sh", "-c", "while read l; do echo got-$l; done; echo closed"});
  ASSERT_FALSE(id.empty());
  EXPECT_EQ(inspect("open")["Config"]["StdinOnce"], false);
  auto first = std::async(std::launch::async, [&] { return berth({"attach", "open"}, "one\n"); });
  auto logs = [&] { return berth({"logs", "open"}).out; };
  EXPECT_TRUE(eventually([&] { return logs() == "got-one\n"; })) << logs();
  auto second = std::async(std::launch::async, [&] { return berth({"attach", "open"}, "two\n"); });
  EXPECT_TRUE(eventually([&] { return logs() == "got-one\ngot-two\n"; })) << logs();
  EXPECT_TRUE(running("open"));
  // Both clients wait for the container's end, as docker attach does.
  ASSERT_EQ(berth({"kill", "open"}).exit_code, 0);
  EXPECT_EQ(first.get().exit_code, 137);
  EXPECT_EQ(second.get().exit_code, 137);
  EXPECT_EQ(logs(), "got-one\ngot-two\n");
}

TEST_F(ContainerAttach, TheWindowSizeReachesThePtyOfRunItAndOfAttach) {
  PtyClient run(with_args({"run", "--network", "none", "-it", "--name", "sized", "--rootfs", rootfs_, "sh"}), 30, 90);
  ASSERT_TRUE(run.ok());
  EXPECT_TRUE(run.retype_until("stty size\r", "30 90")) << run.seen();
  run.resize(50, 120);
  EXPECT_TRUE(run.retype_until("stty size\r", "50 120")) << run.seen();
  run.type("\x10\x11");
  EXPECT_EQ(run.wait_exit(), 0) << run.seen();

  PtyClient again(with_args({"attach", "sized"}), 33, 77);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again.retype_until("stty size\r", "33 77")) << again.seen();
  again.resize(20, 60);
  EXPECT_TRUE(again.retype_until("stty size\r", "20 60")) << again.seen();
  again.type("exit 0\r");
  EXPECT_EQ(again.wait_exit(), 0) << again.seen();
}

TEST_F(ContainerAttach, StartAiOnATtyContainerIsRawSizedAndReturnsItsCode) {
  auto made = berth({"create", "-it", "--rootfs", rootfs_, "--name", "term", "sh"});
  ASSERT_EQ(made.exit_code, 0) << made.err;
  PtyClient client(with_args({"start", "-ai", "term"}), 25, 70);
  ASSERT_TRUE(client.ok());
  EXPECT_TRUE(client.retype_until("stty size\r", "25 70")) << client.seen();
  EXPECT_TRUE(client.raw());
  client.type("exit 8\r");
  EXPECT_EQ(client.wait_exit(), 8) << client.seen();
  EXPECT_FALSE(client.raw()) << "the terminal was left in raw mode";
  EXPECT_EQ(inspect("term")["State"]["ExitCode"], 8);
}

TEST_F(ContainerAttach, ThePtyOfRunTAndExecTBelongsToTheProcesssUserWithTheTtyGroup) {
  // As runc: the owner is the process's user, group tty (5), mode 0620, so
  // a process that dropped root can still reopen its own terminal.
  auto r = run({"--rm", "--network", "none", "-t", "-u", "1000"},
               {"sh", "-c", "t=$(tty); stat -c '%u %g %a' $t; echo reopened > $t"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1000 5 620\r\nreopened\r\n");
  r = run({"--rm", "--network", "none", "-t"}, {"sh", "-c", "stat -c '%u %g %a' $(tty)"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "0 5 620\r\n");

  std::string id = run_detached({"--name", "box"}, {"sleep", "100"});
  ASSERT_FALSE(id.empty());
  r = berth({"exec", "-t", "-u", "1234:99", "box", "sh", "-c", "t=$(tty); stat -c '%u %g %a' $t; echo reopened > $t"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "1234 5 620\r\nreopened\r\n");
  r = berth({"exec", "-t", "box", "sh", "-c", "stat -c '%u %g %a' $(tty)"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "0 5 620\r\n");
}

TEST_F(ContainerAttach, ComposeExecAndRunAllocateATtyFromATerminalAndNotWithT) {
  start_compose_project();
  write_app(
      "name: tt\nservices:\n  box:\n    image: busybox:latest\n    network_mode: none\n"
      "    command: [\"sleep\", \"600\"]\n    stop_signal: SIGKILL\n");
  auto up = compose({"up", "-d"});
  ASSERT_EQ(up.exit_code, 0) << up.err;
  std::string file = project_dir_ + "/compose.yaml";
  // From a terminal: a pty of the container's devpts, by default.
  {
    PtyClient client(with_args({"compose", "-f", file, "exec", "box", "tty"}), 24, 80);
    ASSERT_TRUE(client.ok());
    EXPECT_EQ(client.wait_exit(), 0) << client.seen();
    EXPECT_TRUE(std::regex_search(client.seen(), std::regex("^/dev/pts/[0-9]+\r\n"))) << client.seen();
    EXPECT_FALSE(client.raw()) << "the terminal was left in raw mode";
  }
  {
    PtyClient client(with_args({"compose", "-f", file, "exec", "-T", "box", "tty"}), 24, 80);
    ASSERT_TRUE(client.ok());
    EXPECT_EQ(client.wait_exit(), 1) << client.seen();
    EXPECT_NE(client.seen().find("not a tty"), std::string::npos) << client.seen();
  }
  // An interactive shell: typed keys reach it raw, its exit code returns.
  {
    PtyClient client(with_args({"compose", "-f", file, "exec", "box", "sh"}), 24, 80);
    ASSERT_TRUE(client.ok());
    client.type("echo e$((6*7))x\r");
    EXPECT_TRUE(client.expect("e42x")) << client.seen();
    EXPECT_TRUE(client.raw());
    client.type("exit 5\r");
    EXPECT_EQ(client.wait_exit(), 5) << client.seen();
  }
  // Not from a terminal (a script): plain streams, stdin still fed.
  auto r = compose({"compose", "exec", "box", "sh", "-c", "tty; cat"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "not a tty\n");

  // compose run: the same rule.
  {
    PtyClient client(with_args({"compose", "-f", file, "run", "--rm", "box", "tty"}), 24, 80);
    ASSERT_TRUE(client.ok());
    EXPECT_EQ(client.wait_exit(), 0) << client.seen();
    EXPECT_TRUE(std::regex_search(client.seen(), std::regex("(^|\n)/dev/pts/[0-9]+\r\n"))) << client.seen();
  }
  {
    PtyClient client(with_args({"compose", "-f", file, "run", "--rm", "-T", "box", "tty"}), 24, 80);
    ASSERT_TRUE(client.ok());
    EXPECT_EQ(client.wait_exit(), 1) << client.seen();
    EXPECT_NE(client.seen().find("not a tty"), std::string::npos) << client.seen();
  }
  r = compose({"compose", "run", "--rm", "box", "tty"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.out, "not a tty\n");
  stop_compose_project();
}
