#include "cli/table.h"

#include <algorithm>
#include <iostream>

namespace berth::cli {

std::size_t display_columns(const std::string& text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char ch) { return (static_cast<unsigned char>(ch) & 0xC0) != 0x80; }));
}

std::string format_table(const std::vector<std::vector<std::string>>& rows, std::size_t min_width, std::size_t padding) {
  std::vector<std::size_t> width;
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(min_width);
      width[i] = std::max(width[i], display_columns(row[i]) + padding);
    }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - display_columns(row[i]), ' ');
    }
    line.erase(line.find_last_not_of(' ') + 1);
    out += line + "\n";
  }
  return out;
}

void print_table(const std::vector<std::vector<std::string>>& rows, std::size_t min_width, std::size_t padding) {
  std::cout << format_table(rows, min_width, padding);
}

}  // namespace berth::cli
