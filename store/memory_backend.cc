// store/memory_backend.cc — the in-memory Backend and the shared GCRA arithmetic.
#include "store/memory_backend.h"

#include <algorithm>
#include <cmath>

namespace weir::store {

RateDecision gcra_take(double* tat_ms, const RateLimit& limit, double cost, int64_t now_ms) {
  if (limit.per_second <= 0) return {true, 0};
  double interval = 1000.0 / limit.per_second;
  double now = static_cast<double>(now_ms);
  double new_tat = std::max(*tat_ms, now) + cost * interval;
  double excess = new_tat - now - std::max(limit.burst, 1.0) * interval;
  if (excess > 1e-6) return {false, static_cast<int64_t>(std::ceil(excess - 1e-6))};
  *tat_ms = new_tat;
  return {true, 0};
}

Status MemoryBackend::append(const StoredMessage& message) {
  rooms_[message.room_id][{message.epoch, message.offset}] = message;
  return Status::kOk;
}

Status MemoryBackend::read_room(std::string_view room_id, uint64_t epoch, uint64_t after,
                                size_t limit, std::vector<StoredMessage>* out,
                                uint64_t* first_offset) {
  out->clear();
  *first_offset = 0;
  auto room = rooms_.find(room_id);
  if (room == rooms_.end()) return Status::kOk;
  const History& history = room->second;
  auto first = history.lower_bound({epoch, 0});
  if (first == history.end() || first->first.first != epoch) return Status::kOk;
  *first_offset = first->first.second;
  if (after == UINT64_MAX) return Status::kOk;
  for (auto it = history.lower_bound({epoch, after + 1});
       it != history.end() && it->first.first == epoch && out->size() < limit; ++it)
    out->push_back(it->second);
  return Status::kOk;
}

Status MemoryBackend::room_state(std::string_view room_id, RoomState* out) {
  auto room = rooms_.find(room_id);
  if (room == rooms_.end() || room->second.empty()) return Status::kNotFound;
  const auto& newest = room->second.rbegin()->first;
  *out = RoomState{newest.first, newest.second};
  return Status::kOk;
}

Status MemoryBackend::put_session(const Session& session) {
  sessions_[session.token] = session;
  return Status::kOk;
}

Status MemoryBackend::get_session(std::string_view token, int64_t now_ms, Session* out) {
  auto it = sessions_.find(token);
  if (it == sessions_.end() || it->second.expires_ms <= now_ms) return Status::kNotFound;
  *out = it->second;
  return Status::kOk;
}

Status MemoryBackend::delete_session(std::string_view token) {
  auto it = sessions_.find(token);
  if (it != sessions_.end()) sessions_.erase(it);
  return Status::kOk;
}

Status MemoryBackend::remember_message_id(std::string_view room_id, std::string_view message_id,
                                          uint64_t offset, int64_t window_ms, int64_t now_ms,
                                          IdempotencyResult* out) {
  std::string key;
  key.reserve(room_id.size() + message_id.size() + 1);
  key.append(room_id).push_back('\n');
  key.append(message_id);
  SeenId& seen = seen_ids_[key];
  if (seen.expires_ms > now_ms) {
    *out = IdempotencyResult{true, seen.offset};
    return Status::kOk;
  }
  seen = SeenId{offset, now_ms + window_ms};
  *out = IdempotencyResult{false, 0};
  return Status::kOk;
}

Status MemoryBackend::rate_take(std::string_view key, const RateLimit& limit, double cost,
                                int64_t now_ms, RateDecision* out) {
  auto it = rate_tats_.find(key);
  if (it == rate_tats_.end()) it = rate_tats_.emplace(std::string(key), 0.0).first;
  *out = gcra_take(&it->second, limit, cost, now_ms);
  return Status::kOk;
}

Status MemoryBackend::purge(const Retention& retention, int64_t now_ms) {
  for (auto it = rooms_.begin(); it != rooms_.end();) {
    trim_history(it->second, retention, now_ms);
    it = it->second.empty() ? rooms_.erase(it) : std::next(it);
  }
  purge_expired(now_ms);
  return Status::kOk;
}

void MemoryBackend::trim_history(History& history, const Retention& retention, int64_t now_ms) {
  if (retention.max_age_ms > 0) {
    int64_t cutoff = now_ms - retention.max_age_ms;
    std::erase_if(history, [cutoff](const auto& entry) { return entry.second.stored_ms < cutoff; });
  }
  size_t max = retention.max_messages_per_room;
  while (max > 0 && history.size() > max) history.erase(history.begin());
}

void MemoryBackend::purge_expired(int64_t now_ms) {
  std::erase_if(sessions_,
                [now_ms](const auto& entry) { return entry.second.expires_ms <= now_ms; });
  std::erase_if(seen_ids_,
                [now_ms](const auto& entry) { return entry.second.expires_ms <= now_ms; });
  // A bucket whose TAT is in the past is indistinguishable from a new one.
  std::erase_if(rate_tats_, [now_ms](const auto& entry) { return entry.second <= now_ms; });
}

}  // namespace weir::store
