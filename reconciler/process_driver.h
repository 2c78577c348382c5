// A Driver that runs each operation of a blocking Driver (RuntimeDriver) in
// a child process forked for it, so that the executor's independent
// operations (containers of services whose dependencies are met, replicas,
// removals) run at the same time, up to the executor's max_parallel.
//
// Processes, not threads: starting a container forks its monitor, and the
// monitor clones the container's init and runs C++ in between; that is only
// safe from a single-threaded process. And every resource the driver
// shares between operations is on disk or in the kernel, already guarded
// by file locks because two berth commands may run at once: the image
// store's refcounts (images StoreLock), container names and state (the
// runtime's root and container locks), IPAM and the network store
// (net::NetworkStore lock, the host network lock), nftables (the host nft
// lock), volumes (the volume store lock). Nothing passes between operations
// in memory: a container this plan created is found again by its name.
//
// The parent stays single-threaded: completions run in drain(), on the
// executor's thread, so the executor's progress events stay in order.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "base/fs.h"
#include "reconciler/executor.h"

namespace berth::reconciler {

class ProcessDriver : public Driver {
 public:
  explicit ProcessDriver(Driver& inner);
  // Waits for the children still running (an operation half done in the
  // kernel is not interrupted); their completions are dropped.
  ~ProcessDriver() override;
  ProcessDriver(const ProcessDriver&) = delete;
  ProcessDriver& operator=(const ProcessDriver&) = delete;

  void create_network(const NetworkSpec& network, Completion done) override;
  void remove_network(const std::string& name, Completion done) override;
  void create_volume(const VolumeSpec& volume, Completion done) override;
  void remove_volume(const std::string& name, Completion done) override;
  void create_container(const ContainerSpec& container, Completion done) override;
  void start_container(const std::string& container, Completion done) override;
  void stop_container(const std::string& container, std::chrono::seconds timeout, Completion done) override;
  void remove_container(const std::string& container, Completion done) override;
  void rename_container(const std::string& container, const std::string& new_name, Completion done) override;
  void wait_condition(const WaitFor& wait, Completion done) override;

  // Blocks until at least one child has finished, then runs the completion
  // of every finished one. Returns false when no child runs (nothing could
  // ever complete). The `drain` of run_plan.
  bool drain();
  std::size_t running() const { return children_.size(); }

 private:
  struct Child {
    pid_t pid = -1;
    UniqueFd pidfd;   // readable once the child has exited
    UniqueFd report;  // read end of the pipe the child writes its result to
    Completion done;
  };
  // Forks a child that runs `op` on the inner driver and reports how it ended.
  void spawn(const std::function<void(Driver&, Completion)>& op, Completion done);
  void finish(Child& child);

  Driver& inner_;
  std::vector<Child> children_;
};

// The parallelism limit for the compose commands, as compose decides it:
// the --parallel flag when given (`flag` > 0; -1 means no limit), else
// COMPOSE_PARALLEL_LIMIT when set to a positive number, else `fallback`.
std::size_t parallel_limit(int flag, std::size_t fallback);

}  // namespace berth::reconciler
