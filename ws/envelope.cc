// Envelope decoding with simdjson On-Demand: one forward pass over each body's fields, in any key
// order, validating the values it skips. The rules are in envelope.h; encoders are in
// envelope_encoder.cc.
#include "ws/envelope.h"

#include <simdjson.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstring>

namespace weir::ws {
namespace {

namespace od = simdjson::ondemand;
using simdjson::error_code;
using simdjson::INCORRECT_TYPE;
using simdjson::SUCCESS;

constexpr size_t kMaxExcerpt = 64;         // bytes of a client's key quoted back in an error
constexpr size_t kInitialCapacity = 4096;  // first parser allocation; grows by powers of two

// ---------------------------------------------------------------------------------------------
// Well-formedness of values nobody asked for.

bool is_json_whitespace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// RFC 8259 number grammar. Checked by hand because simdjson rejects valid numbers it cannot
// represent (1e999, integers past 2^64), which must read as wrong-typed, not as broken JSON.
bool is_json_number(std::string_view s) {
  size_t n = s.size();
  while (n > 0 && is_json_whitespace(s[n - 1])) --n;  // raw tokens carry trailing whitespace
  size_t i = 0;
  auto digits = [&] {
    const size_t start = i;
    while (i < n && s[i] >= '0' && s[i] <= '9') ++i;
    return i - start;
  };
  if (i < n && s[i] == '-') ++i;
  if (i < n && s[i] == '0') {
    ++i;
  } else if (digits() == 0) {
    return false;
  }
  if (i < n && s[i] == '.') {
    ++i;
    if (digits() == 0) return false;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (digits() == 0) return false;
  }
  return i == n;
}

error_code skip_value(od::value& v, int depth);

error_code skip_object(od::value& v, int depth) {
  od::object obj;
  SIMDJSON_TRY(v.get_object().get(obj));
  for (auto field : obj) {
    std::string_view key;  // unescaped only to validate its escapes
    od::value child;
    SIMDJSON_TRY(field.unescaped_key().get(key));
    SIMDJSON_TRY(field.value().get(child));
    SIMDJSON_TRY(skip_value(child, depth + 1));
  }
  return SUCCESS;
}

error_code skip_array(od::value& v, int depth) {
  od::array arr;
  SIMDJSON_TRY(v.get_array().get(arr));
  for (auto element : arr) {
    od::value child;
    SIMDJSON_TRY(std::move(element).get(child));
    SIMDJSON_TRY(skip_value(child, depth + 1));
  }
  return SUCCESS;
}

error_code skip_scalar(od::value& v, od::json_type type) {
  std::string_view s;
  bool b = false;
  switch (type) {
    case od::json_type::string:
      return v.get_string().get(s);
    case od::json_type::number:
      return is_json_number(v.raw_json_token()) ? SUCCESS : simdjson::NUMBER_ERROR;
    case od::json_type::boolean:
      if (v.get_bool().get(b) == SUCCESS) return SUCCESS;
      return v.raw_json_token().starts_with('f') ? simdjson::F_ATOM_ERROR : simdjson::T_ATOM_ERROR;
    case od::json_type::null:
      return (v.is_null().get(b) || !b) ? simdjson::N_ATOM_ERROR : SUCCESS;
    default:
      return simdjson::TAPE_ERROR;
  }
}

// Consumes one value and checks that it is well-formed: On-Demand only skips over values it is not
// asked for, and whether a frame is invalid_json must not depend on which fields it carries.
// Never returns INCORRECT_TYPE, which callers reserve for "well-formed, but the wrong type".
error_code skip_value(od::value& v, int depth) {
  if (depth > kMaxEnvelopeDepth) return simdjson::DEPTH_ERROR;
  od::json_type type;
  error_code e = v.type().get(type);
  if (e == SUCCESS) {
    if (type == od::json_type::object) {
      e = skip_object(v, depth);
    } else if (type == od::json_type::array) {
      e = skip_array(v, depth);
    } else {
      e = skip_scalar(v, type);
    }
  }
  return e == INCORRECT_TYPE ? simdjson::TAPE_ERROR : e;
}

// After a typed read failed with INCORRECT_TYPE: SUCCESS for null (absent, as in protojson),
// INCORRECT_TYPE for a well-formed value of another type, any other error for broken JSON.
error_code read_other(od::value& v, int depth) {
  od::json_type type;
  SIMDJSON_TRY(v.type().get(type));
  if (type == od::json_type::null) return skip_scalar(v, type);
  SIMDJSON_TRY(skip_value(v, depth));
  return INCORRECT_TYPE;
}

// A string field; *s is left untouched when the value is null.
error_code read_string(od::value& v, std::string_view* s, int depth) {
  std::string_view got;
  const error_code e = v.get_string().get(got);
  if (e == SUCCESS) *s = got;
  return e == INCORRECT_TYPE ? read_other(v, depth) : e;
}

// A uint64 field written as a JSON number or, as protojson does, a decimal string.
error_code read_uint64(od::value& v, uint64_t* n, int depth) {
  uint64_t got = 0;
  if (v.get_uint64().get(got) == SUCCESS) {
    *n = got;
    return SUCCESS;
  }
  od::json_type type;
  SIMDJSON_TRY(v.type().get(type));
  if (type != od::json_type::string) return read_other(v, depth);
  std::string_view s;
  SIMDJSON_TRY(v.get_string().get(s));
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), got);
  if (s.empty() || ec != std::errc{} || end != s.data() + s.size()) return INCORRECT_TYPE;
  *n = got;
  return SUCCESS;
}

// ---------------------------------------------------------------------------------------------
// Envelope schemas.

// A string field of a body; `member` null marks resume's "rooms" map.
struct FieldSpec {
  std::string_view name;
  std::string_view InboundEnvelope::*member;
  bool required;
};

constexpr FieldSpec kRoomFields[] = {{"room_id", &InboundEnvelope::room_id, true}};
constexpr FieldSpec kMessageFields[] = {
    {"target", &InboundEnvelope::room_id, true},
    {"content", &InboundEnvelope::content, true},
    {"message_id", &InboundEnvelope::message_id, false},
    {"sent_at", &InboundEnvelope::sent_at, false},
    {"traceparent", &InboundEnvelope::traceparent, false},
    {"tracestate", &InboundEnvelope::tracestate, false},
};
constexpr FieldSpec kPublishFields[] = {
    {"content", &InboundEnvelope::content, true},
    {"message_id", &InboundEnvelope::message_id, false},
    {"sent_at", &InboundEnvelope::sent_at, false},
    {"traceparent", &InboundEnvelope::traceparent, false},
    {"tracestate", &InboundEnvelope::tracestate, false},
};
constexpr FieldSpec kResumeFields[] = {{"token", &InboundEnvelope::token, true},
                                       {"rooms", nullptr, false}};
constexpr FieldSpec kRefreshFields[] = {{"token", &InboundEnvelope::token, true}};

struct BodySchema {
  std::string_view name;
  EnvelopeType type;
  std::span<const FieldSpec> fields;
};

// Indexed by EnvelopeType.
constexpr BodySchema kBodies[] = {
    {"join_room", EnvelopeType::kJoinRoom, kRoomFields},
    {"leave_room", EnvelopeType::kLeaveRoom, kRoomFields},
    {"message", EnvelopeType::kMessage, kMessageFields},
    {"resume", EnvelopeType::kResume, kResumeFields},
    {"refresh", EnvelopeType::kRefresh, kRefreshFields},
};

const BodySchema* find_body(std::string_view key) {
  for (const BodySchema& body : kBodies) {
    if (body.name == key) return &body;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Error recording.

struct Ctx {
  InboundEnvelope* out;
  EnvelopeError* error;
  std::string_view where;  // body being read: prefixes field names, default ref
  bool failed = false;     // an error is recorded; later field errors are dropped
};

// At most kMaxExcerpt bytes of `s`, cut on a UTF-8 boundary (errors go out in text frames).
std::string_view excerpt(std::string_view s) {
  if (s.size() <= kMaxExcerpt) return s;
  size_t n = kMaxExcerpt;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

// Quotes client-supplied text (a key) into a message, control characters replaced so the
// message stays one short line.
void append_excerpt(std::string* out, std::string_view s) {
  const std::string_view cut = excerpt(s);
  out->push_back('"');
  for (const char ch : cut) out->push_back(static_cast<unsigned char>(ch) < 0x20 ? '?' : ch);
  out->append(cut.size() < s.size() ? "...\"" : "\"");
}

// Records invalid_json, which overrides any field error; returns false to unwind.
bool fail_json(Ctx& c, std::string_view why) {
  c.failed = true;
  c.error->code = kErrInvalidJson;
  c.error->message.assign("invalid JSON");
  if (!c.where.empty()) c.error->message.append(" in ").append(c.where);
  c.error->message.append(": ").append(why);
  c.error->ref.assign(c.where);
  return false;
}

bool fail_json(Ctx& c, error_code e) {
  return fail_json(c, simdjson::error_message(e));
}

// Starts the first field-level error; returns the message to complete, or null if one is recorded.
std::string* begin_error(Ctx& c, std::string_view code, std::string_view field) {
  if (c.failed) return nullptr;
  c.failed = true;
  c.error->code = code;
  c.error->message.assign(c.where).append(".").append(field);
  c.error->ref.assign(c.where);
  return &c.error->message;
}

bool fail_duplicate(Ctx& c, std::string_view key) {
  std::string why("duplicate field ");
  append_excerpt(&why, key);
  return fail_json(c, why);
}

// The outcome of a read_*() that saw INCORRECT_TYPE or worse; returns false to unwind.
bool on_read_error(Ctx& c, error_code e, std::string_view field, std::string_view expected) {
  if (e != INCORRECT_TYPE) return fail_json(c, e);
  if (std::string* m = begin_error(c, kErrInvalidField, field))
    m->append(" must be ").append(expected);
  return true;
}

// ---------------------------------------------------------------------------------------------
// Body readers. Each returns false when the document is broken (invalid_json recorded).

// resume.rooms["<room>"][.<key>] must be <expected>
bool on_room_error(Ctx& c, error_code e, std::string_view room, std::string_view key,
                   std::string_view expected) {
  if (e != INCORRECT_TYPE) return fail_json(c, e);
  if (std::string* m = begin_error(c, kErrInvalidField, "rooms")) {
    m->push_back('[');
    append_excerpt(m, room);
    m->push_back(']');
    if (!key.empty()) m->append(".").append(key);
    m->append(" must be ").append(expected);
  }
  return true;
}

bool read_room_entry(Ctx& c, std::string_view room, od::value& v) {
  ResumeRoom entry{room, 0, 0};
  od::object obj;
  error_code e = v.get_object().get(obj);
  if (e == INCORRECT_TYPE) {
    e = read_other(v, 4);  // null reads as {}: offset and epoch 0
    if (e == SUCCESS) c.out->resume_rooms.push_back(entry);
    return e == SUCCESS || on_room_error(c, e, room, {}, "an object {offset, epoch}");
  }
  if (e != SUCCESS) return fail_json(c, e);
  bool seen_offset = false, seen_epoch = false;
  for (auto field : obj) {
    std::string_view key;
    od::value child;
    if ((e = field.unescaped_key().get(key)) || (e = field.value().get(child)))
      return fail_json(c, e);
    const bool is_offset = key == "offset";
    if (is_offset || key == "epoch") {
      bool& seen = is_offset ? seen_offset : seen_epoch;
      if (seen) return fail_duplicate(c, key);
      seen = true;
      e = read_uint64(child, is_offset ? &entry.offset : &entry.epoch, 5);
      if (e != SUCCESS && !on_room_error(c, e, room, key,
                                         "an unsigned 64-bit integer (number or decimal string)")) {
        return false;
      }
    } else if ((e = skip_value(child, 5))) {
      return fail_json(c, e);
    }
  }
  c.out->resume_rooms.push_back(entry);
  return true;
}

bool read_rooms(Ctx& c, od::value& v) {
  od::object obj;
  error_code e = v.get_object().get(obj);
  if (e == INCORRECT_TYPE) {
    e = read_other(v, 3);
    return e == SUCCESS || on_read_error(c, e, "rooms", "an object keyed by room id");
  }
  if (e != SUCCESS) return fail_json(c, e);
  for (auto field : obj) {
    std::string_view room;
    od::value entry;
    if ((e = field.unescaped_key().get(room)) || (e = field.value().get(entry))) {
      return fail_json(c, e);
    }
    if (!read_room_entry(c, room, entry)) return false;
  }
  return true;
}

// One field of a body at nesting level `depth`; unknown fields are validated and dropped.
bool read_field(Ctx& c, std::string_view key, od::value& v, std::span<const FieldSpec> fields,
                uint32_t* seen, int depth) {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].name != key) continue;
    if (*seen & (1u << i)) return fail_duplicate(c, key);
    *seen |= 1u << i;
    if (fields[i].member == nullptr) return read_rooms(c, v);
    const error_code e = read_string(v, &(c.out->*fields[i].member), depth);
    return e == SUCCESS || on_read_error(c, e, key, "a string");
  }
  const error_code e = skip_value(v, depth);
  return e == SUCCESS || fail_json(c, e);
}

bool read_fields(Ctx& c, od::object& obj, std::span<const FieldSpec> fields, int depth) {
  uint32_t seen = 0;
  for (auto field : obj) {
    std::string_view key;
    od::value v;
    error_code e;
    if ((e = field.unescaped_key().get(key)) || (e = field.value().get(v))) return fail_json(c, e);
    if (!read_field(c, key, v, fields, &seen, depth)) return false;
  }
  for (const FieldSpec& f : fields) {
    if (!f.required || !(c.out->*f.member).empty()) continue;
    if (std::string* m = begin_error(c, kErrMissingField, f.name))
      m->append(" is missing or empty");
  }
  return true;
}

// A top-level key's value: an envelope body, which must be an object.
bool read_body(Ctx& c, od::value& body, const BodySchema& schema) {
  c.where = schema.name;
  c.out->type = schema.type;
  od::object obj;
  error_code e = body.get_object().get(obj);
  if (e == INCORRECT_TYPE) {
    e = read_other(body, 2);
    if (e != SUCCESS && e != INCORRECT_TYPE) return fail_json(c, e);
    if (!c.failed) {
      c.failed = true;
      c.error->code = kErrInvalidField;
      c.error->message.assign(schema.name).append(" must be an object");
      c.error->ref.assign(schema.name);
    }
    return true;
  }
  if (e != SUCCESS) return fail_json(c, e);
  return read_fields(c, obj, schema.fields, 3);
}

bool read_unknown_envelope(Ctx& c, std::string_view key, od::value& body) {
  if (const error_code e = skip_value(body, 2)) return fail_json(c, e);
  if (c.failed) return true;
  c.failed = true;
  c.error->code = kErrUnknownEnvelope;
  c.error->message.assign("unknown envelope type ");
  append_excerpt(&c.error->message, key);
  c.error->message.append("; expected join_room, leave_room, message, resume or refresh");
  c.error->ref.assign(excerpt(key));
  return true;
}

void reset(InboundEnvelope* out) {
  out->type = EnvelopeType::kJoinRoom;
  out->room_id = out->content = out->message_id = out->sent_at = {};
  out->traceparent = out->tracestate = out->token = {};
  out->resume_rooms.clear();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// EnvelopeDecoder

struct EnvelopeDecoder::Impl {
  explicit Impl(size_t max) : max_bytes(max), parser(max) {}
  bool start(std::string_view json, Ctx& c, od::object* top);
  bool finish(Ctx& c);

  size_t max_bytes;
  od::parser parser;
  od::document doc;
  std::unique_ptr<char[]> input;  // copy of the frame plus SIMDJSON_PADDING
  size_t input_capacity = 0;
};

EnvelopeDecoder::EnvelopeDecoder(size_t max_document_bytes)
    : impl_(std::make_unique<Impl>(max_document_bytes)), max_document_bytes_(max_document_bytes) {
  // Sets the depth limit now; a failure here is retried by the first decode.
  [[maybe_unused]] const error_code e =
      impl_->parser.allocate(std::min(kInitialCapacity, max_document_bytes), kMaxEnvelopeDepth + 2);
}

EnvelopeDecoder::~EnvelopeDecoder() = default;

// Copies `json` into the padded buffer, runs stage 1 and opens the top-level object.
bool EnvelopeDecoder::Impl::start(std::string_view json, Ctx& c, od::object* top) {
  if (json.size() > max_bytes) {
    return fail_json(c, "document of " + std::to_string(json.size()) + " bytes exceeds the " +
                            std::to_string(max_bytes) + "-byte limit");
  }
  const size_t padded = json.size() + simdjson::SIMDJSON_PADDING;
  if (padded > input_capacity) {
    input_capacity = std::bit_ceil(padded);
    input = std::make_unique<char[]>(input_capacity);
  }
  if (!json.empty()) std::memcpy(input.get(), json.data(), json.size());
  std::memset(input.get() + json.size(), 0, simdjson::SIMDJSON_PADDING);
  if (parser.capacity() < json.size()) {
    const size_t want = std::min(std::bit_ceil(json.size()), max_bytes);
    if (error_code e = parser.allocate(want, kMaxEnvelopeDepth + 2)) return fail_json(c, e);
  }
  error_code e = parser.iterate(input.get(), json.size(), input_capacity).get(doc);
  if (e == SUCCESS) e = doc.get_object().get(*top);
  if (e == INCORRECT_TYPE) return fail_json(c, "an envelope must be a JSON object");
  return e == SUCCESS || fail_json(c, e);
}

// After the top-level object: no trailing content, then the outcome.
bool EnvelopeDecoder::Impl::finish(Ctx& c) {
  const char* trailing = nullptr;
  if (!c.failed && doc.current_location().get(trailing) == SUCCESS) {
    c.where = {};
    return fail_json(c, "trailing content after the envelope");
  }
  if (!c.failed) return true;
  if (c.error->code != kErrInvalidJson && !c.out->message_id.empty()) {
    c.error->ref.assign(c.out->message_id);
  }
  return false;
}

bool EnvelopeDecoder::decode(std::string_view json, InboundEnvelope* out, EnvelopeError* error) {
  reset(out);
  Ctx c{out, error, {}};
  od::object top;
  if (!impl_->start(json, c, &top)) return false;
  std::string_view first_key;
  bool any_key = false;
  for (auto field : top) {
    std::string_view key;
    od::value body;
    error_code e;
    if ((e = field.unescaped_key().get(key)) || (e = field.value().get(body))) {
      return fail_json(c, e);
    }
    if (!any_key) {
      any_key = true;
      first_key = key;
    } else {
      c.where = {};
      std::string why("an envelope has exactly one top-level key, found ");
      append_excerpt(&why, first_key);
      why.append(" and ");
      append_excerpt(&why, key);
      return fail_json(c, why);
    }
    const BodySchema* schema = find_body(key);
    const bool ok = schema ? read_body(c, body, *schema) : read_unknown_envelope(c, key, body);
    if (!ok) return false;
  }
  if (!any_key) {
    c.failed = true;
    error->code = kErrUnknownEnvelope;
    error->message.assign(
        "empty envelope; expected join_room, leave_room, message, resume or refresh");
    error->ref.clear();
  }
  return impl_->finish(c);
}

bool EnvelopeDecoder::decode_publish(std::string_view json, InboundEnvelope* out,
                                     EnvelopeError* error) {
  reset(out);
  out->type = EnvelopeType::kMessage;
  Ctx c{out, error, "body"};
  od::object top;
  if (!impl_->start(json, c, &top)) return false;
  if (!read_fields(c, top, kPublishFields, 2)) return false;
  return impl_->finish(c);
}

bool decode_publish_body(EnvelopeDecoder& d, std::string_view json, InboundEnvelope* out,
                         EnvelopeError* error) {
  return d.decode_publish(json, out, error);
}

std::string_view envelope_type_name(EnvelopeType type) {
  return kBodies[static_cast<size_t>(type)].name;
}

}  // namespace weir::ws
