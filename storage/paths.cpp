#include "storage/paths.h"

#include <filesystem>

#include "storage/sqlite.h"

namespace htga::storage {

namespace fs = std::filesystem;

void check_database_path(const std::string& path) {
  if (path.empty()) throw OpenError("\"\": not a database file (the path is empty)");
  if (path == ":memory:")
    throw OpenError(path + ": not a database file (SQLite's in-memory database keeps nothing); pass a file path");
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);  // follows symlinks
  if (fs::is_directory(st)) throw OpenError(path + ": is a folder, not a database file");
  if (fs::exists(st) && !fs::is_regular_file(st))
    throw OpenError(path + ": not a regular file (a database must be a file)");
  if (fs::path(path).filename().empty()) throw OpenError(path + ": names a folder, not a database file");
}

namespace {
fs::path resolved(const std::string& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) return fs::path(p).lexically_normal();
  fs::path c = fs::weakly_canonical(abs, ec);
  return ec ? abs.lexically_normal() : c;
}
}  // namespace

bool same_file(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec)) {
    const bool eq = fs::equivalent(a, b, ec);
    if (!ec) return eq;
  }
  return resolved(a) == resolved(b);
}

void check_output_path(const std::string& out, const std::vector<std::string>& databases) {
  for (const auto& db : databases) {
    if (same_file(out, db)) throw OpenError(out + ": is the database " + db + " itself; choose another output path");
    // SQLite keeps these beside the file a symlink points to: both spellings are checked.
    for (const char* suffix : {"-wal", "-shm", "-journal"})
      if (same_file(out, db + suffix) || same_file(out, resolved(db).string() + suffix))
        throw OpenError(out + ": is the " + suffix + " file of the database " + db + "; choose another output path");
  }
}

std::string resolve_output(const std::string& path) {
  std::error_code ec;
  fs::path p(path);
  for (int hops = 0; fs::is_symlink(p, ec); ++hops) {
    if (hops == 40) throw OpenError(path + ": too many levels of symbolic links (a loop?)");
    const fs::path target = fs::read_symlink(p, ec);
    if (ec) throw OpenError(path + ": cannot read the symbolic link: " + ec.message());
    p = target.is_absolute() ? target : p.parent_path() / target;
  }
  return p.string();
}

}  // namespace htga::storage
