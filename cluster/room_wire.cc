// cluster/room_wire.cc — encoding and checked decoding of the rooms traffic between nodes.
#include "cluster/room_wire.h"

namespace weir::cluster {
namespace {

void put_u8(std::string* out, uint8_t v) {
  out->push_back(static_cast<char>(v));
}

void put_be(std::string* out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out->push_back(static_cast<char>(v >> (8 * i)));
}

void put_str(std::string* out, std::string_view s) {  // callers keep s under 64 KiB
  put_be(out, s.size(), 2);
  out->append(s);
}

void put_lstr(std::string* out, std::string_view s) {
  put_be(out, s.size(), 4);
  out->append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool u8(uint8_t* v) {
    if (pos_ + 1 > data_.size()) return false;
    *v = static_cast<uint8_t>(data_[pos_++]);
    return true;
  }
  bool be(uint64_t* v, int bytes) {
    if (pos_ + bytes > data_.size()) return false;
    uint64_t x = 0;
    for (int i = 0; i < bytes; ++i) x = x << 8 | static_cast<uint8_t>(data_[pos_ + i]);
    pos_ += bytes;
    *v = x;
    return true;
  }
  bool str(std::string_view* s, int length_bytes = 2) {
    uint64_t n = 0;
    if (!be(&n, length_bytes) || n > data_.size() - pos_) return false;
    *s = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  std::string_view rest() {
    std::string_view r = data_.substr(pos_);
    pos_ = data_.size();
    return r;
  }
  bool done() const { return pos_ == data_.size(); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

}  // namespace

std::string encode_rooms_owned(uint64_t count) {
  std::string out;
  put_be(&out, count, 8);
  return out;
}

bool decode_rooms_owned(std::string_view payload, uint64_t* count) {
  Reader r(payload);
  return r.be(count, 8) && r.done();
}

bool is_room_wire_type(uint8_t type) {
  return type >= static_cast<uint8_t>(RoomWireType::kInterest) &&
         type <= static_cast<uint8_t>(RoomWireType::kDeliver);
}

void encode_room_wire(std::string* out, const RoomWireMessage& m) {
  put_str(out, m.room);
  switch (m.type) {
    case RoomWireType::kInterest:  // the sender's last position in the room: the owner's fence
      put_be(out, m.epoch, 8);
      put_be(out, m.offset, 8);
      return;
    case RoomWireType::kUninterest:
      return;
    case RoomWireType::kInterestAck:
      put_be(out, m.epoch, 8);
      put_be(out, m.offset, 8);
      put_u8(out, static_cast<uint8_t>(m.status));
      return;
    case RoomWireType::kPublish:
      put_be(out, m.request, 8);
      put_u8(out, m.flags);
      put_lstr(out, m.content);
      put_str(out, m.message_id);
      put_str(out, m.sent_at);
      put_str(out, m.sender);
      put_str(out, m.traceparent);
      put_str(out, m.tracestate);
      return;
    case RoomWireType::kPublishResult:
      put_be(out, m.request, 8);
      put_be(out, static_cast<uint16_t>(m.status), 2);
      put_be(out, m.offset, 8);
      put_be(out, m.epoch, 8);
      put_be(out, static_cast<uint64_t>(m.retry_ms), 8);
      return;
    case RoomWireType::kDeliver:
      put_be(out, m.epoch, 8);
      put_be(out, m.offset, 8);
      put_be(out, m.request, 8);
      return;  // the envelope follows as its own part
  }
}

bool decode_room_wire(uint8_t type, std::string_view payload, RoomWireMessage* m) {
  if (!is_room_wire_type(type)) return false;
  *m = RoomWireMessage{};
  m->type = static_cast<RoomWireType>(type);
  Reader r(payload);
  if (!r.str(&m->room) || m->room.empty()) return false;
  uint64_t v = 0;
  uint8_t b = 0;
  switch (m->type) {
    case RoomWireType::kInterest:
      if (!r.be(&m->epoch, 8) || !r.be(&m->offset, 8)) return false;
      break;
    case RoomWireType::kUninterest:
      break;
    case RoomWireType::kInterestAck:
      if (!r.be(&m->epoch, 8) || !r.be(&m->offset, 8) || !r.u8(&b)) return false;
      m->status = b;
      break;
    case RoomWireType::kPublish:
      if (!r.be(&m->request, 8) || !r.u8(&m->flags) || !r.str(&m->content, 4) ||
          !r.str(&m->message_id) || !r.str(&m->sent_at) || !r.str(&m->sender) ||
          !r.str(&m->traceparent) || !r.str(&m->tracestate))
        return false;
      break;
    case RoomWireType::kPublishResult:
      if (!r.be(&m->request, 8) || !r.be(&v, 2)) return false;
      m->status = static_cast<int>(v);
      if (!r.be(&m->offset, 8) || !r.be(&m->epoch, 8) || !r.be(&v, 8)) return false;
      m->retry_ms = static_cast<int64_t>(v);
      break;
    case RoomWireType::kDeliver:
      if (!r.be(&m->epoch, 8) || !r.be(&m->offset, 8) || !r.be(&m->request, 8)) return false;
      m->envelope = r.rest();
      if (m->envelope.empty()) return false;
      break;
  }
  return r.done();
}

}  // namespace weir::cluster
