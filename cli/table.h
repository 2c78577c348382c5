// Tables as docker's CLI prints them (its tabwriter): each column as wide
// as its widest cell plus `padding`, and at least `min_width`; widths count
// UTF-8 code points (a cut command's "…" is one column); no trailing spaces.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace berth::cli {

std::size_t display_columns(const std::string& text);

std::string format_table(const std::vector<std::vector<std::string>>& rows, std::size_t min_width = 0,
                         std::size_t padding = 3);

// format_table to stdout.
void print_table(const std::vector<std::vector<std::string>>& rows, std::size_t min_width = 0, std::size_t padding = 3);

}  // namespace berth::cli
