#include "runtime/logfile.h"

#include "base/time.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace berth::runtime {

static constexpr size_t kMaxLine = 16 * 1024;

std::string rfc3339nano_now() { return now_rfc3339_nano(); }

JsonLogWriter::JsonLogWriter(std::string path, int64_t max_size, int max_file)
    : path_(std::move(path)), max_size_(max_size), max_file_(max_file < 1 ? 1 : max_file) {
  fd_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  struct stat st {};
  if (fd_ && ::fstat(fd_.get(), &st) == 0) size_ = st.st_size;
}

void JsonLogWriter::write(const std::string& stream, const char* data, size_t n) {
  std::string& pending = stream == "stderr" ? pending_err_ : pending_out_;
  pending.append(data, n);
  size_t start = 0;
  for (;;) {
    size_t nl = pending.find('\n', start);
    size_t line_end = nl == std::string::npos ? pending.size() : nl + 1;
    if (line_end - start > kMaxLine) {
      // Longer than docker's 16 KiB buffer: written in pieces.
      emit(stream, pending.substr(start, kMaxLine));
      start += kMaxLine;
      continue;
    }
    if (nl == std::string::npos) break;
    emit(stream, pending.substr(start, line_end - start));
    start = line_end;
  }
  pending.erase(0, start);
}

void JsonLogWriter::flush(const std::string& stream) {
  std::string& pending = stream == "stderr" ? pending_err_ : pending_out_;
  if (!pending.empty()) emit(stream, pending);
  pending.clear();
}

void JsonLogWriter::emit(const std::string& stream, const std::string& text) {
  nlohmann::json j = {{"log", text}, {"stream", stream}, {"time", rfc3339nano_now()}};
  // Invalid UTF-8 from the container is replaced, not fatal.
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  if (max_size_ > 0 && size_ > 0 && size_ + static_cast<int64_t>(line.size()) > max_size_) rotate();
  if (!fd_) return;
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t w = ::write(fd_.get(), p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    left -= static_cast<size_t>(w);
    size_ += w;
  }
}

void JsonLogWriter::rotate() {
  if (max_file_ > 1) {
    for (int i = max_file_ - 1; i >= 1; --i) {
      std::string from = i == 1 ? path_ : path_ + "." + std::to_string(i - 1);
      ::rename(from.c_str(), (path_ + "." + std::to_string(i)).c_str());
    }
    fd_.reset(::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_TRUNC | O_CLOEXEC, 0640));
  } else if (fd_) {
    // One file: start it over.
    if (::ftruncate(fd_.get(), 0) != 0) return;
  }
  size_ = 0;
}

bool parse_log_line(const std::string& line, LogEntry& out) {
  auto j = nlohmann::json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return false;
  out.log = j.value("log", "");
  out.stream = j.value("stream", "stdout");
  out.time = j.value("time", "");
  return true;
}

std::vector<LogEntry> read_json_log(const std::string& path, int max_file, size_t* end_offset) {
  std::vector<LogEntry> out;
  if (end_offset) *end_offset = 0;
  for (int i = std::max(1, max_file) - 1; i >= 0; --i) {
    std::string p = i == 0 ? path : path + "." + std::to_string(i);
    std::string text;
    try {
      if (!read_file_if_exists(p, text)) continue;
    } catch (...) {
      continue;
    }
    size_t start = 0;
    while (start < text.size()) {
      size_t nl = text.find('\n', start);
      if (nl == std::string::npos) break;  // a line still being written
      LogEntry e;
      if (parse_log_line(text.substr(start, nl - start), e)) out.push_back(std::move(e));
      start = nl + 1;
    }
    if (i == 0 && end_offset) *end_offset = start;
  }
  return out;
}

}  // namespace berth::runtime
