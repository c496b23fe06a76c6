#pragma once
// What may be a database or an output path: checked before anything is opened or written, so that
// a bad path is bad input (OpenError, exit code 2) and no file is touched.

#include <string>
#include <vector>

namespace htga::storage {

/// Refuses (OpenError, one line naming the path) what cannot be a result database: an empty
/// path, ":memory:" (SQLite's in-memory database keeps nothing), a path ending in '/', a folder,
/// and anything that exists but is not a regular file (/dev/null, a FIFO, a socket). A symlink to
/// a regular file is fine; a path that does not exist yet is fine.
void check_database_path(const std::string& path);

/// The file a path writes to: a symlink (or a chain of them) is followed to its target, which may
/// not exist yet, so that writing a new file in its place replaces the target and keeps the link.
/// Throws OpenError naming the path for a loop of links.
std::string resolve_output(const std::string& path);

/// Whether two paths name the same file: the same inode when both exist (hard links included),
/// else the same path once symlinks, "." and ".." are resolved (std::filesystem::weakly_canonical).
bool same_file(const std::string& a, const std::string& b);

/// Refuses (OpenError) an output path that is one of `databases` or one of its -wal, -shm or
/// -journal files, however spelled (symlinks, "./", "..", hard links): writing there would destroy
/// the database.
void check_output_path(const std::string& out, const std::vector<std::string>& databases);

}  // namespace htga::storage
