// The plan as text: the user's `up --dry-run` and the golden tests' format.
#include <sstream>

#include "reconciler/plan.h"

namespace berth::reconciler {

std::string to_string(OpKind kind) {
  switch (kind) {
    case OpKind::CreateNetwork: return "CreateNetwork";
    case OpKind::RemoveNetwork: return "RemoveNetwork";
    case OpKind::CreateVolume: return "CreateVolume";
    case OpKind::RemoveVolume: return "RemoveVolume";
    case OpKind::CreateContainer: return "CreateContainer";
    case OpKind::StartContainer: return "StartContainer";
    case OpKind::StopContainer: return "StopContainer";
    case OpKind::RemoveContainer: return "RemoveContainer";
    case OpKind::RenameContainer: return "RenameContainer";
  }
  return "?";
}

std::string render(const Operation& op) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < op.after.size(); ++i)
    out << (i ? "," : "") << op.after[i].op << (op.after[i].required ? "" : "?");
  out << "] -> #" << op.id << " " << op.resource << ", " << to_string(op.kind) << " " << op.name;
  if (op.kind == OpKind::RenameContainer) out << " to " << op.new_name;
  out << ", " << op.cause;
  if (!op.waits.empty()) {
    out << " (waits for ";
    for (std::size_t i = 0; i < op.waits.size(); ++i)
      out << (i ? ", " : "") << op.waits[i].service << ":" << op.waits[i].condition << (op.waits[i].required ? "" : "?");
    out << ")";
  }
  return out.str();
}

std::string render(const Plan& plan) {
  std::string out;
  for (const auto& op : plan.operations) out += render(op) + "\n";
  for (const auto& w : plan.warnings) out += "warning: " + w + "\n";
  return out;
}

std::ostream& operator<<(std::ostream& os, const Operation& op) { return os << render(op); }
std::ostream& operator<<(std::ostream& os, const Plan& plan) { return os << render(plan); }

}  // namespace berth::reconciler
