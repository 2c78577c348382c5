#include "spec/spec.h"
namespace berth::spec { std::string placeholder() { return "x"; } }
