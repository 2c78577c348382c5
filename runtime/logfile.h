// docker's json-file log format: one JSON object per line,
// {"log":"text\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"},
// rotated to <path>.1 ... <path>.<max_file-1> when max_size is reached.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/fs.h"

namespace berth::runtime {

struct LogEntry {
  std::string stream;  // "stdout" | "stderr"
  std::string log;     // the text, with its trailing newline (if it had one)
  std::string time;    // RFC 3339 with nanoseconds
};

class JsonLogWriter {
 public:
  JsonLogWriter(std::string path, int64_t max_size, int max_file);
  // Splits data into lines; a line is written once its newline arrives (or
  // when it reaches 16 KiB, as docker does). Write errors are swallowed:
  // a full disk must not stop the container.
  void write(const std::string& stream, const char* data, size_t n);
  // Writes what is buffered without a newline (at end of stream).
  void flush(const std::string& stream);

 private:
  void emit(const std::string& stream, const std::string& text);
  void rotate();

  std::string path_;
  int64_t max_size_;
  int max_file_;
  UniqueFd fd_;
  int64_t size_ = 0;
  std::string pending_out_, pending_err_;
};

// Go's time.RFC3339Nano: UTC, nanoseconds with trailing zeros removed.
std::string rfc3339nano_now();

// Every entry of the log and its rotated files, oldest first. end_offset,
// when given, receives where the last complete line of `path` ends, from
// the same read (for following the file without losing a line).
std::vector<LogEntry> read_json_log(const std::string& path, int max_file, size_t* end_offset = nullptr);
// Parses one line; false when it is not a log entry.
bool parse_log_line(const std::string& line, LogEntry& out);

}  // namespace berth::runtime
