// The executor: a small state machine over the plan's operations. Nothing
// here blocks; a completion callback moves the machine on.
#include "reconciler/executor.h"

#include <algorithm>

namespace berth::reconciler {

namespace {

const char* object_of(OpKind kind) {
  switch (kind) {
    case OpKind::CreateNetwork:
    case OpKind::RemoveNetwork: return "Network";
    case OpKind::CreateVolume:
    case OpKind::RemoveVolume: return "Volume";
    default: return "Container";
  }
}

// The progressive and the perfect form compose prints for an operation.
std::pair<const char*, const char*> statuses(OpKind kind) {
  switch (kind) {
    case OpKind::CreateNetwork:
    case OpKind::CreateVolume:
    case OpKind::CreateContainer: return {"Creating", "Created"};
    case OpKind::StartContainer: return {"Starting", "Started"};
    case OpKind::StopContainer: return {"Stopping", "Stopped"};
    case OpKind::RemoveNetwork:
    case OpKind::RemoveVolume:
    case OpKind::RemoveContainer: return {"Removing", "Removed"};
    case OpKind::RenameContainer: return {"Renaming", "Renamed"};
  }
  return {"?", "?"};
}

// "service web", "network default", "volume data": whom an error is about.
std::string owner(const Operation& op) {
  if (!op.service.empty()) return "service " + op.service;
  std::size_t colon = op.resource.find(':');
  if (colon == std::string::npos) return op.resource;
  return op.resource.substr(0, colon) + " " + op.resource.substr(colon + 1);
}

}  // namespace

std::string Event::str() const {
  std::string line = object + " " + name + "  " + status;
  if (!detail.empty()) line += " " + detail;
  return line;
}

Executor::Executor(Plan plan, Driver& driver, ExecutorOptions options)
    : plan_(std::move(plan)), driver_(driver), options_(std::move(options)) {
  if (options_.max_parallel == 0) options_.max_parallel = 1;
  result_.status.assign(plan_.operations.size(), OpStatus::pending);
  held_.resize(plan_.operations.size());
}

void Executor::start() { pump(); }

std::string Executor::describe(const Operation& op) const {
  std::string verb;
  switch (op.kind) {
    case OpKind::CreateNetwork: verb = "create network"; break;
    case OpKind::RemoveNetwork: verb = "remove network"; break;
    case OpKind::CreateVolume: verb = "create volume"; break;
    case OpKind::RemoveVolume: verb = "remove volume"; break;
    case OpKind::CreateContainer: verb = "create container"; break;
    case OpKind::StartContainer: verb = "start container"; break;
    case OpKind::StopContainer: verb = "stop container"; break;
    case OpKind::RemoveContainer: verb = "remove container"; break;
    case OpKind::RenameContainer: verb = "rename container"; break;
  }
  return verb + " " + op.name;
}

void Executor::emit(std::size_t index, const std::string& status, const std::string& detail) {
  const Operation& op = plan_.operations[index];
  deliver(index, Event{object_of(op.kind), op.name, status, detail});
}

void Executor::emit_container(std::size_t index, const std::string& name, const std::string& status) {
  deliver(index, Event{"Container", name, status, {}});
}

void Executor::deliver(std::size_t index, Event event) {
  if (!options_.on_event) return;
  if (!options_.ordered_events || index == printing_) return options_.on_event(event);
  held_[index].push_back(std::move(event));
}

// After an operation finished: the next unfinished one becomes the one
// printed live, once the held events of those before it are out.
void Executor::advance_printed() {
  if (!options_.ordered_events) return;
  auto finished_op = [&](std::size_t i) {
    OpStatus s = result_.status[i];
    return s == OpStatus::done || s == OpStatus::failed || s == OpStatus::skipped;
  };
  while (printing_ < plan_.operations.size() && finished_op(printing_)) {
    ++printing_;
    if (printing_ < plan_.operations.size()) {
      std::vector<Event> held = std::move(held_[printing_]);
      held_[printing_].clear();
      if (options_.on_event)
        for (const auto& e : held) options_.on_event(e);
    }
  }
}

// Ready when every dependency has finished. Doomed when a required one did
// not succeed: the operation then never runs.
bool Executor::ready(std::size_t index, bool& doomed, std::string& reason) const {
  doomed = false;
  for (const auto& dep : plan_.operations[index].after) {
    std::size_t d = static_cast<std::size_t>(dep.op - 1);
    OpStatus s = result_.status[d];
    if (s == OpStatus::pending || s == OpStatus::running) return false;
    if ((s == OpStatus::failed || s == OpStatus::skipped) && dep.required && !doomed) {
      doomed = true;
      const Operation& failed = plan_.operations[d];
      reason = "dependency " + failed.resource + " (" + describe(failed) + ") failed";
    }
  }
  return true;
}

void Executor::pump() {
  if (pumping_) {
    pump_again_ = true;  // a completion ran inline; rescan after this pass
    return;
  }
  pumping_ = true;
  do {
    pump_again_ = false;
    for (std::size_t i = 0; i < plan_.operations.size(); ++i) {
      if (result_.status[i] != OpStatus::pending) continue;
      bool doomed = false;
      std::string reason;
      if (!ready(i, doomed, reason)) continue;
      if (doomed) {
        const Operation& op = plan_.operations[i];
        result_.status[i] = OpStatus::skipped;
        ++finished_count_;
        result_.errors.push_back(owner(op) + ": " + describe(op) + " skipped: " + reason);
        advance_printed();
        pump_again_ = true;
        continue;
      }
      if (in_flight_ >= options_.max_parallel) break;
      launch(i);
    }
  } while (pump_again_);
  pumping_ = false;
}

void Executor::launch(std::size_t index) {
  result_.status[index] = OpStatus::running;
  ++in_flight_;
  run_waits(index, 0);
}

void Executor::run_waits(std::size_t index, std::size_t next_wait) {
  const Operation& op = plan_.operations[index];
  if (next_wait >= op.waits.size()) {
    perform(index);
    return;
  }
  const WaitFor& wait = op.waits[next_wait];
  // compose shows waiting only for the conditions that take time.
  bool visible = wait.condition != "service_started";
  if (visible)
    for (const auto& c : wait.containers) emit_container(index, c, "Waiting");
  driver_.wait_condition(wait, [this, index, next_wait, visible](std::optional<Error> error) {
    const Operation& op = plan_.operations[index];
    const WaitFor& wait = op.waits[next_wait];
    if (error) {
      if (wait.required) {
        complete(index, Error("dependency " + wait.service + " did not reach " + wait.condition + ": " + error->what()));
        return;
      }
      // required: false tolerates a dependency that failed.
      emit(index, "Warning", "dependency " + wait.service + " did not reach " + wait.condition + ": " + error->what());
    } else if (visible) {
      const char* reached = wait.condition == "service_healthy" ? "Healthy" : "Exited";
      for (const auto& c : wait.containers) emit_container(index, c, reached);
    }
    run_waits(index, next_wait + 1);
  });
}

void Executor::perform(std::size_t index) {
  const Operation& op = plan_.operations[index];
  emit(index, statuses(op.kind).first);
  Completion done = [this, index](std::optional<Error> error) { complete(index, std::move(error)); };
  const std::string& ref = op.container_id.empty() ? op.name : op.container_id;
  switch (op.kind) {
    case OpKind::CreateNetwork:
      if (!op.network) return complete(index, Error("create network " + op.name + ": the plan carries no network spec"));
      return driver_.create_network(*op.network, std::move(done));
    case OpKind::RemoveNetwork: return driver_.remove_network(op.name, std::move(done));
    case OpKind::CreateVolume:
      if (!op.volume) return complete(index, Error("create volume " + op.name + ": the plan carries no volume spec"));
      return driver_.create_volume(*op.volume, std::move(done));
    case OpKind::RemoveVolume: return driver_.remove_volume(op.name, std::move(done));
    case OpKind::CreateContainer:
      if (!op.container)
        return complete(index, Error("create container " + op.name + ": the plan carries no container spec"));
      return driver_.create_container(*op.container, std::move(done));
    case OpKind::StartContainer: return driver_.start_container(ref, std::move(done));
    case OpKind::StopContainer: return driver_.stop_container(ref, options_.stop_timeout, std::move(done));
    case OpKind::RemoveContainer: return driver_.remove_container(ref, std::move(done));
    case OpKind::RenameContainer: return driver_.rename_container(ref, op.new_name, std::move(done));
  }
}

void Executor::complete(std::size_t index, std::optional<Error> error) {
  const Operation& op = plan_.operations[index];
  --in_flight_;
  ++finished_count_;
  if (error) {
    result_.status[index] = OpStatus::failed;
    result_.errors.push_back(owner(op) + ": " + describe(op) + ": " + error->what());
    emit(index, "Error", error->what());
  } else {
    result_.status[index] = OpStatus::done;
    emit(index, statuses(op.kind).second);
  }
  advance_printed();
  pump();
}

ExecutionResult run_plan(const Plan& plan, Driver& driver, ExecutorOptions options, const std::function<bool()>& drain) {
  Executor executor(plan, driver, std::move(options));
  executor.start();
  while (!executor.finished()) {
    if (!drain || !drain())
      throw Error("reconciler: the executor stalled with " + std::to_string(executor.in_flight()) +
                  " operations in flight and nothing to complete them");
  }
  return executor.result();
}

}  // namespace berth::reconciler
