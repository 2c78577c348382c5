// `berth attach`: connect the terminal to a running container through its
// monitor (runtime/attach.h); ctrl-p ctrl-q (or --detach-keys) detaches.
#include <termios.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "base/error.h"
#include "cli/cli.h"
#include "runtime/attach.h"
#include "runtime/runtime.h"

namespace berth::cli {

namespace {

// Raw mode on a terminal stdin while attached to a container's pty.
class RawStdin {
 public:
  explicit RawStdin(bool on) {
    if (on && ::isatty(0) && ::tcgetattr(0, &saved_) == 0) {
      struct termios raw = saved_;
      ::cfmakeraw(&raw);
      active_ = ::tcsetattr(0, TCSANOW, &raw) == 0;
    }
  }
  ~RawStdin() {
    if (active_) ::tcsetattr(0, TCSANOW, &saved_);
  }

 private:
  struct termios saved_ {};
  bool active_ = false;
};

void register_attach_command(CLI::App& app, GlobalOptions& global) {
  auto* cmd = add_command(app, "attach", "Attach local standard input, output, and error streams to a running container");
  auto ref = std::make_shared<std::string>();
  auto opts = std::make_shared<runtime::AttachOptions>();
  auto no_stdin = std::make_shared<bool>(false);
  cmd->add_option("CONTAINER", *ref, "Container")->required();
  cmd->add_option("--detach-keys", opts->detach_keys, "Override the key sequence for detaching a container");
  cmd->add_flag("--no-stdin", *no_stdin, "Do not attach STDIN");
  cmd->add_flag("--sig-proxy{true}", opts->sig_proxy, "Proxy all received signals to the process (default true)");
  cmd->callback([ref, opts, no_stdin, &global] {
    runtime::Runtime rt(runtime::Paths{global.root, global.run_root, {}});
    opts->stdin = !*no_stdin;
    runtime::parse_detach_keys(opts->detach_keys);
    auto c = rt.get(*ref);
    bool detached = false;
    int code = 0;
    {
      RawStdin raw(opts->stdin && c.spec.process.tty && c.spec.process.open_stdin);
      code = rt.attach(*ref, *opts, &detached);
    }
    exit_with(detached ? 0 : code);
  });
}

}  // namespace

BERTH_REGISTER_COMMANDS(205, register_attach_command, "attach");

}  // namespace berth::cli
