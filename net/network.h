// Bridge networks as a whole: the operations `berth network ...` and the
// runtime use. Each keeps the store (<root>/network) and the kernel (bridge,
// veths, nft tables) in step: the record is written first, then the kernel
// is changed, and any failure undoes both, so a failed command changes
// nothing and a crash leaves a record that `rm`/`disconnect` can finish.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "net/store.h"

namespace berth::net {

class NameTable;

inline constexpr const char* kDefaultNetworkName = "bridge";
inline constexpr const char* kDefaultBridgeName = "berth0";

struct CreateNetworkOptions {
  std::string name;
  std::string driver = "bridge";
  std::optional<std::string> subnet;   // CIDR; from the default pool when absent
  std::optional<std::string> gateway;  // the subnet's first address when absent
  bool internal = false;
  std::map<std::string, std::string> labels;
  int mtu = 1500;
};

// What joins a network: a network namespace (a path such as
// /proc/<pid>/ns/net or /run/netns/NAME, or a bare pid) and the names it
// answers to in the embedded DNS.
struct ConnectOptions {
  std::string netns;
  std::string name;      // container name
  std::string hostname;  // also resolvable, when set
  std::vector<std::string> aliases;
  std::optional<std::string> ipv4_address;  // --ip / ipv4_address
  std::vector<std::string> publish;         // -p specs
  std::vector<std::string> dns;             // upstreams for the embedded DNS (EndpointRecord::dns)
};

class NetworkManager {
 public:
  explicit NetworkManager(const std::string& root) : store_(root) {}

  NetworkRecord create(const CreateNetworkOptions& options);
  // The default `bridge` network (bridge berth0, 172.17.0.0/16 when free),
  // created on first use.
  NetworkRecord ensure_default_network();
  // Refuses while endpoints are attached, as docker does.
  void remove(const std::string& name_or_id);
  // Removes every network without endpoints (labels: "key" or "key=value"
  // filters, all must match); returns the removed names.
  std::vector<std::string> prune(const std::vector<std::string>& label_filters = {});
  std::vector<NetworkRecord> list() const { return store_.list(); }
  NetworkRecord inspect(const std::string& name_or_id) const { return store_.get(name_or_id); }

  EndpointRecord connect(const std::string& network, const ConnectOptions& options);
  // By endpoint id (or unique prefix) or name. Idempotent on kernel state.
  void disconnect(const std::string& network, const std::string& endpoint);

  // Brings the kernel back in line with the store, after a host reboot, a
  // crash, or someone deleting berth's links or tables: recreates missing
  // bridges and nft tables (with every live endpoint's published ports),
  // re-attaches surviving veths, and releases the endpoints whose veth is
  // gone (their netns died), so their addresses and ports are free again.
  struct ReconcileReport {
    std::vector<std::string> repaired_networks;   // names
    std::vector<std::string> released_endpoints;  // endpoint ids
  };
  ReconcileReport reconcile();

  const NetworkStore& store() const { return store_; }

 private:
  NetworkRecord create_locked(const CreateNetworkOptions& options, bool default_network);
  void restore_default_route(const std::string& netns_path);
  NetworkStore store_;
};

// Replaces everything in `names` with the endpoints' names of `networks`
// (what a supervisor calls whenever the store changes: no stale answers).
void sync_names(NameTable& names, const std::vector<NetworkRecord>& networks);

// Registers every endpoint's names (container name, hostname, aliases) of
// `networks` in `names` — what the embedded DNS answers.
void register_names(NameTable& names, const std::vector<NetworkRecord>& networks);

// Docker's network-name rule: [a-zA-Z0-9][a-zA-Z0-9_.-]*.
bool valid_network_name(const std::string& name);

}  // namespace berth::net
