// Golden files shared by the corpus-style tests: compare output with a file
// checked into tests/, or rewrite that file when BERTH_UPDATE_GOLDEN=1.
#pragma once

#include <string>

namespace berth::test {

// True when BERTH_UPDATE_GOLDEN=1: tests rewrite their expected files.
bool updating_golden();

// Compares `actual` with the file at `path` (a missing file reads as ""),
// adding a gtest failure on mismatch. When updating, writes `actual` there
// instead, or removes the file when `actual` is empty.
void compare_or_update_golden(const std::string& path, const std::string& actual);

}  // namespace berth::test
