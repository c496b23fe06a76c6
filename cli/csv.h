#pragma once
// CSV output (RFC 4180): one header row, fields quoted only when they need it, NaN as empty.

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "experiments/config.h"

namespace htga::cli {

/// A field, quoted when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s);
/// A number with up to 9 significant digits (exact for float32 values); NaN and inf as empty.
std::string csv_number(double v);
/// One line of fields joined by commas, ending in '\n'.
std::string csv_line(const std::vector<std::string>& fields);

/// Flattens a JSON object into "a.b" -> text (shared with the analysis's labels).
using experiments::flatten_json;

/// Builds CSV rows into a buffer and hands it to `sink` in chunks of about `chunk_bytes`, so that
/// a large export needs constant memory. Call flush() at the end.
class CsvWriter {
 public:
  explicit CsvWriter(std::function<void(const std::string&)> sink, size_t chunk_bytes = 1 << 20);
  CsvWriter& field(const std::string& s);
  CsvWriter& number(double v);  // as csv_number
  CsvWriter& integer(int64_t v);
  /// Ends the row; the number of rows ended so far is rows().
  void end_row();
  void row(const std::vector<std::string>& fields);
  void flush();
  long rows() const { return rows_; }

 private:
  void separator();
  std::function<void(const std::string&)> sink_;
  size_t chunk_bytes_;
  std::string buf_;
  bool row_started_ = false;
  long rows_ = 0;
};

/// A file written atomically: the text goes to a temporary file beside `path`, renamed over
/// it by commit(); without commit() the temporary file is removed and `path` is untouched.
/// Parent folders are created. Errors throw InputError naming the path.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const std::string& text);
  void commit();

 private:
  std::string path_, tmp_;
  FILE* file_ = nullptr;
};

}  // namespace htga::cli
