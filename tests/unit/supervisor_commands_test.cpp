// POST /commands bodies (supervisor/commands.h): what a client sends, and a
// clear error for what serve must refuse.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/error.h"
#include "supervisor/commands.h"

namespace berth::supervisor {
namespace {

std::string error_of(const std::string& body) {
  try {
    parse_command_request(body);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(SupervisorCommands, ARequestRoundTrips) {
  CommandRequest r;
  r.args = {"up", "-d", "--scale", "web=3", "with \"quotes\" and \xc3\xa9"};
  r.env = {"PATH=/usr/bin", "EMPTY=", "MULTI=a=b=c"};
  r.umask = 027;
  CommandRequest back = parse_command_request(command_request_json(r));
  EXPECT_EQ(back.args, r.args);
  EXPECT_EQ(back.env, r.env);
  EXPECT_EQ(back.umask, 027u);
}

TEST(SupervisorCommands, ABadBodyNamesWhatIsWrong) {
  EXPECT_NE(error_of("not json").find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of("[]").find("not a JSON object"), std::string::npos);
  EXPECT_NE(error_of("{}").find("missing \"Args\""), std::string::npos);
  EXPECT_NE(error_of(R"({"Args": []})").find("\"Args\" is empty"), std::string::npos);
  EXPECT_NE(error_of(R"({"Args": "up"})").find("\"Args\" must be an array of strings"), std::string::npos);
  EXPECT_NE(error_of(R"({"Args": ["up", 3]})").find("\"Args\" must be an array of strings"), std::string::npos);
  EXPECT_NE(error_of(R"({"Args": ["up"], "Env": [1]})").find("\"Env\" must be an array of strings"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"Args": ["up"], "Umask": 512})").find("\"Umask\""), std::string::npos);
  EXPECT_NE(error_of(R"({"Args": ["up"], "Umask": "022"})").find("\"Umask\""), std::string::npos);
  EXPECT_EQ(error_of(R"({"Args": ["up"]})"), "");
}

TEST(SupervisorCommands, TheClientProcessIsTakenFromTheSocketPeer) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (the peer must be root)";
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  ClientProcess p = take_client_process(a.get());  // the peer is this process
  EXPECT_EQ(p.pid, ::getpid());
  EXPECT_EQ(p.exe, "/proc/" + std::to_string(::getpid()) + "/exe");
  EXPECT_EQ(p.cwd, "/proc/" + std::to_string(::getpid()) + "/cwd");
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(p.stdio[static_cast<size_t>(i)]) << "fd " << i;
    // A duplicate of our own fd i: the same open file.
    struct stat mine {}, theirs {};
    if (::fstat(i, &mine) != 0) continue;  // closed here: /dev/null there
    ASSERT_EQ(::fstat(p.stdio[static_cast<size_t>(i)].get(), &theirs), 0);
    EXPECT_EQ(mine.st_ino, theirs.st_ino) << "fd " << i;
    EXPECT_EQ(mine.st_dev, theirs.st_dev) << "fd " << i;
  }
}

}  // namespace
}  // namespace berth::supervisor
