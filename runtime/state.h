// On-disk state of containers, and nothing else: where each file lives, its
// JSON shape, atomic writes, and how a recorded pid is checked against PID
// reuse (the start time from /proc/PID/stat).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "runtime/runtime.h"

namespace berth::runtime::state {

// <root>/containers/<id>
std::string container_dir(const Paths& paths, const std::string& id);
// <run_root>/containers/<id>
std::string runtime_dir(const Paths& paths, const std::string& id);

// A random 64-hex-digit id.
std::string new_id();
// A docker-like "adjective_name" for unnamed containers.
std::string random_name();
// RFC 3339 with nanoseconds as docker prints it ("2026-01-02T03:04:05.123456789Z").
std::string now_rfc3339nano();

// durable: fsync'd (base/fs.h write_file_atomic). Otherwise still atomic
// (rename) but not flushed: for files whose loss on power failure is
// harmless, since each fsync costs milliseconds on every start.
void save_spec(const std::string& dir, const ContainerSpec& spec, bool durable = true);
ContainerSpec load_spec(const std::string& dir);

// The durable part of the state (status as last recorded, exit code, times).
void save_state(const std::string& dir, const ContainerState& st, bool durable = true);
// Includes the health from health.json (save_state never writes it).
ContainerState load_state(const std::string& dir);

// The supervisor's health record, kept apart from state.json so that it
// never races the monitor's read-modify-write of the state.
void save_health(const std::string& dir, const HealthState& health);
HealthState load_health(const std::string& dir);

// What only makes sense while the host is up: the pids and their start
// times, so a recycled pid is never mistaken for the container.
struct RuntimeRecord {
  pid_t pid = 0;
  unsigned long long pid_start = 0;
  pid_t monitor_pid = 0;
  unsigned long long monitor_start = 0;
};
void save_runtime(const std::string& run_dir, const RuntimeRecord& rec);
std::optional<RuntimeRecord> load_runtime(const std::string& run_dir);
// What a run leaves in run_dir, gone at its end: the attach socket, the
// runtime record, and run_dir itself once empty.
void remove_runtime(const std::string& run_dir);

// Field 22 of /proc/PID/stat (clock ticks since boot), or 0 if no such process.
unsigned long long process_start_time(pid_t pid);
// True when pid is alive and started at `start` (and is not a zombie).
bool process_matches(pid_t pid, unsigned long long start);

// ids of all containers under root (directory names).
std::vector<std::string> list_ids(const Paths& paths);

std::string to_json(const ContainerSpec& spec);
ContainerSpec spec_from_json(const std::string& text);

}  // namespace berth::runtime::state
