#pragma once
// CSV output (RFC 4180): one header row, fields quoted only when they need it, NaN as empty.

#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace htga::cli {

/// A field, quoted when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& s);
/// A number with up to 9 significant digits (exact for float32 values); NaN and inf as empty.
std::string csv_number(double v);
/// One line of fields joined by commas, ending in '\n'.
std::string csv_line(const std::vector<std::string>& fields);

/// Flattens a JSON object into "a.b" -> text: strings as they are, numbers and lists as JSON.
void flatten_json(const nlohmann::json& j, const std::string& prefix, std::map<std::string, std::string>& out);

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
