#include "cli/csv.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>

#include "experiments/error.h"
#include "storage/paths.h"

namespace htga::cli {

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\r\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) {
    if (c == '"') q += '"';
    q += c;
  }
  return q + "\"";
}

std::string csv_number(double v) {
  if (!std::isfinite(v)) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string csv_line(const std::vector<std::string>& fields) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i) line += ',';
    line += csv_field(fields[i]);
  }
  return line + '\n';
}

CsvWriter::CsvWriter(std::function<void(const std::string&)> sink, size_t chunk_bytes)
    : sink_(std::move(sink)), chunk_bytes_(chunk_bytes) {
  buf_.reserve(chunk_bytes_ + 4096);
}

void CsvWriter::separator() {
  if (row_started_) buf_ += ',';
  row_started_ = true;
}

CsvWriter& CsvWriter::field(const std::string& s) {
  separator();
  if (s.find_first_of(",\"\r\n") == std::string::npos)
    buf_ += s;
  else
    buf_ += csv_field(s);
  return *this;
}

CsvWriter& CsvWriter::number(double v) {
  separator();
  if (std::isfinite(v)) fmt::format_to(std::back_inserter(buf_), "{:.9g}", v);  // printf's %.9g, faster
  return *this;
}

CsvWriter& CsvWriter::integer(int64_t v) {
  separator();
  fmt::format_to(std::back_inserter(buf_), "{}", v);
  return *this;
}

void CsvWriter::end_row() {
  buf_ += '\n';
  row_started_ = false;
  ++rows_;
  if (buf_.size() >= chunk_bytes_) flush();
}

void CsvWriter::row(const std::vector<std::string>& fields) {
  for (const auto& f : fields) field(f);
  end_row();
}

void CsvWriter::flush() {
  if (!buf_.empty()) sink_(buf_);
  buf_.clear();
}

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // Through a symlink to the file it names: the link stays, its target is replaced.
  path_ = storage::resolve_output(path_);
  const auto status = fs::status(path_, ec);
  if (fs::exists(status) && !fs::is_regular_file(status))
    throw InputError(path_ + ": not a regular file (a device, a pipe, a folder); give a file path, or - for stdout");
  fs::path target(path_);
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), ec);
    if (ec) throw InputError(path_ + ": cannot create folder: " + ec.message());
  }
  tmp_ = path_ + ".tmp-" + std::to_string(::getpid());
  file_ = std::fopen(tmp_.c_str(), "wb");
  if (!file_) throw InputError(path_ + ": cannot write: " + std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (file_) {
    std::fclose(file_);
    std::remove(tmp_.c_str());
  }
}

void AtomicFile::write(const std::string& text) {
  if (std::fwrite(text.data(), 1, text.size(), file_) != text.size())
    throw InputError(path_ + ": cannot write: " + std::strerror(errno));
}

void AtomicFile::commit() {
  const bool flushed = std::fflush(file_) == 0;
  const int err = errno;
  const bool closed = std::fclose(file_) == 0;
  file_ = nullptr;
  if (!flushed || !closed) {
    std::remove(tmp_.c_str());
    throw InputError(path_ + ": cannot write: " + std::strerror(err));
  }
  std::error_code ec;
  std::filesystem::rename(tmp_, path_, ec);
  if (ec) {
    std::remove(tmp_.c_str());
    throw InputError(path_ + ": cannot write: " + ec.message());
  }
}

}  // namespace htga::cli
