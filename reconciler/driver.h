// The real Driver: carries out a plan's operations on this host through the
// runtime (containers), the network manager (bridges), the volume store and
// the image store. Blocking: every call does its work and then runs its
// completion inline, so `run_plan` drives it from the CLI. It holds no
// global state (only its options), so a daemon may run the same calls on
// worker threads, one RuntimeDriver per plan.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "reconciler/container_network.h"
#include "reconciler/executor.h"
#include "reconciler/image_rootfs.h"
#include "runtime/runtime.h"

namespace berth::reconciler {

// Annotation holding a service's stop_grace_period in seconds, so that a
// later `down`/recreate without -t stops it the way the service asks.
inline constexpr const char* kStopTimeoutAnnotation = "berth.stop-timeout";

struct DriverOptions {
  // `-t`: overrides every container's stop_grace_period when set.
  std::optional<int> stop_timeout;
  // How long wait_condition polls before giving up.
  std::chrono::milliseconds wait_timeout{std::chrono::seconds(120)};
  std::chrono::milliseconds poll_interval{100};
  // down -v: a removed container's anonymous volumes go too.
  bool remove_anonymous_volumes = false;
  // Non-fatal notes (ignored service keys, ...), one line each.
  std::function<void(const std::string&)> warn;
};

// The runtime spec of one container of a service: image defaults merged as
// compose merges them (entrypoint/command, environment, working_dir, user,
// labels, stop signal, healthcheck), mounts, limits, security, logging,
// restart policy. Networking is not filled in (see network_request).
// Throws berth::Error (125) naming the service for values berth cannot run.
// `warnings` receives one line per service key berth ignores.
runtime::ContainerSpec runtime_spec(const ContainerSpec& container, const ImageRootfs& image,
                                    std::vector<std::string>* warnings = nullptr);

// The networks a container joins (compose: its `networks:`, with the
// service name and its aliases as DNS aliases; `network_mode` none, host,
// container:X; service:X needs X's container id, passed as
// `service_container`), its published ports, dns, extra_hosts, hostname.
ContainerNetworkRequest network_request(const ContainerSpec& container, const std::string& service_container = {});

class RuntimeDriver : public Driver {
 public:
  RuntimeDriver(runtime::Paths paths, DriverOptions options = {});

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

  // The blocking forms (throw berth::Error), for callers outside a plan.
  std::string create(const ContainerSpec& container);  // returns the new id
  void stop(const std::string& container, std::optional<int> timeout);
  void remove(const std::string& container);
  void wait(const WaitFor& wait);

 private:
  runtime::Paths paths_;
  DriverOptions options_;
};

// Parses a signal name ("SIGTERM", "TERM", "15"); throws berth::Error.
int signal_number(const std::string& name);

}  // namespace berth::reconciler
