#pragma once
// Thin RAII layer over the SQLite C API (in the manner of SQLiteCpp): every handle closes
// itself, a transaction rolls back unless committed, and errors carry SQLite's extended code.

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>

struct sqlite3;
struct sqlite3_stmt;

namespace htga::storage {

/// An SQLite failure: the message names the database file, `code` is the extended result code.
class Error : public std::runtime_error {
 public:
  Error(const std::string& message, int code) : std::runtime_error(message), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

/// The database cannot be opened or is not ours: bad input from the user (exit code 2).
class OpenError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class Database {
 public:
  /// Opens (creating if needed) the database at `path`; creates missing parent folders.
  explicit Database(const std::string& path);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  /// Runs SQL text without results (schema, pragmas). Never used with user values.
  void exec(const char* sql);
  int64_t last_insert_rowid() const;
  int changes() const;
  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }
  /// Throws Error with the connection's current message if rc is not OK/ROW/DONE.
  void check(int rc, const char* what) const;

 private:
  std::string path_;
  sqlite3* db_ = nullptr;
};

/// A prepared statement; values are bound, never pasted into SQL.
class Statement {
 public:
  Statement(Database& db, const char* sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  void bind(int index, int64_t value);
  void bind(int index, int value) { bind(index, static_cast<int64_t>(value)); }
  /// NaN and infinities are stored as NULL: SQLite has no NaN, and NULL reads as "undefined".
  void bind(int index, double value);
  void bind(int index, const std::string& value);
  void bind_null(int index);

  /// Advances; true while a row is available.
  bool step();
  /// Steps a statement that returns no rows, then resets it for reuse.
  void run();
  void reset();

  bool is_null(int col) const;
  int64_t get_int(int col) const;
  /// NULL reads as NaN.
  double get_double(int col) const;
  std::string get_text(int col) const;
  std::optional<std::string> get_text_opt(int col) const;
  int column_count() const;
  std::string column_name(int col) const;

 private:
  Database& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

/// BEGIN IMMEDIATE on construction; rolls back on destruction unless commit() was called.
class Transaction {
 public:
  explicit Transaction(Database& db);
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  void commit();

 private:
  Database& db_;
  bool done_ = false;
};

}  // namespace htga::storage
