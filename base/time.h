// Timestamps as docker writes them: RFC 3339 in UTC with nanoseconds, the
// fraction trimmed of trailing zeros the way Go's time.RFC3339Nano is
// ("2026-11-27T23:27:52.80063087Z"), so berth's and docker's strings for the
// same instant compare equal.
#pragma once

#include <ctime>
#include <string>

namespace berth {

std::string format_rfc3339_nano(const struct timespec& ts);
std::string now_rfc3339_nano();

}  // namespace berth
