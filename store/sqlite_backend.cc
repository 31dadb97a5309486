// store/sqlite_backend.cc — the SQLite Backend: schema, cached statements, batches as
// transactions.
#include "store/sqlite_backend.h"

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>

#include "store/memory_backend.h"  // gcra_take

namespace weir::store {
namespace {

constexpr const char* kSchema = R"sql(
CREATE TABLE IF NOT EXISTS messages (
  room TEXT NOT NULL, epoch INTEGER NOT NULL, msg_offset INTEGER NOT NULL,
  payload BLOB NOT NULL, stored_ms INTEGER NOT NULL,
  PRIMARY KEY (room, epoch, msg_offset)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_by_age ON messages (stored_ms);
CREATE TABLE IF NOT EXISTS sessions (
  token TEXT PRIMARY KEY, member_id TEXT NOT NULL, expires_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS sessions_by_expiry ON sessions (expires_ms);
CREATE TABLE IF NOT EXISTS session_rooms (
  token TEXT NOT NULL, position INTEGER NOT NULL, room TEXT NOT NULL,
  epoch INTEGER NOT NULL, msg_offset INTEGER NOT NULL,
  PRIMARY KEY (token, position)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS message_ids (
  room TEXT NOT NULL, message_id TEXT NOT NULL, msg_offset INTEGER NOT NULL,
  expires_ms INTEGER NOT NULL, PRIMARY KEY (room, message_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS message_ids_by_expiry ON message_ids (expires_ms);
CREATE TABLE IF NOT EXISTS rate_buckets (key TEXT PRIMARY KEY, tat_ms REAL NOT NULL) WITHOUT ROWID;
)sql";

// One prepared statement, reset and unbound before each use.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  bool prepare(sqlite3* db, const char* sql) {
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) == SQLITE_OK;
  }
  // Starts a use: binds the arguments (1-based, in order).
  template <typename... Args>
  Statement& use(const Args&... args) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    [[maybe_unused]] int index = 0;
    (bind(++index, args), ...);
    return *this;
  }
  int step() { return sqlite3_step(stmt_); }
  // Runs a statement that returns no rows; true on success.
  bool run() {
    int rc = step();
    sqlite3_reset(stmt_);
    return rc == SQLITE_DONE;
  }
  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  uint64_t uint64(int col) const { return static_cast<uint64_t>(int64(col)); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string text(int col) const {
    const void* data = sqlite3_column_blob(stmt_, col);
    int size = sqlite3_column_bytes(stmt_, col);
    return data ? std::string(static_cast<const char*>(data), static_cast<size_t>(size)) : "";
  }

 private:
  void bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind(int i, uint64_t v) { sqlite3_bind_int64(stmt_, i, static_cast<int64_t>(v)); }
  void bind(int i, int v) { sqlite3_bind_int64(stmt_, i, v); }
  void bind(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  void bind(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
  }
  void bind(int i, const std::string& v) { bind(i, std::string_view(v)); }

  sqlite3_stmt* stmt_ = nullptr;
};

}  // namespace

struct SqliteBackend::Statements {
  Statement begin, commit, rollback;
  Statement append, read, first_offset, state;
  Statement put_session, delete_session_rooms, put_session_room, get_session, get_session_rooms,
      delete_session;
  Statement get_message_id, put_message_id;
  Statement get_tat, put_tat;
  Statement trim_by_age, trim_by_count, drop_expired_session_rooms, drop_expired_sessions,
      drop_expired_ids, drop_idle_buckets;

  // Every statement with its SQL, so open() prepares them in one loop.
  std::vector<std::pair<Statement*, const char*>> all() {
    return {
        {&begin, "BEGIN IMMEDIATE"},
        {&commit, "COMMIT"},
        {&rollback, "ROLLBACK"},
        {&append, "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?)"},
        {&read,
         "SELECT msg_offset, payload, stored_ms FROM messages WHERE room = ? AND epoch = ? "
         "AND msg_offset > ? ORDER BY msg_offset LIMIT ?"},
        {&first_offset, "SELECT MIN(msg_offset) FROM messages WHERE room = ? AND epoch = ?"},
        {&state,
         "SELECT epoch, msg_offset FROM messages WHERE room = ? "
         "ORDER BY epoch DESC, msg_offset DESC LIMIT 1"},
        {&put_session, "INSERT OR REPLACE INTO sessions VALUES (?, ?, ?)"},
        {&delete_session_rooms, "DELETE FROM session_rooms WHERE token = ?"},
        {&put_session_room, "INSERT INTO session_rooms VALUES (?, ?, ?, ?, ?)"},
        {&get_session, "SELECT member_id, expires_ms FROM sessions WHERE token = ?"},
        {&get_session_rooms,
         "SELECT room, epoch, msg_offset FROM session_rooms WHERE token = ? ORDER BY position"},
        {&delete_session, "DELETE FROM sessions WHERE token = ?"},
        {&get_message_id,
         "SELECT msg_offset, expires_ms FROM message_ids WHERE room = ? AND message_id = ?"},
        {&put_message_id, "INSERT OR REPLACE INTO message_ids VALUES (?, ?, ?, ?)"},
        {&get_tat, "SELECT tat_ms FROM rate_buckets WHERE key = ?"},
        {&put_tat, "INSERT OR REPLACE INTO rate_buckets VALUES (?, ?)"},
        {&trim_by_age, "DELETE FROM messages WHERE stored_ms < ?"},
        // Keeps the newest N of each room (by epoch, then offset).
        {&trim_by_count,
         "DELETE FROM messages WHERE (room, epoch, msg_offset) IN (SELECT room, epoch, msg_offset "
         "FROM (SELECT room, epoch, msg_offset, ROW_NUMBER() OVER (PARTITION BY room "
         "ORDER BY epoch DESC, msg_offset DESC) AS newer FROM messages) WHERE newer > ?)"},
        {&drop_expired_session_rooms,
         "DELETE FROM session_rooms WHERE token IN "
         "(SELECT token FROM sessions WHERE expires_ms <= ?)"},
        {&drop_expired_sessions, "DELETE FROM sessions WHERE expires_ms <= ?"},
        {&drop_expired_ids, "DELETE FROM message_ids WHERE expires_ms <= ?"},
        // A bucket whose TAT is in the past is indistinguishable from a new one.
        {&drop_idle_buckets, "DELETE FROM rate_buckets WHERE tat_ms <= ?"},
    };
  }
};

// Groups the statements of one multi-statement call into a transaction, unless a batch
// already holds one.
class SqliteBackend::Transaction {
 public:
  explicit Transaction(SqliteBackend& backend) : backend_(backend), own_(!backend.in_batch_) {
    if (own_) ok_ = backend_.begin_batch() == Status::kOk;
  }
  // A call that returned early on an error leaves nothing half-written behind.
  ~Transaction() {
    if (own_ && ok_) backend_.abort_batch();
  }
  bool ok() const { return ok_; }
  Status finish() { return own_ && ok_ ? (own_ = false, backend_.commit_batch()) : Status::kOk; }

 private:
  SqliteBackend& backend_;
  bool own_;
  bool ok_ = true;
};

std::unique_ptr<SqliteBackend> SqliteBackend::open(std::string_view path, std::string* error) {
  if (path.empty()) {
    *error = "sqlite: empty path (--store=sqlite:PATH)";
    return nullptr;
  }
  std::unique_ptr<SqliteBackend> backend(new SqliteBackend());
  if (!backend->init(path)) {
    *error = "sqlite " + std::string(path) + ": " + backend->last_error_;
    return nullptr;
  }
  return backend;
}

SqliteBackend::~SqliteBackend() {
  if (in_batch_) commit_batch();
  stmts_.reset();  // statements before the connection
  sqlite3_close(db_);
}

bool SqliteBackend::init(std::string_view path) {
  std::filesystem::path file(path);
  std::error_code ec;
  if (file.has_parent_path()) std::filesystem::create_directories(file.parent_path(), ec);
  if (ec) {
    last_error_ = "cannot create directory: " + ec.message();
    return false;
  }
  std::string name(path);
  if (sqlite3_open_v2(name.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) !=
      SQLITE_OK) {
    fail("open");
    return false;
  }
  if (!exec("PRAGMA journal_mode=WAL") || !exec("PRAGMA synchronous=FULL") || !exec(kSchema))
    return false;
  stmts_ = std::make_unique<Statements>();
  for (auto& [statement, sql] : stmts_->all()) {
    if (!statement->prepare(db_, sql)) {
      fail(sql);
      return false;
    }
  }
  return true;
}

bool SqliteBackend::exec(const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &message) == SQLITE_OK) return true;
  last_error_ = message ? message : "exec failed";
  sqlite3_free(message);
  return false;
}

Status SqliteBackend::fail(const char* what) {
  last_error_ = std::string(what) + ": " + (db_ ? sqlite3_errmsg(db_) : "no database");
  return Status::kError;
}

Status SqliteBackend::begin_batch() {
  if (in_batch_) return Status::kOk;
  if (!stmts_->begin.use().run()) return fail("begin");
  in_batch_ = true;
  return Status::kOk;
}

// A failed COMMIT leaves the transaction open (SQLITE_BUSY) or already rolled back; either
// way the batch is lost, so roll back whatever remains and report it.
Status SqliteBackend::commit_batch() {
  if (!in_batch_) return Status::kOk;
  in_batch_ = false;
  if (stmts_->commit.use().run()) return Status::kOk;
  Status status = fail("commit");
  if (!sqlite3_get_autocommit(db_)) stmts_->rollback.use().run();
  return status;
}

void SqliteBackend::abort_batch() {
  in_batch_ = false;
  if (!sqlite3_get_autocommit(db_)) stmts_->rollback.use().run();
}

Status SqliteBackend::append(const StoredMessage& m) {
  Statement& s = stmts_->append;
  s.use(m.room_id, m.epoch, m.offset, m.payload, m.stored_ms);
  return s.run() ? Status::kOk : fail("append");
}

Status SqliteBackend::read_room(std::string_view room_id, uint64_t epoch, uint64_t after,
                                size_t limit, std::vector<StoredMessage>* out,
                                uint64_t* first_offset) {
  out->clear();
  *first_offset = 0;
  Statement& first = stmts_->first_offset;
  first.use(room_id, epoch);
  int rc = first.step();
  if (rc == SQLITE_ROW && !first.is_null(0)) *first_offset = first.uint64(0);
  first.use();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail("read_room");
  if (after >= static_cast<uint64_t>(INT64_MAX)) return Status::kOk;  // offsets are SQLite int64
  Statement& read = stmts_->read;
  read.use(room_id, epoch, after, static_cast<int64_t>(std::min<size_t>(limit, INT64_MAX)));
  while ((rc = read.step()) == SQLITE_ROW)
    out->push_back(
        StoredMessage{std::string(room_id), epoch, read.uint64(0), read.text(1), read.int64(2)});
  read.use();
  return rc == SQLITE_DONE ? Status::kOk : fail("read_room");
}

Status SqliteBackend::room_state(std::string_view room_id, RoomState* out) {
  Statement& s = stmts_->state;
  s.use(room_id);
  int rc = s.step();
  if (rc == SQLITE_ROW) *out = RoomState{s.uint64(0), s.uint64(1)};
  s.use();
  if (rc == SQLITE_ROW) return Status::kOk;
  return rc == SQLITE_DONE ? Status::kNotFound : fail("room_state");
}

Status SqliteBackend::put_session(const Session& session) {
  Transaction txn(*this);
  if (!txn.ok()) return Status::kError;
  if (!stmts_->put_session.use(session.token, session.member_id, session.expires_ms).run())
    return fail("put_session");
  Status status = put_session_rooms(session);
  return status == Status::kOk ? txn.finish() : status;
}

Status SqliteBackend::put_session_rooms(const Session& session) {
  if (!stmts_->delete_session_rooms.use(session.token).run()) return fail("put_session");
  int position = 0;
  for (const SessionRoom& room : session.rooms) {
    Statement& s = stmts_->put_session_room;
    if (!s.use(session.token, position++, room.room_id, room.epoch, room.offset).run())
      return fail("put_session");
  }
  return Status::kOk;
}

Status SqliteBackend::get_session(std::string_view token, int64_t now_ms, Session* out) {
  Statement& head = stmts_->get_session;
  head.use(token);
  int rc = head.step();
  bool live = rc == SQLITE_ROW && head.int64(1) > now_ms;
  if (live) *out = Session{std::string(token), head.text(0), {}, head.int64(1)};
  head.use();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail("get_session");
  if (!live) return Status::kNotFound;
  Statement& rooms = stmts_->get_session_rooms;
  rooms.use(token);
  while ((rc = rooms.step()) == SQLITE_ROW)
    out->rooms.push_back(SessionRoom{rooms.text(0), rooms.uint64(1), rooms.uint64(2)});
  rooms.use();
  return rc == SQLITE_DONE ? Status::kOk : fail("get_session");
}

Status SqliteBackend::delete_session(std::string_view token) {
  Transaction txn(*this);
  if (!txn.ok()) return Status::kError;
  if (!stmts_->delete_session_rooms.use(token).run() || !stmts_->delete_session.use(token).run())
    return fail("delete_session");
  return txn.finish();
}

Status SqliteBackend::remember_message_id(std::string_view room_id, std::string_view message_id,
                                          uint64_t offset, int64_t window_ms, int64_t now_ms,
                                          IdempotencyResult* out) {
  Statement& get = stmts_->get_message_id;
  get.use(room_id, message_id);
  int rc = get.step();
  bool duplicate = rc == SQLITE_ROW && get.int64(1) > now_ms;
  *out = IdempotencyResult{duplicate, duplicate ? get.uint64(0) : 0};
  get.use();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail("remember_message_id");
  if (duplicate) return Status::kOk;
  Statement& put = stmts_->put_message_id;
  return put.use(room_id, message_id, offset, now_ms + window_ms).run()
             ? Status::kOk
             : fail("remember_message_id");
}

Status SqliteBackend::rate_take(std::string_view key, const RateLimit& limit, double cost,
                                int64_t now_ms, RateDecision* out) {
  Statement& get = stmts_->get_tat;
  get.use(key);
  int rc = get.step();
  double tat = rc == SQLITE_ROW ? get.real(0) : 0;
  get.use();
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) return fail("rate_take");
  *out = gcra_take(&tat, limit, cost, now_ms);
  if (!out->allowed) return Status::kOk;
  return stmts_->put_tat.use(key, tat).run() ? Status::kOk : fail("rate_take");
}

Status SqliteBackend::purge(const Retention& retention, int64_t now_ms) {
  Transaction txn(*this);
  if (!txn.ok()) return Status::kError;
  Statements& s = *stmts_;
  if (retention.max_age_ms > 0 && !s.trim_by_age.use(now_ms - retention.max_age_ms).run())
    return fail("purge");
  if (retention.max_messages_per_room > 0 &&
      !s.trim_by_count.use(retention.max_messages_per_room).run())
    return fail("purge");
  if (!s.drop_expired_session_rooms.use(now_ms).run() ||
      !s.drop_expired_sessions.use(now_ms).run() || !s.drop_expired_ids.use(now_ms).run() ||
      !s.drop_idle_buckets.use(static_cast<double>(now_ms)).run())
    return fail("purge");
  return txn.finish();
}

}  // namespace weir::store
