#include "net/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace berth::net {

using nlohmann::json;

std::string random_hex_id(size_t hex_digits) {
  std::string bytes((hex_digits + 1) / 2, '\0');
  size_t got = 0;
  while (got < bytes.size()) {
    ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("getrandom");
    }
    got += static_cast<size_t>(n);
  }
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  out.resize(hex_digits);
  return out;
}

static json endpoint_to_json(const EndpointRecord& e) {
  json ports = json::array();
  for (auto& p : e.ports)
    ports.push_back({{"HostIp", p.host_ip}, {"HostPort", p.host_port}, {"ContainerPort", p.container_port},
                     {"Protocol", p.protocol}});
  return {{"Id", e.id},           {"Name", e.name},         {"Hostname", e.hostname},
          {"Aliases", e.aliases}, {"IPv4Address", e.address.to_string()},
          {"MacAddress", e.mac},  {"IfName", e.ifname},     {"HostVeth", e.host_veth},
          {"Netns", e.netns},     {"Ports", ports},         {"Dns", e.dns}};
}

static EndpointRecord endpoint_from_json(const json& j) {
  EndpointRecord e;
  e.id = j.at("Id").get<std::string>();
  e.name = j.value("Name", "");
  e.hostname = j.value("Hostname", "");
  e.aliases = j.value("Aliases", std::vector<std::string>{});
  e.address = Ipv4::parse(j.at("IPv4Address").get<std::string>());
  e.mac = j.value("MacAddress", "");
  e.ifname = j.value("IfName", "");
  e.host_veth = j.value("HostVeth", "");
  e.netns = j.value("Netns", "");
  e.dns = j.value("Dns", std::vector<std::string>{});
  for (auto& p : j.value("Ports", json::array()))
    e.ports.push_back({p.value("HostIp", ""), p.at("HostPort").get<uint16_t>(),
                       p.at("ContainerPort").get<uint16_t>(), p.value("Protocol", "tcp")});
  return e;
}

std::string to_json_text(const NetworkRecord& r) {
  json endpoints = json::object();
  for (auto& [id, e] : r.endpoints) endpoints[id] = endpoint_to_json(e);
  json j = {{"Id", r.id},
            {"Name", r.name},
            {"Driver", r.driver},
            {"Created", r.created},
            {"Internal", r.internal},
            {"Labels", r.labels},
            {"Subnet", r.subnet.to_string()},
            {"Gateway", r.gateway.to_string()},
            {"Bridge", r.bridge},
            {"Mtu", r.mtu},
            {"LastAllocated", r.last_allocated ? r.last_allocated->to_string() : ""},
            {"Endpoints", endpoints}};
  return j.dump(2) + "\n";
}

NetworkRecord network_from_json_text(const std::string& text, const std::string& origin) {
  try {
    json j = json::parse(text);
    NetworkRecord r;
    r.id = j.at("Id").get<std::string>();
    r.name = j.at("Name").get<std::string>();
    r.driver = j.value("Driver", "bridge");
    r.created = j.value("Created", "");
    r.internal = j.value("Internal", false);
    r.labels = j.value("Labels", std::map<std::string, std::string>{});
    r.subnet = Subnet::parse(j.at("Subnet").get<std::string>());
    r.gateway = Ipv4::parse(j.at("Gateway").get<std::string>());
    r.bridge = j.at("Bridge").get<std::string>();
    r.mtu = j.value("Mtu", 1500);
    if (auto last = j.value("LastAllocated", ""); !last.empty()) r.last_allocated = Ipv4::parse(last);
    // Keep the object alive: items() of a temporary would dangle.
    json endpoints = j.value("Endpoints", json::object());
    for (auto& [id, e] : endpoints.items()) r.endpoints[id] = endpoint_from_json(e);
    return r;
  } catch (const json::exception& e) {
    throw Error("corrupt network record " + origin + ": " + e.what());
  }
}

NetworkStore::NetworkStore(const std::string& root)
    : dir_(path_join(root, "network")), networks_dir_(path_join(dir_, "networks")) {}

NetworkStore::Lock NetworkStore::lock() const {
  make_dirs(networks_dir_, 0700);
  std::string path = path_join(dir_, "lock");
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) throw_errno("cannot open " + path);
  while (::flock(fd.get(), LOCK_EX) != 0)
    if (errno != EINTR) throw_errno("cannot lock " + path);
  return Lock(std::move(fd));
}

std::vector<NetworkRecord> NetworkStore::list() const {
  std::vector<NetworkRecord> out;
  DIR* dir = ::opendir(networks_dir_.c_str());
  if (!dir) {
    if (errno == ENOENT) return out;
    throw_errno("cannot read " + networks_dir_);
  }
  std::vector<std::string> names;
  while (auto* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    // Only finished records: write_file_atomic's temporaries end in .tmp.<pid>.
    if (name.size() > 5 && name.ends_with(".json")) names.push_back(name);
  }
  ::closedir(dir);
  std::sort(names.begin(), names.end());
  for (auto& name : names) {
    std::string path = path_join(networks_dir_, name);
    std::string text;
    if (!read_file_if_exists(path, text)) continue;  // removed meanwhile by another process
    out.push_back(network_from_json_text(text, path));
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.name < b.name; });
  return out;
}

std::optional<NetworkRecord> NetworkStore::find(std::string_view key) const {
  if (key.empty()) return std::nullopt;
  auto all = list();
  for (auto& r : all)
    if (r.name == key || r.id == key) return r;
  std::optional<NetworkRecord> match;
  for (auto& r : all)
    if (r.id.starts_with(key)) {
      if (match) throw Error("network \"" + std::string(key) + "\" is ambiguous: more than one network id starts with it");
      match = r;
    }
  return match;
}

NetworkRecord NetworkStore::get(std::string_view key) const {
  auto r = find(key);
  if (!r) throw Error("network " + std::string(key) + " not found");
  return *r;
}

void NetworkStore::save(const NetworkRecord& record) const {
  make_dirs(networks_dir_, 0700);
  write_file_atomic(path_join(networks_dir_, record.id + ".json"), to_json_text(record), 0600);
}

void NetworkStore::remove(const std::string& id) const {
  std::string path = path_join(networks_dir_, id + ".json");
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw_errno("cannot remove " + path);
}

}  // namespace berth::net
