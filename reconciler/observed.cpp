// Observed state: conversions, label accessors and the JSON form.
#include <charconv>

#include "base/error.h"
#include "reconciler/state.h"

namespace berth::reconciler {

namespace {

const std::pair<ContainerState, const char*> kStates[] = {
    {ContainerState::created, "created"}, {ContainerState::running, "running"},
    {ContainerState::paused, "paused"},   {ContainerState::restarting, "restarting"},
    {ContainerState::exited, "exited"},   {ContainerState::dead, "dead"},
};
const std::pair<Health, const char*> kHealths[] = {
    {Health::none, ""}, {Health::starting, "starting"}, {Health::healthy, "healthy"}, {Health::unhealthy, "unhealthy"}};

StringMap labels_from(const nlohmann::json& j) {
  StringMap out;
  if (j.contains("labels"))
    for (const auto& [k, v] : j.at("labels").items()) out[k] = v.get<std::string>();
  return out;
}

}  // namespace

std::string to_string(ContainerState state) {
  for (const auto& [s, word] : kStates)
    if (s == state) return word;
  return "unknown";
}

std::string to_string(Health health) {
  for (const auto& [h, word] : kHealths)
    if (h == health) return word;
  return "unknown";
}

ContainerState container_state_from_string(const std::string& word) {
  for (const auto& [s, w] : kStates)
    if (word == w) return s;
  throw Error("unknown container state \"" + word + "\"");
}

Health health_from_string(const std::string& word) {
  if (word == "none") return Health::none;
  for (const auto& [h, w] : kHealths)
    if (word == w) return h;
  throw Error("unknown health status \"" + word + "\"");
}

std::string ObservedContainer::label(const std::string& key) const {
  auto it = labels.find(key);
  return it == labels.end() ? std::string() : it->second;
}

int ObservedContainer::number() const {
  std::string text = label(label::container_number);
  int n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  return ec == std::errc() && end == text.data() + text.size() ? n : 0;
}

bool ObservedContainer::is_up() const {
  return state == ContainerState::running || state == ContainerState::paused || state == ContainerState::restarting;
}

nlohmann::json to_json(const ObservedState& o) {
  nlohmann::json j = {{"containers", nlohmann::json::array()},
                      {"networks", nlohmann::json::array()},
                      {"volumes", nlohmann::json::array()}};
  for (const auto& c : o.containers) {
    nlohmann::json cj = {{"id", c.id}, {"name", c.name}, {"state", to_string(c.state)}, {"labels", c.labels}};
    if (c.exit_code) cj["exit_code"] = c.exit_code;
    if (c.health != Health::none) cj["health"] = to_string(c.health);
    if (!c.image_id.empty()) cj["image_id"] = c.image_id;
    j["containers"].push_back(std::move(cj));
  }
  for (const auto& n : o.networks) j["networks"].push_back({{"id", n.id}, {"name", n.name}, {"labels", n.labels}});
  for (const auto& v : o.volumes) j["volumes"].push_back({{"name", v.name}, {"labels", v.labels}});
  return j;
}

ObservedState observed_from_json(const nlohmann::json& j) {
  ObservedState o;
  try {
    if (j.contains("containers"))
      for (const auto& cj : j.at("containers")) {
        ObservedContainer c;
        c.id = cj.value("id", "");
        c.name = cj.value("name", "");
        c.labels = labels_from(cj);
        c.state = container_state_from_string(cj.value("state", "running"));
        c.exit_code = cj.value("exit_code", 0);
        c.health = health_from_string(cj.value("health", "none"));
        c.image_id = cj.value("image_id", "");
        o.containers.push_back(std::move(c));
      }
    if (j.contains("networks"))
      for (const auto& nj : j.at("networks")) o.networks.push_back({nj.value("id", ""), nj.value("name", ""), labels_from(nj)});
    if (j.contains("volumes"))
      for (const auto& vj : j.at("volumes")) o.volumes.push_back({vj.value("name", ""), labels_from(vj)});
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("observed state: ") + e.what());
  }
  return o;
}

std::ostream& operator<<(std::ostream& os, const ObservedState& o) { return os << to_json(o).dump(); }

std::ostream& operator<<(std::ostream& os, const ObservedContainer& c) {
  ObservedState one;
  one.containers.push_back(c);
  return os << to_json(one)["containers"][0].dump();
}

}  // namespace berth::reconciler
