// Encoding of the rooms protocol's server-to-client envelopes straight to JSON text, no DOM.
// Strings escape " \ and control characters (the short forms \b \f \n \r \t where JSON has
// them, else \u00XX) and also U+2028/U+2029 as \u2028/\u2029, which pre-ES2019 JavaScript cannot
// take raw inside string literals (JSONP, eval); all other bytes, UTF-8 included, are copied as
// they are (inputs are assumed to be valid UTF-8, as decoded strings always are). Numbers are
// plain JSON integers. All functions are pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace weir::ws {

// The encode_*(std::string* out, ...) functions append to `out`.

// Appends `s` as a quoted JSON string.
void append_json_string(std::string* out, std::string_view s);
// Exact size append_json_string would add for `s`, quotes included (at most 6 * size + 2).
size_t json_string_encoded_size(std::string_view s);

// {"session":{"token":..,"member_id":..,"rooms":[..]}}
void encode_session(std::string* out, std::string_view token, std::string_view member_id,
                    std::span<const std::string_view> rooms);
// {"room_joined":{"room_id":..,"offset":N,"epoch":N}}
void encode_room_joined(std::string* out, std::string_view room_id, uint64_t offset,
                        uint64_t epoch);
// {"room_left":{"room_id":..}}
void encode_room_left(std::string* out, std::string_view room_id);
// {"error":{"code":..,"message":..,"ref":..}}
void encode_error(std::string* out, std::string_view code, std::string_view message,
                  std::string_view ref);
// {"error":{"code":..,"message":..,"ref":..,"<key>":N}}: an error that carries a number (the
// original offset of a duplicate, the retry delay of a rate limit).
void encode_error(std::string* out, std::string_view code, std::string_view message,
                  std::string_view ref, std::string_view key, uint64_t value);
// {"lagged":{"room_id":..,"from_offset":N,"to_offset":N}}
void encode_lagged(std::string* out, std::string_view room_id, uint64_t from_offset,
                   uint64_t to_offset);
// {"resumed":{"room_id":..,"recovered":true|false,"offset":N,"epoch":N}}
void encode_resumed(std::string* out, std::string_view room_id, bool recovered, uint64_t offset,
                    uint64_t epoch);

// {"refreshed":{"exp":N}}: a refresh's new token was accepted; N its exp (seconds).
void encode_refreshed(std::string* out, uint64_t exp);

struct OutboundMessage {
  std::string_view target, content, message_id, sent_at, sender, traceparent,
      tracestate;  // empty trace = omitted
  uint64_t offset = 0;
  uint64_t epoch = 0;
};

// {"message":{"target":..,"content":..,"message_id":..,"sent_at":..,"sender":..,"offset":N,
//   "epoch":N[,"traceparent":..][,"tracestate":..]}}
void encode_message(std::string* out, const OutboundMessage& m);
// The exact size encode_message_to writes (so also an upper bound): one scan of the strings, no
// 6x worst-case reservation, so a shared buffer sized by it holds no slack.
size_t message_encoded_bound(const OutboundMessage& m);
// Writes the message into `out`, which must hold message_encoded_bound(m) bytes; returns the
// number of bytes written (always equal to that bound).
size_t encode_message_to(char* out, const OutboundMessage& m);

}  // namespace weir::ws
