#include "storage/sqlite.h"

#include <sqlite3.h>

#include <cctype>
#include <cmath>
#include <filesystem>

namespace htga::storage {

namespace {
std::string describe(sqlite3* db, int rc) {
  std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  return msg + " (sqlite code " + std::to_string(db ? sqlite3_extended_errcode(db) : rc) + ")";
}
}  // namespace

std::string file_uri(const std::string& path, const std::string& query) {
  std::error_code ec;
  std::string abs = std::filesystem::absolute(path, ec).string();
  if (ec) abs = path;
  // RFC 3986 unreserved characters and '/' stay; everything else ('?', '#', '%', spaces, bytes
  // of UTF-8) is escaped, so that no part of a path reads as a URI parameter.
  std::string uri = "file://";
  static const char* kHex = "0123456789ABCDEF";
  for (unsigned char c : abs) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
      uri += static_cast<char>(c);
    } else {
      uri += '%';
      uri += kHex[c >> 4];
      uri += kHex[c & 15];
    }
  }
  if (!query.empty()) uri += "?" + query;
  return uri;
}

Database::Database(const std::string& path, Access access, const std::string& name)
    : path_(name.empty() ? path : name) {
  namespace fs = std::filesystem;
  int flags = SQLITE_OPEN_URI;
  if (path == ":memory:") {
    uri_ = path;
    flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  } else if (access == Access::kReadWrite) {
    fs::path parent = fs::path(path).parent_path();
    if (!parent.empty()) {
      std::error_code ec;
      fs::create_directories(parent, ec);
      if (ec) throw OpenError(path_ + ": cannot create folder " + parent.string() + ": " + ec.message());
    }
    uri_ = file_uri(path);
    flags |= SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  } else {
    uri_ = file_uri(path, access == Access::kImmutable ? "mode=ro&immutable=1" : "mode=ro");
    flags |= SQLITE_OPEN_READONLY;
  }
  int rc = sqlite3_open_v2(uri_.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = describe(db_, rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw OpenError(path_ + ": cannot open database: " + msg);
  }
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, 10000);
}

Database::Database(Database&& other) noexcept
    : path_(std::move(other.path_)), uri_(std::move(other.uri_)), db_(other.db_) {
  other.db_ = nullptr;
}

Database& Database::operator=(Database&& other) noexcept {
  if (this != &other) {
    if (db_) sqlite3_close_v2(db_);
    path_ = std::move(other.path_);
    uri_ = std::move(other.uri_);
    db_ = other.db_;
    other.db_ = nullptr;
  }
  return *this;
}

Database::~Database() {
  if (db_) sqlite3_close_v2(db_);
}

void Database::check(int rc, const char* what) const {
  if (rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE) return;
  throw Error(path_ + ": " + what + ": " + describe(db_, rc), sqlite3_extended_errcode(db_));
}

void Database::exec(const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    int code = sqlite3_extended_errcode(db_);
    if (rc == SQLITE_NOTADB || rc == SQLITE_CANTOPEN || rc == SQLITE_READONLY) throw OpenError(path_ + ": " + msg);
    throw Error(path_ + ": " + msg + " (sqlite code " + std::to_string(code) + ")", code);
  }
}

int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int Database::changes() const { return sqlite3_changes(db_); }

Statement::Statement(Database& db, const char* sql) : db_(db) {
  db_.check(sqlite3_prepare_v2(db.handle(), sql, -1, &stmt_, nullptr), "prepare");
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

void Statement::bind(int index, int64_t value) { db_.check(sqlite3_bind_int64(stmt_, index, value), "bind"); }
void Statement::bind(int index, double value) {
  if (!std::isfinite(value)) return bind_null(index);
  db_.check(sqlite3_bind_double(stmt_, index, value), "bind");
}
void Statement::bind(int index, const std::string& value) {
  db_.check(sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT), "bind");
}
void Statement::bind_null(int index) { db_.check(sqlite3_bind_null(stmt_, index), "bind"); }

bool Statement::step() {
  int rc = sqlite3_step(stmt_);
  db_.check(rc, "step");
  return rc == SQLITE_ROW;
}

void Statement::run() {
  while (step()) {
  }
  reset();
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool Statement::is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int64_t Statement::get_int(int col) const { return sqlite3_column_int64(stmt_, col); }
double Statement::get_double(int col) const { return is_null(col) ? std::nan("") : sqlite3_column_double(stmt_, col); }
std::string Statement::get_text(int col) const {
  const unsigned char* t = sqlite3_column_text(stmt_, col);
  return t ? std::string(reinterpret_cast<const char*>(t)) : std::string();
}
std::optional<std::string> Statement::get_text_opt(int col) const {
  if (is_null(col)) return std::nullopt;
  return get_text(col);
}
int Statement::column_count() const { return sqlite3_column_count(stmt_); }
std::string Statement::column_name(int col) const { return sqlite3_column_name(stmt_, col); }

Transaction::Transaction(Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }
Transaction::~Transaction() {
  if (!done_) {
    try {
      db_.exec("ROLLBACK");
    } catch (...) {
    }
  }
}
void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

ReadTransaction::ReadTransaction(Database& db) : db_(db) { db_.exec("BEGIN"); }
ReadTransaction::~ReadTransaction() {
  try {
    db_.exec("COMMIT");
  } catch (...) {
  }
}

}  // namespace htga::storage
