// The executor: walks a Plan's DAG with bounded parallelism through a
// Driver, and reports progress the way compose prints it. It knows nothing
// of YAML and nothing of how containers are made.
//
// Every Driver call completes through its callback, which may run inline
// (a blocking driver, the tests) or later from an event loop (libuv). The
// executor never blocks: it starts what is ready, and each completion starts
// what became ready. All calls and completions must happen on one thread,
// and the Executor must outlive every completion it handed to the Driver.
//
// Failure: an operation that fails marks every operation that requires it
// (transitively) as skipped, each with a per-service error line; operations
// on independent branches still run. A StartContainer first waits, through
// the Driver, for its depends_on conditions; a dependency with
// `required: false` that fails or does not reach its condition only warns.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/error.h"
#include "reconciler/plan.h"

namespace berth::reconciler {

// nullopt = success.
using Completion = std::function<void(std::optional<Error>)>;

class Driver {
 public:
  virtual ~Driver() = default;
  virtual void create_network(const NetworkSpec& network, Completion done) = 0;
  virtual void remove_network(const std::string& name, Completion done) = 0;
  virtual void create_volume(const VolumeSpec& volume, Completion done) = 0;
  virtual void remove_volume(const std::string& name, Completion done) = 0;
  virtual void create_container(const ContainerSpec& container, Completion done) = 0;
  // `container` is an id, or a name for a container this plan created.
  virtual void start_container(const std::string& container, Completion done) = 0;
  virtual void stop_container(const std::string& container, std::chrono::seconds timeout, Completion done) = 0;
  virtual void remove_container(const std::string& container, Completion done) = 0;
  virtual void rename_container(const std::string& container, const std::string& new_name, Completion done) = 0;
  // Completes when the service's containers satisfy the depends_on
  // condition, or with an error (unhealthy, exited non-zero, timed out).
  virtual void wait_condition(const WaitFor& wait, Completion done) = 0;
};

// A progress line as compose prints it: "Container app-web-1  Started".
struct Event {
  std::string object;  // "Container", "Network", "Volume"
  std::string name;
  std::string status;  // Creating, Created, Starting, Started, Waiting, Healthy, Stopping, ...
  std::string detail;  // the error for status "Error"
  std::string str() const;
  bool operator==(const Event&) const = default;
};

enum class OpStatus { pending, running, done, failed, skipped };

struct ExecutionResult {
  std::vector<OpStatus> status;  // by op index (id - 1)
  // One line per failed or skipped operation, with its service, e.g.
  // "service web: create container app-web-1: no such image busybox".
  std::vector<std::string> errors;
  bool ok() const { return errors.empty(); }
};

struct ExecutorOptions {
  std::size_t max_parallel = 4;  // operations in flight at once (>= 1)
  std::chrono::seconds stop_timeout{10};
  std::function<void(const Event&)> on_event;  // may be empty
  // Events in the order a one-at-a-time run prints them, whatever order
  // concurrent operations finish in: the first unfinished operation (in
  // plan order) streams its events as they happen; a later one's are held
  // until every operation before it has finished. Deterministic output for
  // the CLI (compose's own plain output is in completion order).
  bool ordered_events = false;
};

class Executor {
 public:
  Executor(Plan plan, Driver& driver, ExecutorOptions options = {});
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Starts the operations that are ready. Call once; completions do the rest.
  void start();
  bool finished() const { return finished_count_ == plan_.operations.size(); }
  std::size_t in_flight() const { return in_flight_; }
  const ExecutionResult& result() const { return result_; }

 private:
  void pump();
  void launch(std::size_t index);
  void run_waits(std::size_t index, std::size_t next_wait);
  void perform(std::size_t index);
  void complete(std::size_t index, std::optional<Error> error);
  void emit(std::size_t index, const std::string& status, const std::string& detail = {});
  void emit_container(std::size_t index, const std::string& name, const std::string& status);
  void deliver(std::size_t index, Event event);
  void advance_printed();
  bool ready(std::size_t index, bool& doomed, std::string& reason) const;
  std::string describe(const Operation& op) const;

  Plan plan_;
  Driver& driver_;
  ExecutorOptions options_;
  ExecutionResult result_;
  std::size_t in_flight_ = 0;
  std::size_t finished_count_ = 0;
  bool pumping_ = false;
  bool pump_again_ = false;
  // ordered_events: held events by operation, and the operation whose
  // events are printed as they come.
  std::vector<std::vector<Event>> held_;
  std::size_t printing_ = 0;
};

// Runs a plan to the end with a driver whose completions run inline (or
// are drained by `drain`, called whenever nothing can start). Throws
// berth::Error if the executor stalls. For tests and a blocking CLI.
ExecutionResult run_plan(const Plan& plan, Driver& driver, ExecutorOptions options = {},
                         const std::function<bool()>& drain = {});

}  // namespace berth::reconciler
