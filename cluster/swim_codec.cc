// cluster/swim_codec.cc — encoding, signing, verifying and parsing SWIM messages.
#include "cluster/swim_codec.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>

namespace weir::cluster {
namespace {

constexpr size_t kHeaderBytes = 8;  // magic, version, type, flags, seq

// Bounds-checked cursor over a body: every read checks the remaining length first, and a
// failed read leaves the reader failed, so a parse can run to the end and check once.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ == data_.size(); }

  uint8_t u8() {
    if (!need(1)) return 0;
    return static_cast<uint8_t>(data_[pos_++]);
  }
  uint16_t u16() {
    uint16_t hi = u8();
    return static_cast<uint16_t>(hi << 8 | u8());
  }
  uint32_t u32() {
    uint32_t hi = u16();
    return hi << 16 | u16();
  }
  bool str(std::string* out, bool may_be_empty = false) {
    size_t n = u8();
    if (!ok_ || (n == 0 && !may_be_empty) || n > kMaxNodeId || !need(n)) return fail();
    out->assign(data_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  bool addr(net::SocketAddress* out) {
    uint8_t family = u8();
    size_t n = family == 4 ? 4 : family == 6 ? 16 : 0;
    if (!ok_ || n == 0 || !need(n + 2)) return fail();
    const char* bytes = data_.data() + pos_;
    pos_ += n;
    uint16_t port = u16();
    if (family == 4) {
      struct sockaddr_in sin {};
      sin.sin_family = AF_INET;
      std::memcpy(&sin.sin_addr, bytes, 4);
      sin.sin_port = htons(port);
      *out = net::SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&sin), sizeof sin);
    } else {
      struct sockaddr_in6 sin6 {};
      sin6.sin6_family = AF_INET6;
      std::memcpy(&sin6.sin6_addr, bytes, 16);
      sin6.sin6_port = htons(port);
      *out = net::SocketAddress::from_sockaddr(reinterpret_cast<sockaddr*>(&sin6), sizeof sin6);
    }
    return ok_;
  }

 private:
  bool need(size_t n) {
    if (!ok_ || data_.size() - pos_ < n) return fail();
    return true;
  }
  bool fail() {
    ok_ = false;
    return false;
  }

  std::string_view data_;
  size_t pos_ = 0;
  bool ok_ = true;
};

void put_u8(std::string& out, uint8_t v) {
  out.push_back(static_cast<char>(v));
}
void put_u16(std::string& out, uint16_t v) {
  put_u8(out, static_cast<uint8_t>(v >> 8));
  put_u8(out, static_cast<uint8_t>(v));
}
void put_u32(std::string& out, uint32_t v) {
  put_u16(out, static_cast<uint16_t>(v >> 16));
  put_u16(out, static_cast<uint16_t>(v));
}
void put_str(std::string& out, std::string_view s) {
  put_u8(out, static_cast<uint8_t>(s.size()));
  out.append(s);
}
size_t addr_size(const net::SocketAddress& a) {
  return a.family() == AF_INET6 ? 19 : 7;
}
void put_addr(std::string& out, const net::SocketAddress& a) {
  if (a.family() == AF_INET6) {
    put_u8(out, 6);
    const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(a.sockaddr());
    out.append(reinterpret_cast<const char*>(&sin6->sin6_addr), 16);
  } else {
    // An unset address is written as 0.0.0.0:0 so every update has the same shape.
    put_u8(out, 4);
    uint32_t ip = 0;
    if (a.family() == AF_INET)
      ip = reinterpret_cast<const sockaddr_in*>(a.sockaddr())->sin_addr.s_addr;
    out.append(reinterpret_cast<const char*>(&ip), 4);
  }
  put_u16(out, a.family() == 0 ? 0 : a.port());
}

bool valid_id(std::string_view id) {
  return !id.empty() && id.size() <= kMaxNodeId;
}

void sign(std::string_view secret, std::string_view data, unsigned char* tag) {
  unsigned char full[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), full, &len);
  std::memcpy(tag, full, kTagBytes);
}

bool valid_type(uint8_t type) {
  return type >= 1 && type <= 6;
}
bool valid_state(uint8_t state) {
  return state <= 3;
}

}  // namespace

const char* member_state_name(MemberState state) {
  switch (state) {
    case MemberState::kAlive:
      return "alive";
    case MemberState::kSuspect:
      return "suspect";
    case MemberState::kDead:
      return "dead";
    case MemberState::kLeft:
      return "left";
  }
  return "?";
}

const char* message_type_name(MessageType type) {
  switch (type) {
    case MessageType::kPing:
      return "ping";
    case MessageType::kPingReq:
      return "ping-req";
    case MessageType::kAck:
      return "ack";
    case MessageType::kJoin:
      return "join";
    case MessageType::kJoinAck:
      return "join-ack";
    case MessageType::kGossip:
      return "gossip";
  }
  return "?";
}

size_t encoded_size(const MemberUpdate& update) {
  size_t accuser = update.state == MemberState::kSuspect ? 1 + update.accuser.size() : 0;
  return 1 + 4 + 1 + update.node_id.size() + addr_size(update.address) + accuser;
}

bool parse_body(std::string_view body, SwimMessage* out) {
  Reader r(body);
  if (r.u8() != kSwimMagic || r.u8() != kSwimVersion) return false;
  uint8_t type = r.u8();
  if (!r.ok() || !valid_type(type)) return false;
  out->type = static_cast<MessageType>(type);
  out->flags = r.u8();
  out->seq = r.u32();
  if (!r.str(&out->sender)) return false;
  out->target.clear();
  out->target_address = net::SocketAddress();
  if (out->type == MessageType::kPing || out->type == MessageType::kPingReq) {
    if (!r.str(&out->target)) return false;
  }
  if (out->type == MessageType::kPingReq && !r.addr(&out->target_address)) return false;
  size_t count = (out->flags & kFlagStream) ? r.u32() : r.u8();
  out->updates.clear();
  for (size_t i = 0; i < count && r.ok(); ++i) {
    MemberUpdate u;
    uint8_t state = r.u8();
    if (!r.ok() || !valid_state(state)) return false;
    u.state = static_cast<MemberState>(state);
    u.incarnation = r.u32();
    if (!r.str(&u.node_id) || !r.addr(&u.address)) return false;
    if (u.state == MemberState::kSuspect && !r.str(&u.accuser, true)) return false;
    out->updates.push_back(std::move(u));
  }
  return r.ok() && r.at_end();
}

DecodeStatus decode_packet(std::string_view packet, std::string_view secret, SwimMessage* out,
                           size_t max_size) {
  if (packet.size() < kHeaderBytes + kTagBytes || packet.size() > max_size)
    return DecodeStatus::kMalformed;
  std::string_view body = packet.substr(0, packet.size() - kTagBytes);
  unsigned char tag[kTagBytes];
  sign(secret, body, tag);
  if (CRYPTO_memcmp(tag, packet.data() + body.size(), kTagBytes) != 0) return DecodeStatus::kBadTag;
  return parse_body(body, out) ? DecodeStatus::kOk : DecodeStatus::kMalformed;
}

bool PacketWriter::begin(const SwimMessage& header) {
  buf_.clear();
  count_ = 0;
  stream_ = header.flags & kFlagStream;
  if (!valid_id(header.sender)) return false;
  bool has_target = header.type == MessageType::kPing || header.type == MessageType::kPingReq;
  if (has_target && !valid_id(header.target)) return false;
  put_u8(buf_, kSwimMagic);
  put_u8(buf_, kSwimVersion);
  put_u8(buf_, static_cast<uint8_t>(header.type));
  put_u8(buf_, header.flags);
  put_u32(buf_, header.seq);
  put_str(buf_, header.sender);
  if (has_target) put_str(buf_, header.target);
  if (header.type == MessageType::kPingReq) put_addr(buf_, header.target_address);
  count_pos_ = buf_.size();
  if (stream_)
    put_u32(buf_, 0);
  else
    put_u8(buf_, 0);
  return true;
}

bool PacketWriter::add_update(const MemberUpdate& update) {
  size_t max_count = stream_ ? UINT32_MAX : 255, limit = stream_ ? kMaxStreamMessage : kMaxPacket;
  if (count_ == max_count || !valid_id(update.node_id) || update.accuser.size() > kMaxNodeId)
    return false;
  if (buf_.size() + encoded_size(update) + kTagBytes > limit) return false;
  put_u8(buf_, static_cast<uint8_t>(update.state));
  put_u32(buf_, update.incarnation);
  put_str(buf_, update.node_id);
  put_addr(buf_, update.address);
  if (update.state == MemberState::kSuspect) put_str(buf_, update.accuser);
  ++count_;
  for (size_t i = 0, width = stream_ ? 4 : 1; i < width; ++i)
    buf_[count_pos_ + i] = static_cast<char>(count_ >> (8 * (width - 1 - i)));
  return true;
}

std::string_view PacketWriter::finish() {
  unsigned char tag[kTagBytes];
  sign(secret_, buf_, tag);
  buf_.append(reinterpret_cast<const char*>(tag), kTagBytes);
  return buf_;
}

}  // namespace weir::cluster
