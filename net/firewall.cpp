#include "net/firewall.h"

#include <dlfcn.h>
#include <fcntl.h>
#include <nftables/libnftables.h>
#include <sys/file.h>

#include <mutex>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "base/error.h"
#include "base/fs.h"
#include "base/log.h"
#include "net/netlink.h"

namespace berth::net {

namespace {

constexpr const char* kSharedTable = "berth";
// Host-wide (not per --root): every berth on the host shares table ip berth.
constexpr const char* kLockPath = "/run/berth-nftables.lock";

class HostLock {
 public:
  HostLock() : fd_(::open(kLockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) {
    if (!fd_) throw_errno(std::string("cannot open ") + kLockPath);
    while (::flock(fd_.get(), LOCK_EX) != 0)
      if (errno != EINTR) throw_errno(std::string("cannot lock ") + kLockPath);
  }

 private:
  UniqueFd fd_;
};

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

std::string shared_table_rules() {
  std::string t = std::string("ip ") + kSharedTable;
  // Isolation as docker's: a packet entering from one berth bridge and
  // leaving through another is dropped. (bridge, bridge) pairs are listed
  // in same_bridge so traffic that stays on one bridge (seen here when
  // br_netfilter is loaded) passes. Priority filter - 1 so isolation is
  // decided before any network's own accept rules.
  return "add table " + t + "\n" +
         "add set " + t + " bridges { type ifname; }\n" +
         "add set " + t + " same_bridge { type ifname . ifname; }\n" +
         "add chain " + t + " forward { type filter hook forward priority filter - 1; policy accept; }\n" +
         "add rule " + t +
         " forward iifname @bridges oifname @bridges iifname . oifname != @same_bridge drop comment "
         "\"berth network isolation\"\n";
}

std::string element_commands(const char* verb, const std::string& bridge) {
  std::string b = quoted(bridge);
  return std::string(verb) + " element ip " + kSharedTable + " bridges { " + b + " }\n" + verb + " element ip " +
         kSharedTable + " same_bridge { " + b + " . " + b + " }\n";
}

// libnftables, loaded (dlopen) by the first Nft: linking it made every
// berth command map it and its libraries (nftnl, mnl, xtables, jansson,
// gmp) at start-up, though only network set-up and teardown use it. The
// function types come from <nftables/libnftables.h>.
struct Libnftables {
  decltype(&::nft_ctx_new) ctx_new = nullptr;
  decltype(&::nft_ctx_free) ctx_free = nullptr;
  decltype(&::nft_ctx_buffer_output) buffer_output = nullptr;
  decltype(&::nft_ctx_buffer_error) buffer_error = nullptr;
  decltype(&::nft_ctx_output_set_flags) output_set_flags = nullptr;
  decltype(&::nft_run_cmd_from_buffer) run_cmd_from_buffer = nullptr;
  decltype(&::nft_ctx_get_output_buffer) get_output_buffer = nullptr;
  decltype(&::nft_ctx_get_error_buffer) get_error_buffer = nullptr;
};

constexpr const char* kLibnftables = "libnftables.so.1";

const Libnftables& libnftables() {
  static Libnftables lib;
  static std::once_flag once;
  std::call_once(once, [] {
    void* h = ::dlopen(kLibnftables, RTLD_NOW | RTLD_LOCAL);
    if (!h)
      throw Error(std::string("cannot load ") + kLibnftables + " (" + ::dlerror() + "): install Debian's libnftables1");
    auto resolve = [h](const char* name, auto& fn) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(::dlsym(h, name));
      if (!fn) throw Error(std::string(kLibnftables) + ": no symbol " + name);
    };
    Libnftables l;
    resolve("nft_ctx_new", l.ctx_new);
    resolve("nft_ctx_free", l.ctx_free);
    resolve("nft_ctx_buffer_output", l.buffer_output);
    resolve("nft_ctx_buffer_error", l.buffer_error);
    resolve("nft_ctx_output_set_flags", l.output_set_flags);
    resolve("nft_run_cmd_from_buffer", l.run_cmd_from_buffer);
    resolve("nft_ctx_get_output_buffer", l.get_output_buffer);
    resolve("nft_ctx_get_error_buffer", l.get_error_buffer);
    lib = l;
  });
  return lib;
}

}  // namespace

Nft::Nft() : ctx_(libnftables().ctx_new(NFT_CTX_DEFAULT)) {
  if (!ctx_) throw Error("cannot create an nftables context");
  libnftables().buffer_output(ctx_);
  libnftables().buffer_error(ctx_);
}

Nft::~Nft() { libnftables().ctx_free(ctx_); }

int Nft::execute(const std::string& commands, bool json_with_handles, std::string& out, std::string& err) {
  const Libnftables& nft = libnftables();
  nft.output_set_flags(ctx_, json_with_handles ? (NFT_CTX_OUTPUT_JSON | NFT_CTX_OUTPUT_HANDLE) : 0);
  int rc = nft.run_cmd_from_buffer(ctx_, commands.c_str());
  // Reading the buffers also resets them for the next command.
  out = nft.get_output_buffer(ctx_);
  err = nft.get_error_buffer(ctx_);
  return rc;
}

bool Nft::try_run(const std::string& commands, std::string* output, bool json_with_handles) {
  std::string out, err;
  if (execute(commands, json_with_handles, out, err) != 0) return false;
  if (output) *output = std::move(out);
  return true;
}

std::string Nft::run(const std::string& commands, bool json_with_handles) {
  std::string out, err;
  if (execute(commands, json_with_handles, out, err) != 0) {
    while (!err.empty() && err.back() == '\n') err.pop_back();
    throw Error("nftables: " + (err.empty() ? std::string("command failed") : err));
  }
  return out;
}

std::string network_table_name(const std::string& network_id) { return "berth-" + network_id.substr(0, 12); }

std::string network_table_rules(const FirewallNetwork& net) {
  std::string t = "ip " + network_table_name(net.id);
  std::string br = quoted(net.bridge);
  std::string subnet = net.subnet.to_string();
  std::string r;
  r += "add table " + t + "\n";
  r += "add chain " + t + " forward { type filter hook forward priority filter; policy accept; }\n";
  r += "add chain " + t + " postrouting { type nat hook postrouting priority srcnat; policy accept; }\n";
  r += "add chain " + t + " prerouting { type nat hook prerouting priority dstnat; policy accept; }\n";
  r += "add chain " + t + " output { type nat hook output priority -100; policy accept; }\n";
  r += "add chain " + t + " ports\n";
  // Published ports: only traffic addressed to the host itself is DNATed.
  r += "add rule " + t + " prerouting fib daddr type local jump ports\n";
  r += "add rule " + t + " output fib daddr type local jump ports\n";
  if (net.internal) {
    // An internal network reaches nothing but itself, and nothing reaches it.
    r += "add rule " + t + " forward iifname " + br + " oifname != " + br + " drop\n";
    r += "add rule " + t + " forward oifname " + br + " iifname != " + br + " drop\n";
  } else {
    r += "add rule " + t + " forward oifname " + br + " ct state established,related accept\n";
    r += "add rule " + t + " forward oifname " + br + " ct status dnat accept\n";
    r += "add rule " + t + " forward iifname " + br + " accept\n";
    // New connections from elsewhere straight to container addresses are
    // refused, like docker's default: only published ports come in.
    r += "add rule " + t + " forward oifname " + br + " drop\n";
    r += "add rule " + t + " postrouting ip saddr " + subnet + " oifname != " + br + " masquerade\n";
  }
  // Host-loopback clients of published ports (route_localnet lets the
  // 127.0.0.1-sourced packet out the bridge; masquerade gives the container
  // an address it can answer), and hairpin: a container reaching its own
  // network's published port through a host address.
  r += "add rule " + t + " postrouting oifname " + br + " ip saddr 127.0.0.0/8 masquerade\n";
  r += "add rule " + t + " postrouting oifname " + br + " ip saddr " + subnet + " ct status dnat masquerade\n";
  return r;
}

std::string port_rules(const FirewallNetwork& net, const std::string& endpoint_id, Ipv4 container,
                       const std::vector<BoundPort>& ports) {
  std::string t = "ip " + network_table_name(net.id);
  std::string r;
  for (auto& p : ports) {
    r += "add rule " + t + " ports ";
    if (!p.host_ip.empty() && p.host_ip != "0.0.0.0") r += "ip daddr " + p.host_ip + " ";
    r += p.protocol + " dport " + std::to_string(p.host_port) + " dnat to " + container.to_string() + ":" +
         std::to_string(p.container_port) + " comment " + quoted("endpoint:" + endpoint_id) + "\n";
  }
  return r;
}

void Firewall::add_network(const FirewallNetwork& net) {
  HostLock lock;
  std::string batch;
  if (!nft_.try_run(std::string("list table ip ") + kSharedTable)) batch += shared_table_rules();
  // add-then-delete makes the delete harmless when a previous attempt left
  // a half-made table behind.
  batch += "add table ip " + network_table_name(net.id) + "\n";
  batch += "delete table ip " + network_table_name(net.id) + "\n";
  batch += network_table_rules(net);
  batch += element_commands("add", net.bridge);
  nft_.run(batch);
  if (!net.internal && read_sysctl("net.ipv4.ip_forward") != "1") {
    write_sysctl("net.ipv4.ip_forward", "1");
    spdlog::info("enabled net.ipv4.ip_forward for bridge networks");
  }
}

void Firewall::remove_network(const FirewallNetwork& net) {
  HostLock lock;
  std::string table = network_table_name(net.id);
  std::string batch = "add table ip " + table + "\ndelete table ip " + table + "\n";
  if (nft_.try_run(std::string("list table ip ") + kSharedTable)) batch += element_commands("add", net.bridge) +
                                                                            element_commands("delete", net.bridge);
  nft_.run(batch);
  // The shared table goes when the last berth bridge on the host is gone.
  std::string out;
  if (nft_.try_run(std::string("list set ip ") + kSharedTable + " bridges", &out, true)) {
    auto j = nlohmann::json::parse(out, nullptr, false);
    bool empty = true;
    if (!j.is_discarded())
      for (auto& item : j.value("nftables", nlohmann::json::array()))
        if (item.contains("set") && item["set"].contains("elem") && !item["set"]["elem"].empty()) empty = false;
    if (empty) nft_.run(std::string("delete table ip ") + kSharedTable);
  }
}

bool Firewall::network_installed(const FirewallNetwork& net) {
  HostLock lock;
  std::string out;
  return nft_.try_run("list table ip " + network_table_name(net.id)) &&
         nft_.try_run(std::string("list set ip ") + kSharedTable + " bridges", &out) &&
         out.find("\"" + net.bridge + "\"") != std::string::npos;
}

void Firewall::add_ports(const FirewallNetwork& net, const std::string& endpoint_id, Ipv4 container,
                         const std::vector<BoundPort>& ports) {
  if (ports.empty()) return;
  HostLock lock;
  nft_.run(port_rules(net, endpoint_id, container, ports));
}

void Firewall::remove_ports(const FirewallNetwork& net, const std::string& endpoint_id) {
  HostLock lock;
  std::string table = network_table_name(net.id);
  std::string out;
  if (!nft_.try_run("list chain ip " + table + " ports", &out, true)) return;  // network already gone
  auto j = nlohmann::json::parse(out, nullptr, false);
  if (j.is_discarded()) throw Error("nftables: cannot parse the JSON listing of " + table);
  std::string batch;
  for (auto& item : j.value("nftables", nlohmann::json::array())) {
    if (!item.contains("rule")) continue;
    auto& rule = item["rule"];
    if (rule.value("comment", "") == "endpoint:" + endpoint_id)
      batch += "delete rule ip " + table + " ports handle " + std::to_string(rule.value("handle", 0)) + "\n";
  }
  if (!batch.empty()) nft_.run(batch);
}

}  // namespace berth::net
