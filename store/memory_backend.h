// store/memory_backend.h — the in-memory Backend (`--store=memory`): std containers, nothing
// survives the process. Also owns gcra_take(), the rate-limit arithmetic the in-process
// backends (memory, sqlite) share.
//
// Thread-safety: none; one store thread owns a backend (see store/backend.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>

#include "store/backend.h"

namespace weir::store {

// GCRA (the generic cell rate algorithm) over one key's theoretical arrival time `*tat_ms`
// (0 for a new key): with interval T = 1000 / per_second, `cost` is allowed when
// max(tat, now) + cost*T - now <= burst*T, and then *tat_ms advances; a denial leaves it
// untouched and says how long until the same cost would pass. A rate <= 0 means no limit.
RateDecision gcra_take(double* tat_ms, const RateLimit& limit, double cost, int64_t now_ms);

class MemoryBackend : public Backend {
 public:
  const char* name() const override { return "memory"; }
  const std::string& last_error() const override { return last_error_; }

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
  // A room's history ordered by (epoch, offset): the newest message is the last one.
  using History = std::map<std::pair<uint64_t, uint64_t>, StoredMessage>;
  struct SeenId {
    uint64_t offset = 0;
    int64_t expires_ms = 0;
  };

  static void trim_history(History& history, const Retention& retention, int64_t now_ms);
  void purge_expired(int64_t now_ms);

  std::map<std::string, History, std::less<>> rooms_;
  std::map<std::string, Session, std::less<>> sessions_;
  std::map<std::string, SeenId, std::less<>> seen_ids_;  // key: room '\n' message_id
  std::map<std::string, double, std::less<>> rate_tats_;
  std::string last_error_;
};

}  // namespace weir::store
