// tools/load/room_protocol.h — the load tool's side of the rooms protocol (ws/envelope.h
// documents it): reading the server's envelopes with the one-pass scanner, writing join and
// message envelopes straight into a send buffer, the stamp a load publisher puts at the start
// of each message's content (send time, publisher, sequence number), and reassembly of a
// message that arrived over several reads.
//
// Room ids and content are the tool's own (ASCII letters, digits, '-', '.', '=', ',' and ';'),
// so nothing written here needs JSON escaping and nothing read back needs unescaping.
//
// Thread-safety: pure functions; a MessageAssembler belongs to one connection.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace weir::load {

enum class RoomEvent : uint8_t {
  kSession,
  kJoined,
  kMessage,
  kLagged,
  kLeft,
  kResumed,
  kError,
  kOther,      // a known-good envelope the tool does not use (or a resumed without numbers)
  kMalformed,  // not an envelope, or a message/joined without its numbers
};

struct RoomEnvelope {
  RoomEvent type = RoomEvent::kMalformed;
  std::string_view room;      // room_joined/lagged/room_left/resumed room_id, message target
  std::string_view token;     // session
  std::string_view content;   // message (raw)
  std::string_view code;      // error code
  std::string_view text;      // error message
  uint64_t offset = 0;        // message, room_joined, resumed (the room's last offset)
  uint64_t epoch = 0;         // message, room_joined, resumed
  uint64_t from = 0, to = 0;  // lagged: skipped offsets, inclusive
  bool recovered = false;     // resumed: every missed message follows
};

RoomEnvelope parse_room_envelope(std::string_view json);

// {"join_room":{"room_id":"ROOM"}}
std::string join_envelope(std::string_view room);

// {"resume":{"token":"TOKEN","rooms":{"ROOM":{"offset":OFFSET,"epoch":EPOCH}}}}: the session of
// `token` back, in `room`, with every message after `offset` (docs/protocol.md).
std::string resume_envelope(std::string_view token, std::string_view room, uint64_t offset,
                            uint64_t epoch);

// What a load publisher writes at the start of the content: "t=SEND_NS,p=PUBLISHER,s=SEQ;",
// then '.' up to the content size.
struct ContentStamp {
  int64_t send_ns = 0;  // monotonic, relative to the run's epoch
  uint32_t publisher = 0;
  uint64_t seq = 0;
};

bool parse_content_stamp(std::string_view content, ContentStamp* out);

// The size of a message envelope to `room` whose content is `content_size` bytes (or the
// stamp, if longer).
size_t message_envelope_size(std::string_view room, size_t content_size, const ContentStamp& s);
// Writes {"message":{"target":"ROOM","content":"STAMP...."}} into `out`, which holds
// message_envelope_size() bytes; returns the bytes written.
size_t write_message_envelope(char* out, std::string_view room, size_t content_size,
                              const ContentStamp& stamp);

// Joins the spans of one WebSocket message. A message that arrives whole in one span is
// handed back without copying; otherwise its parts are copied into a buffer kept (and reused)
// for the connection.
class MessageAssembler {
 public:
  // Feeds one span; returns true when `last` completed a message, now in *message (valid
  // until the next feed()).
  bool feed(std::span<const char> data, bool last, std::string_view* message);
  // Forgets a message cut short (its connection ended).
  void reset() {
    buffer_.clear();
    partial_ = false;
  }

 private:
  std::string buffer_;
  bool partial_ = false;
};

}  // namespace weir::load
