// Numbers for people, as docker prints them (its go-units package): sizes
// in decimal units, durations in words, and the progress bar of pulls,
// pushes, loads and saves.
#pragma once

#include <cstdint>
#include <string>

namespace berth {

// "1.23MB": decimal units (kB, MB, GB, ...) with `precision` significant
// digits: 4 as docker's HumanSize, 3 where docker uses 3 (`images` SIZE).
std::string human_size(double bytes, int precision = 4);

// "Less than a second", "5 seconds", "About a minute", "3 hours", "2 weeks", ...
std::string human_duration(double seconds);

// "[=========>        ]  1.2MB/3.4MB", 50 columns wide; just the size when
// the total is not known.
std::string progress_bar(uint64_t done, uint64_t total);

}  // namespace berth
