// The rooms protocol's JSON envelopes (GoAkt-compatible, snake_case): the inbound envelope types
// and their decoder (simdjson On-Demand; no DOM) for what clients and the HTTP publish API send.
//
// Decoding rules (EnvelopeDecoder):
// - one JSON object with exactly one known top-level key; unknown keys inside a body are ignored
//   (but must still be well-formed JSON, at most kMaxEnvelopeDepth levels deep);
// - a JSON null counts as absent and an empty required string as missing, as in protojson, where
//   a field holding its zero value is simply not written;
// - a known field repeated within one body is an error (invalid_json, "duplicate field"): protojson
//   rejects duplicates too, and first-wins or last-wins would let two parsers disagree;
// - resume offsets/epochs accept a JSON number or a decimal string (protojson writes 64-bit
//   integers as strings); a missing one is 0. Room ids repeated inside resume.rooms are passed
//   through in order; the caller looks each one up anyway.
// - error precedence: invalid_json beats everything; otherwise the first field error wins, and the
//   rest of the body is still read so that a message's error can carry its message_id as ref.
// The encoders live in ws/envelope_encoder.h, included here so one include gives the protocol.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ws/envelope_encoder.h"

namespace weir::ws {

// Deepest nesting accepted anywhere in an inbound document (the top-level object is level 1).
inline constexpr int kMaxEnvelopeDepth = 32;

enum class EnvelopeType : uint8_t { kJoinRoom, kLeaveRoom, kMessage, kResume, kRefresh };

// The key naming `type` on the wire ("join_room", ...).
std::string_view envelope_type_name(EnvelopeType type);

struct ResumeRoom {
  std::string_view room_id;
  uint64_t offset;
  uint64_t epoch;
};

struct InboundEnvelope {
  EnvelopeType type = EnvelopeType::kJoinRoom;
  std::string_view room_id;  // join_room/leave_room room_id; message target
  std::string_view content;  // message
  std::string_view message_id, sent_at, traceparent, tracestate;  // empty when absent
  std::string_view token;                                         // resume, refresh
  std::vector<ResumeRoom> resume_rooms;  // resume (capacity reused between decodes)
};

struct EnvelopeError {
  std::string_view
      code;  // static: "invalid_json", "unknown_envelope", "missing_field", "invalid_field"
  std::string message;  // one human-readable line
  std::string ref;      // the envelope type (or unknown key), or the message_id when known
};

inline constexpr std::string_view kErrInvalidJson = "invalid_json";
inline constexpr std::string_view kErrUnknownEnvelope = "unknown_envelope";
inline constexpr std::string_view kErrMissingField = "missing_field";
inline constexpr std::string_view kErrInvalidField = "invalid_field";

// Decodes inbound envelopes with simdjson On-Demand.
// One per reactor thread (not thread-safe); views in the decoded envelope stay valid until the next
// decode. Allocation-free in steady state: the input is copied into an internal padded buffer and
// strings are unescaped into simdjson's buffer, both grown geometrically and then reused.
class EnvelopeDecoder {
 public:
  explicit EnvelopeDecoder(size_t max_document_bytes = 1 << 20);
  ~EnvelopeDecoder();
  EnvelopeDecoder(const EnvelopeDecoder&) = delete;
  EnvelopeDecoder& operator=(const EnvelopeDecoder&) = delete;

  // A client frame on /ws. Returns false and fills `error` when the frame is not a valid envelope;
  // `out` is then partially filled and must not be used.
  bool decode(std::string_view json, InboundEnvelope* out, EnvelopeError* error);
  // The HTTP publish API body {"content":..,"message_id"?,"sent_at"?,"traceparent"?,
  // "tracestate"?}: fills a kMessage envelope whose room_id is left empty for the caller (the
  // room comes from the URL; a "target" in the body is ignored).
  bool decode_publish(std::string_view json, InboundEnvelope* out, EnvelopeError* error);

  size_t max_document_bytes() const { return max_document_bytes_; }

 private:
  struct Impl;  // keeps simdjson.h (large) out of every includer
  std::unique_ptr<Impl> impl_;
  size_t max_document_bytes_;
};

// Same as d.decode_publish(json, out, error).
bool decode_publish_body(EnvelopeDecoder& d, std::string_view json, InboundEnvelope* out,
                         EnvelopeError* error);

}  // namespace weir::ws
