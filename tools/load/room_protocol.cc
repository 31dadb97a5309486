// tools/load/room_protocol.cc — envelopes in and out, content stamps, reassembly.
#include "tools/load/room_protocol.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "tools/load/json_scan.h"

namespace weir::load {
namespace {

constexpr std::string_view kMessageHead = "{\"message\":{\"target\":\"";
constexpr std::string_view kContentHead = "\",\"content\":\"";
constexpr std::string_view kMessageTail = "\"}}";

int format_stamp(char* out, size_t cap, const ContentStamp& s) {
  return std::snprintf(out, cap, "t=%lld,p=%u,s=%llu;", static_cast<long long>(s.send_ns),
                       s.publisher, static_cast<unsigned long long>(s.seq));
}

template <typename T>
bool take_number(std::string_view* text, std::string_view prefix, char end_char, T* out) {
  if (text->substr(0, prefix.size()) != prefix) return false;
  const char* begin = text->data() + prefix.size();
  const char* end = text->data() + text->size();
  auto [p, ec] = std::from_chars(begin, end, *out);
  if (ec != std::errc() || p == end || *p != end_char) return false;
  text->remove_prefix(static_cast<size_t>(p - text->data()) + 1);
  return true;
}

// Decimal digits ending just before `end` (walking back no further than `begin`): their value
// and where they start. False when there are none or more than 19.
bool digits_before(const char* begin, const char* end, uint64_t* value, const char** start) {
  const char* p = end;
  while (p > begin && p[-1] >= '0' && p[-1] <= '9') --p;
  size_t n = static_cast<size_t>(end - p);
  if (n == 0 || n > 19) return false;
  uint64_t v = 0;
  for (const char* d = p; d < end; ++d) v = v * 10 + static_cast<uint64_t>(*d - '0');
  *value = v;
  *start = p;
  return true;
}

bool ends_with_at(const char* begin, const char* end, std::string_view suffix) {
  return static_cast<size_t>(end - begin) >= suffix.size() &&
         std::memcmp(end - suffix.size(), suffix.data(), suffix.size()) == 0;
}

// The exact layout weir and the peers it is benchmarked against write, read without a scan:
//   {"message":{"target":"ROOM","content":"CONTENT", ... ,"offset":N,"epoch":N}}
// with no escapes in ROOM or CONTENT. Anything else returns false and takes the general path.
bool parse_message_fast(std::string_view json, RoomEnvelope* e) {
  constexpr std::string_view kHead = R"({"message":{"target":")";
  constexpr std::string_view kContent = R"(","content":")";
  if (json.size() < kHead.size() || json.substr(0, kHead.size()) != kHead) return false;
  const char* begin = json.data();
  const char* end = begin + json.size();
  const char* room = begin + kHead.size();
  auto* room_end =
      static_cast<const char*>(std::memchr(room, '"', static_cast<size_t>(end - room)));
  if (!room_end || room_end[-1] == '\\' || static_cast<size_t>(end - room_end) < kContent.size() ||
      std::memcmp(room_end, kContent.data(), kContent.size()) != 0)
    return false;
  const char* content = room_end + kContent.size();
  auto* content_end =
      static_cast<const char*>(std::memchr(content, '"', static_cast<size_t>(end - content)));
  if (!content_end || (content_end > content && content_end[-1] == '\\')) return false;
  // Backwards from the end: }} epoch "epoch": , offset "offset":
  if (!ends_with_at(content_end, end, "}}")) return false;
  const char* p = end - 2;
  uint64_t epoch = 0, offset = 0;
  if (!digits_before(content_end, p, &epoch, &p) || !ends_with_at(content_end, p, R"(,"epoch":)"))
    return false;
  p -= std::string_view(R"(,"epoch":)").size();
  if (!digits_before(content_end, p, &offset, &p) || !ends_with_at(content_end, p, R"("offset":)"))
    return false;
  e->type = RoomEvent::kMessage;
  e->room = std::string_view(room, static_cast<size_t>(room_end - room));
  e->content = std::string_view(content, static_cast<size_t>(content_end - content));
  e->offset = offset;
  e->epoch = epoch;
  return true;
}

}  // namespace

RoomEnvelope parse_room_envelope(std::string_view json) {
  RoomEnvelope e;
  if (parse_message_fast(json, &e)) return e;
  std::string_view key = json_first_key(json);
  if (key == "message") {
    // The hot path of every fanout member. weir and the peers benchmarked against it write
    // target and content first and offset and epoch last, so two short scans read them: the
    // head's stops after content, the tail's looks at the last bytes only. Any other layout
    // costs one full scan.
    JsonField f[4] = {{"target"}, {"content"}, {"offset"}, {"epoch"}};
    constexpr size_t kTail = 64;
    if (json_find_fields(json, f, 2) != 2 || json.size() < kTail ||
        !json_find_fields_after(json, json.size() - kTail, f + 2, 2))
      json_find_fields(json, f, 4);
    if (json_field_uint(f[2], &e.offset) && json_field_uint(f[3], &e.epoch) && f[0].found &&
        f[0].is_string) {
      e.room = f[0].value;
      if (f[1].found && f[1].is_string) e.content = f[1].value;
      e.type = RoomEvent::kMessage;
    }
  } else if (key == "room_joined") {
    if (json_find_uint(json, "offset", &e.offset) && json_find_string(json, "room_id", &e.room)) {
      json_find_uint(json, "epoch", &e.epoch);
      e.type = RoomEvent::kJoined;
    }
  } else if (key == "lagged") {
    if (json_find_uint(json, "from_offset", &e.from) && json_find_uint(json, "to_offset", &e.to) &&
        json_find_string(json, "room_id", &e.room))
      e.type = RoomEvent::kLagged;
  } else if (key == "error") {
    json_find_string(json, "code", &e.code);
    json_find_string(json, "message", &e.text);
    e.type = RoomEvent::kError;
  } else if (key == "session") {
    json_find_string(json, "token", &e.token);
    e.type = RoomEvent::kSession;
  } else if (key == "resumed") {
    std::string_view recovered;
    e.type = RoomEvent::kOther;
    if (json_find_string(json, "room_id", &e.room) && json_find_uint(json, "offset", &e.offset) &&
        json_find_uint(json, "epoch", &e.epoch)) {
      e.recovered = json_find_scalar(json, "recovered", &recovered) && recovered == "true";
      e.type = RoomEvent::kResumed;
    }
  } else if (key == "room_left") {
    json_find_string(json, "room_id", &e.room);
    e.type = RoomEvent::kLeft;
  } else if (!key.empty()) {
    e.type = RoomEvent::kOther;
  }
  return e;
}

std::string join_envelope(std::string_view room) {
  return "{\"join_room\":{\"room_id\":\"" + std::string(room) + "\"}}";
}

std::string resume_envelope(std::string_view token, std::string_view room, uint64_t offset,
                            uint64_t epoch) {
  return "{\"resume\":{\"token\":\"" + std::string(token) + "\",\"rooms\":{\"" + std::string(room) +
         "\":{\"offset\":" + std::to_string(offset) + ",\"epoch\":" + std::to_string(epoch) +
         "}}}}";
}

bool parse_content_stamp(std::string_view content, ContentStamp* out) {
  ContentStamp s;
  long long send_ns = 0;
  if (!take_number(&content, "t=", ',', &send_ns) ||
      !take_number(&content, "p=", ',', &s.publisher) || !take_number(&content, "s=", ';', &s.seq))
    return false;
  s.send_ns = send_ns;
  *out = s;
  return true;
}

size_t message_envelope_size(std::string_view room, size_t content_size, const ContentStamp& s) {
  char stamp[96];
  size_t stamp_len = static_cast<size_t>(format_stamp(stamp, sizeof stamp, s));
  return kMessageHead.size() + room.size() + kContentHead.size() +
         std::max(content_size, stamp_len) + kMessageTail.size();
}

size_t write_message_envelope(char* out, std::string_view room, size_t content_size,
                              const ContentStamp& stamp) {
  char* p = out;
  auto put = [&p](std::string_view s) {
    std::memcpy(p, s.data(), s.size());
    p += s.size();
  };
  put(kMessageHead);
  put(room);
  put(kContentHead);
  char head[96];
  size_t n = static_cast<size_t>(format_stamp(head, sizeof head, stamp));
  put(std::string_view(head, n));
  if (content_size > n) {
    std::memset(p, '.', content_size - n);
    p += content_size - n;
  }
  put(kMessageTail);
  return static_cast<size_t>(p - out);
}

bool MessageAssembler::feed(std::span<const char> data, bool last, std::string_view* message) {
  if (!partial_ && last) {
    *message = std::string_view(data.data(), data.size());
    return true;
  }
  if (!partial_) buffer_.clear();
  buffer_.append(data.data(), data.size());
  partial_ = !last;
  if (!last) return false;
  *message = buffer_;
  return true;
}

}  // namespace weir::load
