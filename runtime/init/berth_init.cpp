// berth-init: the container's PID 1 under `--init` (docker's --init, which
// runs tini). Bind-mounted read-only at /sbin/docker-init and run as
//   /sbin/docker-init -- COMMAND [ARG...]
// It starts COMMAND as its only child, in a process group of its own,
// forwards every signal it receives to that group, reaps every zombie the
// container makes (orphans are re-parented to PID 1), and exits with the
// child's status: its exit code, or 128+n when a signal n killed it.
//
// Linked statically against libc only: it has to run in any image.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

namespace {

// Signals that are about this process' own faults: never waited for.
bool synchronous(int sig) {
  return sig == SIGFPE || sig == SIGILL || sig == SIGSEGV || sig == SIGBUS || sig == SIGABRT || sig == SIGTRAP ||
         sig == SIGSYS || sig == SIGKILL || sig == SIGSTOP;
}

[[noreturn]] void die(const char* what, int err, int code) {
  fprintf(stderr, "berth-init: %s: %s\n", what, strerror(err));
  _exit(code);
}

}  // namespace

int main(int argc, char** argv) {
  int first = 1;
  if (first < argc && strcmp(argv[first], "--") == 0) ++first;
  if (first >= argc) {
    fprintf(stderr, "usage: %s [--] COMMAND [ARG...]\n", argv[0]);
    return 2;
  }

  // Every asynchronous signal is blocked and taken with sigwaitinfo below.
  sigset_t all, previous;
  sigfillset(&all);
  for (int s = 1; s < NSIG; ++s)
    if (synchronous(s)) sigdelset(&all, s);
  if (sigprocmask(SIG_SETMASK, &all, &previous) != 0) die("sigprocmask", errno, 125);
  // A background process group reading or writing the terminal must not
  // stop the init itself.
  signal(SIGTTIN, SIG_IGN);
  signal(SIGTTOU, SIG_IGN);

  pid_t child = fork();
  if (child < 0) die("fork", errno, 125);
  if (child == 0) {
    setpgid(0, 0);
    // With a terminal, the command's group is the foreground one (ctrl-c
    // reaches it, and it may read the terminal).
    if (isatty(STDIN_FILENO)) tcsetpgrp(STDIN_FILENO, getpgrp());
    signal(SIGTTIN, SIG_DFL);
    signal(SIGTTOU, SIG_DFL);
    sigprocmask(SIG_SETMASK, &previous, nullptr);
    execvp(argv[first], argv + first);
    int err = errno;
    fprintf(stderr, "berth-init: exec %s failed: %s\n", argv[first], strerror(err));
    _exit(err == ENOENT ? 127 : 126);
  }
  // Also from the parent, so a signal forwarded before the child ran
  // setpgid still finds the group.
  setpgid(child, child);

  for (;;) {
    siginfo_t info;
    int sig = sigwaitinfo(&all, &info);
    if (sig < 0 && errno != EINTR) die("sigwaitinfo", errno, 125);
    if (sig > 0 && sig != SIGCHLD) {
      // The whole group, so a shell's own children hear it too; the child
      // alone if it left the group.
      if (kill(-child, sig) != 0) kill(child, sig);
    }
    // Reap everything that has exited (one SIGCHLD may stand for several).
    for (;;) {
      int status = 0;
      pid_t pid = waitpid(-1, &status, WNOHANG);
      if (pid <= 0) break;
      if (pid != child) continue;
      // Whatever is left dies with the PID namespace when PID 1 exits.
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
  }
}
