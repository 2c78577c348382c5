// A fake Driver for the reconciler tests: it keeps a world (an
// ObservedState) that its calls change, records every call, can fail chosen
// calls, and can hold completions back to be run one at a time (to test
// ordering and bounded parallelism the way an event loop would see it).
#pragma once

#include <algorithm>
#include <deque>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "reconciler/reconciler.h"
#include "spec/spec.h"

namespace berth::reconciler::fake {

// A compose file's text as project "app" in /tmp.
inline spec::Project load(const std::string& yaml) {
  spec::LoadOptions o;
  o.project_name = "app";
  o.working_directory = "/tmp";
  return spec::load_project_from_string(yaml, o, "/tmp/compose.yaml");
}

class FakeDriver : public Driver {
 public:
  ObservedState world;
  std::vector<std::string> calls;  // "create_container app-web-1", in call order
  std::set<std::string> fail;      // calls (as recorded) that complete with an error
  bool defer = false;              // hold completions until complete_next()
  std::size_t max_pending = 0;     // the most completions outstanding at once

  // Runs the oldest held completion (the newest when `newest_first`, as an
  // event loop may complete calls out of order); false when none is held.
  bool complete_next(bool newest_first = false) {
    if (pending_.empty()) return false;
    std::function<void()> next;
    if (newest_first) {
      next = std::move(pending_.back());
      pending_.pop_back();
    } else {
      next = std::move(pending_.front());
      pending_.pop_front();
    }
    next();
    return true;
  }
  std::size_t pending() const { return pending_.size(); }

  void create_network(const NetworkSpec& n, Completion done) override {
    finish("create_network " + n.name, std::move(done), [this, n] {
      world.networks.push_back({"net-" + n.name, n.name, n.labels});
    });
  }
  void remove_network(const std::string& name, Completion done) override {
    finish("remove_network " + name, std::move(done), [this, name] {
      std::erase_if(world.networks, [&](const ObservedNetwork& n) { return n.name == name; });
    });
  }
  void create_volume(const VolumeSpec& v, Completion done) override {
    finish("create_volume " + v.name, std::move(done), [this, v] { world.volumes.push_back({v.name, v.labels}); });
  }
  void remove_volume(const std::string& name, Completion done) override {
    finish("remove_volume " + name, std::move(done), [this, name] {
      std::erase_if(world.volumes, [&](const ObservedVolume& v) { return v.name == name; });
    });
  }
  void create_container(const ContainerSpec& c, Completion done) override {
    finish("create_container " + c.name, std::move(done), [this, c] {
      ObservedContainer o;
      o.id = "id-" + c.name + "-" + std::to_string(++created_);
      o.name = c.name;
      o.labels = c.labels;
      o.state = ContainerState::created;
      o.image_id = c.image_id;
      world.containers.push_back(o);
    });
  }
  void start_container(const std::string& ref, Completion done) override {
    finish("start_container " + name_of(ref), std::move(done),
           [this, ref] { find(ref)->state = ContainerState::running; });
  }
  void stop_container(const std::string& ref, std::chrono::seconds, Completion done) override {
    finish("stop_container " + name_of(ref), std::move(done), [this, ref] { find(ref)->state = ContainerState::exited; });
  }
  void remove_container(const std::string& ref, Completion done) override {
    finish("remove_container " + name_of(ref), std::move(done), [this, ref] {
      std::erase_if(world.containers, [&](const ObservedContainer& c) { return c.id == ref || c.name == ref; });
    });
  }
  void rename_container(const std::string& ref, const std::string& new_name, Completion done) override {
    finish("rename_container " + name_of(ref) + " " + new_name, std::move(done),
           [this, ref, new_name] { find(ref)->name = new_name; });
  }
  void wait_condition(const WaitFor& w, Completion done) override {
    finish("wait_condition " + w.service + " " + w.condition, std::move(done), [] {});
  }

 private:
  std::string name_of(const std::string& ref) {
    ObservedContainer* c = find(ref);
    return c ? c->name : ref;
  }
  ObservedContainer* find(const std::string& ref) {
    for (auto& c : world.containers)
      if (c.id == ref) return &c;
    for (auto& c : world.containers)
      if (c.name == ref) return &c;
    static ObservedContainer missing;  // the tests then see a wrong world, not a crash
    return &missing;
  }
  void finish(std::string call, Completion done, std::function<void()> effect) {
    calls.push_back(call);
    auto run = [this, call, done = std::move(done), effect = std::move(effect)] {
      if (fail.count(call)) return done(Error(call + " failed (fake)"));
      effect();
      done(std::nullopt);
    };
    if (!defer) return run();
    pending_.push_back(std::move(run));
    max_pending = std::max(max_pending, pending_.size());
  }

  std::deque<std::function<void()>> pending_;
  int created_ = 0;
};

}  // namespace berth::reconciler::fake
