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

double now_epoch_seconds();
// Seconds since the epoch of an RFC 3339 UTC time as berth writes them
// ("2026-11-27T23:27:52.80063087Z"); 0 for "" or a malformed one.
double rfc3339_seconds(const std::string& t);
// docker's --since/--until: an RFC 3339 time ("2026-01-02T15:04:05Z", with
// a fraction or a zone offset; a date alone too), a Unix timestamp
// ("1700000000.5"), or a duration before now ("10m", "1h30m", "90s").
// Returns seconds since the epoch (0 for ""); UsageError naming flag.
double parse_docker_time(const std::string& flag, const std::string& value);

}  // namespace berth
