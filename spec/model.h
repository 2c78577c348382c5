// The typed, normalized compose model. Plain value types: copyable,
// comparable with ==, and printable (operator<< renders JSON). After
// load_project() every short syntax is expanded, every relative path is
// absolute and every default compose fills in is spelled out, so consumers
// (reconciler, runtime) never re-parse compose syntax.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace berth::spec {

using Json = nlohmann::ordered_json;
using StringMap = std::map<std::string, std::string>;

// Durations are kept in nanoseconds and printed the Go way ("1m30s"), as compose does.
struct Duration {
  std::int64_t nanoseconds = 0;
  bool operator==(const Duration&) const = default;
  std::string str() const;
};

// Byte sizes ("512m", "1g", 1024) kept in bytes; -1 means unlimited where allowed.
struct Bytes {
  std::int64_t value = 0;
  bool operator==(const Bytes&) const = default;
};

struct Extends {
  std::string service;
  std::string file;
  bool operator==(const Extends&) const = default;
};

struct Ulimit {
  std::optional<std::int64_t> single;  // `nofile: 1024`
  std::optional<std::int64_t> soft;
  std::optional<std::int64_t> hard;
  bool operator==(const Ulimit&) const = default;
};

struct BlkioLimit {
  std::string path;
  std::optional<Bytes> rate;
  bool operator==(const BlkioLimit&) const = default;
};
struct BlkioWeight {
  std::string path;
  std::optional<std::int64_t> weight;
  bool operator==(const BlkioWeight&) const = default;
};
struct BlkioConfig {
  std::vector<BlkioLimit> device_read_bps, device_read_iops, device_write_bps, device_write_iops;
  std::optional<std::int64_t> weight;
  std::vector<BlkioWeight> weight_device;
  bool operator==(const BlkioConfig&) const = default;
};

struct ServiceFileRef {  // service-level configs/secrets entry
  std::string source;
  std::string target;
  std::string uid, gid;
  std::optional<std::int64_t> mode;
  bool operator==(const ServiceFileRef&) const = default;
};

struct ServiceHook {
  std::vector<std::string> command;
  std::string user;
  bool privileged = false;
  std::string working_dir;
  std::map<std::string, std::optional<std::string>> environment;
  bool operator==(const ServiceHook&) const = default;
};

struct Build {
  std::string context;
  std::string dockerfile;
  std::string dockerfile_inline;
  std::vector<std::string> entitlements;
  std::map<std::string, std::optional<std::string>> args;
  std::vector<std::string> ssh;
  StringMap labels;
  std::vector<std::string> cache_from, cache_to;
  bool no_cache = false;
  StringMap additional_contexts;
  std::string network;
  std::optional<std::string> provenance, sbom;
  bool pull = false;
  std::string target;
  std::optional<Bytes> shm_size;
  std::map<std::string, std::vector<std::string>> extra_hosts;
  std::string isolation;
  bool privileged = false;
  std::vector<ServiceFileRef> secrets;
  std::vector<std::string> tags;
  std::map<std::string, Ulimit> ulimits;
  std::vector<std::string> platforms;
  bool operator==(const Build&) const = default;
};

struct CredentialSpec {
  std::string config, file, registry;
  bool operator==(const CredentialSpec&) const = default;
};


struct DependsOn {
  std::string condition = "service_started";  // service_started|service_healthy|service_completed_successfully
  bool restart = false;
  bool required = true;
  bool operator==(const DependsOn&) const = default;
};

struct DeviceRequest {  // deploy.resources.reservations.devices and gpus
  std::vector<std::string> capabilities;
  std::optional<std::int64_t> count;  // -1 = all
  std::vector<std::string> device_ids;
  std::string driver;
  StringMap options;
  bool operator==(const DeviceRequest&) const = default;
};

struct DiscreteResourceSpec {
  std::string kind;
  std::optional<std::int64_t> value;
  bool operator==(const DiscreteResourceSpec&) const = default;
};
struct GenericResource {
  std::optional<DiscreteResourceSpec> discrete_resource_spec;
  bool operator==(const GenericResource&) const = default;
};

struct Resource {
  std::optional<double> cpus;
  std::optional<Bytes> memory;
  std::optional<std::int64_t> pids;
  std::vector<GenericResource> generic_resources;
  std::vector<DeviceRequest> devices;
  bool operator==(const Resource&) const = default;
};

struct Resources {
  std::optional<Resource> limits, reservations;
  bool operator==(const Resources&) const = default;
};

struct RestartPolicy {
  std::string condition;  // none|on-failure|any
  std::optional<Duration> delay;
  std::optional<std::int64_t> max_attempts;
  std::optional<Duration> window;
  bool operator==(const RestartPolicy&) const = default;
};

struct UpdateConfig {
  std::optional<std::int64_t> parallelism;
  std::optional<Duration> delay;
  std::string failure_action;
  std::optional<Duration> monitor;
  std::optional<double> max_failure_ratio;
  std::string order;
  bool operator==(const UpdateConfig&) const = default;
};

struct PlacementPreference {
  std::string spread;
  bool operator==(const PlacementPreference&) const = default;
};
struct Placement {
  std::vector<std::string> constraints;
  std::vector<PlacementPreference> preferences;
  std::optional<std::int64_t> max_replicas_per_node;
  bool operator==(const Placement&) const = default;
};

struct Deploy {
  std::string mode;  // replicated|global
  std::string endpoint_mode;
  std::optional<std::int64_t> replicas;
  StringMap labels;
  std::optional<UpdateConfig> rollback_config, update_config;
  std::optional<Resources> resources;
  std::optional<RestartPolicy> restart_policy;
  std::optional<Placement> placement;
  bool operator==(const Deploy&) const = default;
};

struct WatchRule {
  std::vector<std::string> ignore, include;
  std::string path, action, target;
  std::optional<ServiceHook> exec;
  bool initial_sync = false;
  bool operator==(const WatchRule&) const = default;
};
struct Develop {
  std::vector<WatchRule> watch;
  bool operator==(const Develop&) const = default;
};

struct DeviceMapping {
  std::string source, target, permissions;
  bool operator==(const DeviceMapping&) const = default;
};

struct EnvFile {
  std::string path;
  bool required = true;
  std::string format;
  bool operator==(const EnvFile&) const = default;
};

struct Healthcheck {
  std::vector<std::string> test;  // ["CMD", ...], ["CMD-SHELL", "..."] or ["NONE"]
  std::optional<Duration> interval, timeout, start_period, start_interval;
  std::optional<std::int64_t> retries;
  bool disable = false;
  bool operator==(const Healthcheck&) const = default;
};

struct Logging {
  std::string driver;
  StringMap options;
  bool operator==(const Logging&) const = default;
};

struct ServiceModel {
  std::string endpoint_var, model_var;
  bool operator==(const ServiceModel&) const = default;
};

struct ServiceNetwork {
  std::vector<std::string> aliases;
  std::string interface_name, ipv4_address, ipv6_address, mac_address;
  std::vector<std::string> link_local_ips;
  StringMap driver_opts;
  std::optional<std::int64_t> priority, gw_priority;
  bool operator==(const ServiceNetwork&) const = default;
};

struct Port {
  std::string name;
  std::string mode = "ingress";
  std::string host_ip;
  std::int64_t target = 0;
  std::string published;  // "" = ephemeral; may be a range "8000-8010"
  std::string protocol = "tcp";
  std::string app_protocol;
  bool operator==(const Port&) const = default;
};


struct Provider {
  std::string type;
  std::map<std::string, std::vector<std::string>> options;
  bool operator==(const Provider&) const = default;
};

struct VolumeBind {
  std::string propagation;
  std::optional<bool> create_host_path;
  std::string recursive;  // enabled|disabled|writable|readonly
  std::string selinux;    // z|Z
  bool operator==(const VolumeBind&) const = default;
};
struct VolumeVolume {
  StringMap labels;
  bool nocopy = false;
  std::string subpath;
  bool operator==(const VolumeVolume&) const = default;
};
struct VolumeTmpfs {
  std::optional<Bytes> size;
  std::optional<std::int64_t> mode;
  bool operator==(const VolumeTmpfs&) const = default;
};
struct VolumeImage {
  std::string subpath;
  bool operator==(const VolumeImage&) const = default;
};

struct ServiceVolume {
  std::string type;  // bind|volume|tmpfs|npipe|cluster|image
  std::string source;
  std::string target;
  bool read_only = false;
  std::string consistency;
  std::optional<VolumeBind> bind;
  std::optional<VolumeVolume> volume;
  std::optional<VolumeTmpfs> tmpfs;
  std::optional<VolumeImage> image;
  bool operator==(const ServiceVolume&) const = default;
};

// berth extension x-processes: one supervised program inside a service's
// container, with supervisord's meanings and defaults.
struct Process {
  std::vector<std::string> command;
  std::map<std::string, std::string> environment;
  std::string directory;
  std::string user;
  bool autostart = true;
  std::string autorestart = "unexpected";  // true|false|unexpected
  std::int64_t startsecs = 1;
  std::int64_t startretries = 3;
  std::vector<std::int64_t> exitcodes{0};
  std::string stopsignal = "TERM";
  std::int64_t stopwaitsecs = 10;
  std::int64_t priority = 999;
  bool operator==(const Process&) const = default;
};

struct Service {
  std::string name;  // the key under `services`
  StringMap annotations;
  std::optional<bool> attach;
  std::optional<BlkioConfig> blkio_config;
  std::optional<Build> build;
  std::vector<std::string> cap_add, cap_drop;
  std::string cgroup, cgroup_parent;
  std::optional<std::vector<std::string>> command;
  std::vector<ServiceFileRef> configs;
  std::string container_name;
  std::optional<std::int64_t> cpu_count;
  std::optional<double> cpu_percent;
  std::optional<std::int64_t> cpu_period, cpu_quota, cpu_rt_period, cpu_rt_runtime, cpu_shares;
  std::optional<double> cpus;
  std::string cpuset;
  std::optional<CredentialSpec> credential_spec;
  std::map<std::string, DependsOn> depends_on;
  std::optional<Deploy> deploy;
  std::optional<Develop> develop;
  std::vector<std::string> device_cgroup_rules;
  std::vector<DeviceMapping> devices;
  std::vector<std::string> dns, dns_opt, dns_search;
  std::string domainname;
  std::optional<std::vector<std::string>> entrypoint;
  std::vector<EnvFile> env_file;
  std::map<std::string, std::optional<std::string>> environment;
  std::vector<std::string> expose;
  std::optional<Extends> extends;  // resolved by the loader; never set after load
  std::vector<std::string> external_links;
  std::map<std::string, std::vector<std::string>> extra_hosts;
  std::vector<DeviceRequest> gpus;
  std::vector<std::string> group_add;
  std::optional<Healthcheck> healthcheck;
  std::string hostname;
  std::string image;
  std::optional<bool> init;
  std::string ipc;
  std::string isolation;
  std::vector<std::string> label_file;
  StringMap labels;
  std::vector<std::string> links;
  std::optional<Logging> logging;
  std::string mac_address;
  std::optional<Bytes> mem_limit, mem_reservation, memswap_limit;
  std::optional<std::int64_t> mem_swappiness;
  std::map<std::string, ServiceModel> models;
  std::string network_mode;
  std::map<std::string, std::optional<ServiceNetwork>> networks;
  std::optional<bool> oom_kill_disable;
  std::optional<std::int64_t> oom_score_adj;
  std::string pid;
  std::optional<std::int64_t> pids_limit;
  std::string platform;
  std::vector<Port> ports;
  std::vector<ServiceHook> post_start, pre_stop;
  bool privileged = false;
  std::vector<std::string> profiles;
  std::optional<Provider> provider;
  std::string pull_policy;
  std::string pull_refresh_after;
  bool read_only = false;
  std::string restart;
  std::string runtime;
  std::optional<std::int64_t> scale;
  std::vector<ServiceFileRef> secrets;
  std::vector<std::string> security_opt;
  std::optional<Bytes> shm_size;
  bool stdin_open = false;
  std::optional<Duration> stop_grace_period;
  std::string stop_signal;
  StringMap storage_opt;
  StringMap sysctls;
  std::vector<std::string> tmpfs;
  bool tty = false;
  std::map<std::string, Ulimit> ulimits;
  bool use_api_socket = false;
  std::string user;
  std::string userns_mode;
  std::string uts;
  std::vector<ServiceVolume> volumes;
  std::vector<std::string> volumes_from;
  std::string working_dir;
  std::map<std::string, Process> processes;  // x-processes
  Json extensions = Json::object();          // other x-* keys, verbatim

  // Containers to run: deploy.replicas, else scale, else 1.
  std::int64_t replicas() const;
  bool operator==(const Service&) const = default;
};

struct External {
  bool external = false;
  bool operator==(const External&) const = default;
};

struct IpamConfig {
  std::string subnet, ip_range, gateway;
  StringMap aux_addresses;
  bool operator==(const IpamConfig&) const = default;
};
struct Ipam {
  std::string driver;
  std::vector<IpamConfig> config;
  StringMap options;
  bool operator==(const Ipam&) const = default;
};

struct Network {
  std::string name;  // the real name (project-prefixed unless external or given)
  std::string driver;
  StringMap driver_opts;
  std::optional<Ipam> ipam;
  bool external = false;
  bool internal = false;
  std::optional<bool> enable_ipv4, enable_ipv6;
  bool attachable = false;
  StringMap labels;
  Json extensions = Json::object();
  bool operator==(const Network&) const = default;
};

struct Volume {
  std::string name;
  std::string driver;
  StringMap driver_opts;
  bool external = false;
  StringMap labels;
  Json extensions = Json::object();
  bool operator==(const Volume&) const = default;
};

// Top-level configs and secrets share one shape.
struct FileObject {
  std::string name;
  std::string content;      // configs only
  std::string environment;  // take the value from this variable
  std::string file;
  bool external = false;
  StringMap labels;
  std::string driver;  // secrets only
  StringMap driver_opts;
  std::string template_driver;
  Json extensions = Json::object();
  bool operator==(const FileObject&) const = default;
};

struct Model {
  std::string name, model;
  std::optional<std::int64_t> context_size;
  std::vector<std::string> runtime_flags;
  bool operator==(const Model&) const = default;
};

struct Warning {
  std::string where;  // "file:line:col"
  std::string message;
  std::string str() const { return where.empty() ? message : where + ": " + message; }
  bool operator==(const Warning&) const = default;
};

struct Project {
  std::string name;
  std::string working_dir;                // the project directory
  std::vector<std::string> config_files;  // absolute paths, in load order
  std::map<std::string, Service> services;
  std::map<std::string, Network> networks;
  std::map<std::string, Volume> volumes;
  std::map<std::string, FileObject> configs;
  std::map<std::string, FileObject> secrets;
  std::map<std::string, Model> models;
  Json extensions = Json::object();
  // Every profile named by any service (also disabled ones), sorted.
  std::vector<std::string> all_profiles;
  // The interpolation environment the project was loaded with.
  std::map<std::string, std::string> environment;
  std::vector<Warning> warnings;

  // Services in dependency order (dependencies first), names sorted among equals.
  std::vector<std::string> service_order() const;
  bool operator==(const Project&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Service& s);
std::ostream& operator<<(std::ostream& os, const Project& p);

}  // namespace berth::spec
