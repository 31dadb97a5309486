// Fuzzes the envelope decoder with arbitrary bytes (as a /ws frame and as an HTTP publish body).
// Must never crash; decoded strings and error texts must be valid UTF-8 (they go out in text
// frames); and every successful decode, re-encoded with the encoders and decoded again by a second
// decoder, must give back the same fields.
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "ws/envelope.h"

namespace {

using weir::ws::EnvelopeDecoder;
using weir::ws::EnvelopeError;
using weir::ws::EnvelopeType;
using weir::ws::InboundEnvelope;

void check(bool ok) {
  if (!ok) abort();
}

bool utf8(std::string_view s) {
  return simdjson::validate_utf8(s.data(), s.size());
}

// Owning copy of a decoded envelope: views die with the next decode.
struct Fields {
  EnvelopeType type;
  std::string room_id, content, message_id, sent_at, traceparent, tracestate, token;
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> rooms;

  explicit Fields(const InboundEnvelope& e)
      : type(e.type),
        room_id(e.room_id),
        content(e.content),
        message_id(e.message_id),
        sent_at(e.sent_at),
        traceparent(e.traceparent),
        tracestate(e.tracestate),
        token(e.token) {
    for (const auto& r : e.resume_rooms)
      rooms.push_back({std::string(r.room_id), {r.offset, r.epoch}});
  }
  bool operator==(const Fields&) const = default;
};

void check_strings_valid(const InboundEnvelope& e) {
  for (std::string_view s :
       {e.room_id, e.content, e.message_id, e.sent_at, e.traceparent, e.tracestate, e.token}) {
    check(utf8(s));
  }
  for (const auto& r : e.resume_rooms) check(utf8(r.room_id));
}

// Writes `f` back as the envelope a client would send.
std::string reencode(const Fields& f) {
  std::string out;
  if (f.type == EnvelopeType::kMessage) {
    const weir::ws::OutboundMessage m{
        f.room_id, f.content, f.message_id, f.sent_at, "sender", f.traceparent, f.tracestate, 7, 9};
    const size_t bound = weir::ws::message_encoded_bound(m);
    out.resize(bound);
    check(weir::ws::encode_message_to(out.data(), m) == bound);
    return out;
  }
  out = "{\"";
  out.append(weir::ws::envelope_type_name(f.type)).append("\":{");
  if (f.type == EnvelopeType::kResume) {
    out.append("\"token\":");
    weir::ws::append_json_string(&out, f.token);
    out.append(",\"rooms\":{");
    for (size_t i = 0; i < f.rooms.size(); ++i) {
      if (i > 0) out.push_back(',');
      weir::ws::append_json_string(&out, f.rooms[i].first);
      out.append(":{\"offset\":" + std::to_string(f.rooms[i].second.first) + ",\"epoch\":\"" +
                 std::to_string(f.rooms[i].second.second) + "\"}");
    }
    out.append("}}}");
  } else if (f.type == EnvelopeType::kRefresh) {
    out.append("\"token\":");
    weir::ws::append_json_string(&out, f.token);
    out.append("}}");
  } else {
    out.append("\"room_id\":");
    weir::ws::append_json_string(&out, f.room_id);
    out.append("}}");
  }
  return out;
}

std::string reencode_publish(const Fields& f) {
  std::string out = "{\"content\":";
  weir::ws::append_json_string(&out, f.content);
  for (const auto& [key, value] : {std::pair{"message_id", &f.message_id},
                                   {"sent_at", &f.sent_at},
                                   {"traceparent", &f.traceparent},
                                   {"tracestate", &f.tracestate}}) {
    if (value->empty()) continue;
    out.append(",\"").append(key).append("\":");
    weir::ws::append_json_string(&out, *value);
  }
  return out + "}";
}

void check_error(const EnvelopeError& err) {
  check(err.code == weir::ws::kErrInvalidJson || err.code == weir::ws::kErrUnknownEnvelope ||
        err.code == weir::ws::kErrMissingField || err.code == weir::ws::kErrInvalidField);
  check(utf8(err.message) && utf8(err.ref) && !err.message.empty());
  check(err.message.find('\n') == std::string::npos);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static EnvelopeDecoder first, second;
  static InboundEnvelope env, again;
  static EnvelopeError err;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  if (first.decode(input, &env, &err)) {
    check_strings_valid(env);
    const Fields f(env);
    check(second.decode(reencode(f), &again, &err));
    check(Fields(again) == f);
  } else {
    check_error(err);
  }
  if (first.decode_publish(input, &env, &err)) {
    check_strings_valid(env);
    const Fields f(env);
    check(second.decode_publish(reencode_publish(f), &again, &err));
    check(Fields(again) == f);
  } else {
    check_error(err);
  }
  return 0;
}
