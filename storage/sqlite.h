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
  /// How a file is opened. Every file is opened through a URI built from its absolute path, so
  /// that no user path is read as one of SQLite's special names or URI parameters.
  enum class Access {
    kReadWrite,  // read and write; the file and its parent folders are created if missing
    kReadOnly,   // SQLite's mode=ro: the file is never written (a WAL database may get -wal/-shm)
    kImmutable,  // immutable=1: no locks, no -wal/-shm; only for a file nothing can change (a
                 // read-only folder that holds no -wal file)
  };
  /// Opens the database at `path` (":memory:": a private in-memory database). `name`, when
  /// given, is what messages call it (default: `path`).
  explicit Database(const std::string& path, Access access = Access::kReadWrite, const std::string& name = "");
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  /// Moving is for construction only: no Statement may refer to either side.
  Database(Database&& other) noexcept;
  Database& operator=(Database&& other) noexcept;

  /// Runs SQL text without results (schema, pragmas). Never used with user values.
  void exec(const char* sql);
  int64_t last_insert_rowid() const;
  int changes() const;
  /// The name messages use (the path the user gave).
  const std::string& path() const { return path_; }
  /// The URI SQLite opened, with its mode: for ATTACH of this file with the same access.
  const std::string& uri() const { return uri_; }
  sqlite3* handle() const { return db_; }
  /// Throws Error with the connection's current message if rc is not OK/ROW/DONE.
  void check(int rc, const char* what) const;

 private:
  std::string path_, uri_;
  sqlite3* db_ = nullptr;
};

/// The SQLite URI of a file: "file://" and its absolute path, percent-encoded, then `query`
/// ("mode=ro", ...) when not empty.
std::string file_uri(const std::string& path, const std::string& query = "");

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

/// BEGIN (deferred) on construction, ended on destruction: the reads in between see one
/// snapshot of the file, whatever other processes commit meanwhile.
class ReadTransaction {
 public:
  explicit ReadTransaction(Database& db);
  ~ReadTransaction();
  ReadTransaction(const ReadTransaction&) = delete;
  ReadTransaction& operator=(const ReadTransaction&) = delete;

 private:
  Database& db_;
};

}  // namespace htga::storage
