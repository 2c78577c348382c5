#include "runtime/caps.h"

#include <sys/capability.h>
#include <sys/prctl.h>

#include <algorithm>
#include <cctype>

#include "base/error.h"

namespace berth::runtime {

static int last_cap() {
  // cap_max_bits() asks the running kernel, not the headers libcap was built with.
  return static_cast<int>(cap_max_bits()) - 1;
}

uint64_t all_capabilities() {
  int last = last_cap();
  return last >= 63 ? ~0ULL : ((1ULL << (last + 1)) - 1);
}

int capability_from_name(const std::string& name) {
  std::string lower;
  for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (lower.rfind("cap_", 0) != 0) lower = "cap_" + lower;
  cap_value_t v;
  if (cap_from_name(lower.c_str(), &v) != 0 || v < 0 || v > last_cap())
    throw Error("unknown capability: \"" + name + "\"", 0, 125);
  return v;
}

std::string capability_name(int cap) {
  char* n = cap_to_name(cap);
  std::string out = n ? n : std::to_string(cap);
  if (n) cap_free(n);
  for (auto& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

static bool is_all(const std::string& s) {
  std::string u;
  for (char c : s) u += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return u == "ALL" || u == "CAP_ALL";
}

// What this process may hand on: a container cannot get a capability its
// runtime lacks (e.g. CAP_SYS_RESOURCE when berth runs in a restricted
// container itself).
static uint64_t permitted_here() {
  cap_t c = cap_get_proc();
  if (!c) return all_capabilities();
  uint64_t out = 0;
  for (int i = 0; i <= last_cap(); ++i) {
    cap_flag_value_t v = CAP_CLEAR;
    if (cap_get_flag(c, i, CAP_PERMITTED, &v) == 0 && v == CAP_SET) out |= 1ULL << i;
  }
  cap_free(c);
  return out;
}

uint64_t resolve_capabilities(const SecuritySpec& sec) {
  // Validate every name first, so a typo is reported even when ALL makes it moot.
  for (auto* list : {&sec.cap_add, &sec.cap_drop})
    for (auto& n : *list)
      if (!is_all(n)) capability_from_name(n);
  const uint64_t available = permitted_here();
  if (sec.privileged) return all_capabilities() & available;
  bool add_all = std::any_of(sec.cap_add.begin(), sec.cap_add.end(), is_all);
  bool drop_all = std::any_of(sec.cap_drop.begin(), sec.cap_drop.end(), is_all);
  uint64_t caps = kDockerDefaultCaps & all_capabilities() & available;
  if (add_all) caps = all_capabilities() & available;
  else if (drop_all) caps = 0;
  if (!add_all)
    for (auto& n : sec.cap_add) {
      int cap = capability_from_name(n);
      if (!(available & (1ULL << cap)))
        throw Error("capability " + capability_name(cap) + " is not available to berth on this host", 0, 125);
      caps |= 1ULL << cap;
    }
  if (!drop_all)
    for (auto& n : sec.cap_drop)
      if (!is_all(n)) caps &= ~(1ULL << capability_from_name(n));
  return caps;
}

void limit_bounding_set(uint64_t caps) {
  for (int c = 0; c <= last_cap(); ++c)
    if (!(caps & (1ULL << c)) && ::prctl(PR_CAPBSET_DROP, c, 0, 0, 0) != 0)
      throw_errno("cannot drop " + capability_name(c) + " from the bounding set");
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) throw_errno("prctl(PR_SET_KEEPCAPS)");
}

void set_process_capabilities(uint64_t caps, bool root_user) {
  cap_t c = cap_init();
  if (!c) throw_errno("cap_init");
  std::vector<cap_value_t> list;
  if (root_user)
    for (int i = 0; i <= last_cap(); ++i)
      if (caps & (1ULL << i)) list.push_back(i);
  int rc = 0;
  if (!list.empty()) {
    rc |= cap_set_flag(c, CAP_EFFECTIVE, static_cast<int>(list.size()), list.data(), CAP_SET);
    rc |= cap_set_flag(c, CAP_PERMITTED, static_cast<int>(list.size()), list.data(), CAP_SET);
  }
  if (rc == 0) rc = cap_set_proc(c);
  int err = errno;
  cap_free(c);
  if (rc != 0) throw_errno("cannot set the process capabilities", err);
  ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  ::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
}

}  // namespace berth::runtime
