// cluster/room_types.cc — policy names and room id rules.
#include "cluster/room_types.h"

namespace weir::cluster {

bool parse_slow_consumer_policy(std::string_view text, SlowConsumerPolicy* out) {
  if (text == "disconnect")
    *out = SlowConsumerPolicy::kDisconnect;
  else if (text == "skip")
    *out = SlowConsumerPolicy::kSkip;
  else if (text == "backpressure")
    *out = SlowConsumerPolicy::kBackpressure;
  else
    return false;
  return true;
}

const char* slow_consumer_policy_name(SlowConsumerPolicy policy) {
  switch (policy) {
    case SlowConsumerPolicy::kDisconnect:
      return "disconnect";
    case SlowConsumerPolicy::kSkip:
      return "skip";
    case SlowConsumerPolicy::kBackpressure:
      return "backpressure";
  }
  return "unknown";
}

const char* check_room_id(std::string_view room_id, size_t max_bytes) {
  if (room_id.empty()) return "invalid_room_id";
  if (room_id.size() > max_bytes) return "room_id_too_long";
  for (unsigned char c : room_id) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '@' || c == '/' || c == '-';
    if (!ok) return "invalid_room_id";
  }
  return nullptr;
}

bool parse_durability(std::string_view text, Durability* out) {
  if (text == "none") return *out = Durability::kNone, true;
  if (text == "async") return *out = Durability::kAsync, true;
  if (text == "sync") return *out = Durability::kSync, true;
  return false;
}

}  // namespace weir::cluster
