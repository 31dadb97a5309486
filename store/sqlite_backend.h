// store/sqlite_backend.h — the embedded, durable Backend (`--store=sqlite:PATH`): one SQLite
// file in WAL mode with synchronous=FULL, so a committed batch survives kill -9; one
// transaction per batch; every statement prepared once at open and reused.
//
// Tables: messages (room, epoch, offset, payload, stored_ms; primary key room+epoch+offset),
// sessions + session_rooms (a child table, one row per room in the session's order),
// message_ids (idempotency keys with their expiry), rate_buckets (the GCRA TAT per key).
//
// Thread-safety: none; one store thread owns a backend (see store/backend.h).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "store/backend.h"

struct sqlite3;

namespace weir::store {

class SqliteBackend : public Backend {
 public:
  // Opens (creating the file, its directory and the schema when missing) the database at
  // `path`. Returns nullptr and fills *error on failure.
  static std::unique_ptr<SqliteBackend> open(std::string_view path, std::string* error);
  ~SqliteBackend() override;

  const char* name() const override { return "sqlite"; }
  const std::string& last_error() const override { return last_error_; }

  Status begin_batch() override;
  Status commit_batch() override;

  Status append(const StoredMessage& message) override;
  Status read_room(std::string_view room_id, uint64_t epoch, uint64_t after, size_t limit,
                   std::vector<StoredMessage>* out, uint64_t* first_offset) override;
  Status room_state(std::string_view room_id, RoomState* out) override;

  Status put_session(const Session& session) override;
  Status get_session(std::string_view token, int64_t now_ms, Session* out) override;
  Status delete_session(std::string_view token) override;

  Status remember_message_id(std::string_view room_id, std::string_view message_id, uint64_t offset,
                             int64_t window_ms, int64_t now_ms, IdempotencyResult* out) override;
  Status rate_take(std::string_view key, const RateLimit& limit, double cost, int64_t now_ms,
                   RateDecision* out) override;
  Status purge(const Retention& retention, int64_t now_ms) override;

 private:
  struct Statements;
  class Transaction;

  SqliteBackend() = default;
  bool init(std::string_view path);
  bool exec(const char* sql);
  Status fail(const char* what);
  void abort_batch();
  Status put_session_rooms(const Session& session);

  sqlite3* db_ = nullptr;
  std::unique_ptr<Statements> stmts_;
  bool in_batch_ = false;
  std::string last_error_;
};

}  // namespace weir::store
