// tools/load/room_offsets.h — loss and order accounting for one member of one room.
//
// A room numbers its messages: every member that joined at offset J must then receive J+1,
// J+2, ... in that order (one total order per room). The tracker compares what arrives with
// that promise: an offset that is not the previous one plus one is an order violation (a gap
// or a step back); a `lagged` notice (--slow-consumer skip) announces a skipped range, which
// is loss but not a violation. Loss is only known at the end, against the room's last offset
// (the highest any member saw): expected = last - J, lost = expected - received.
//
// A member that resumes its session on a new connection keeps its tracker: the server replays
// what it missed from its last offset on, so the rules above hold across the reconnect, and a
// replayed offset it had already processed shows as a duplicate.
//
// Thread-safety: none; a plain value owned by one connection on one reactor thread.
#pragma once

#include <cstdint>

namespace weir::load {

class OffsetTracker {
 public:
  enum class Arrival : uint8_t { kInOrder, kGap, kBackwards, kNotJoined };

  // The room confirmed the join at `offset`: the next message expected is offset + 1.
  void joined(uint64_t offset, uint64_t epoch);
  // A message of the room arrived. Only messages above what was already seen count as
  // received; a different epoch (the room was recreated) is counted and starts over.
  Arrival on_message(uint64_t offset, uint64_t epoch);
  // A lagged notice: offsets [from, to] were skipped for this member.
  void on_lagged(uint64_t from, uint64_t to);

  bool is_joined() const { return joined_; }
  uint64_t join_offset() const { return join_offset_; }
  uint64_t last_offset() const { return next_ - 1; }  // highest offset seen (join offset at first)
  uint64_t epoch() const { return epoch_; }
  uint64_t received() const { return received_; }
  uint64_t order_violations() const { return violations_; }
  uint64_t gap_messages() const { return gap_messages_; }  // missing without a notice
  // Offsets at or below one already seen: a duplicate, or one that came after a later one.
  uint64_t duplicates() const { return duplicates_; }
  uint64_t skipped() const { return skipped_; }  // announced by lagged notices
  uint64_t epoch_changes() const { return epoch_changes_; }

  // Deliveries this member owed, and did not get, given the room's last offset.
  uint64_t expected(uint64_t room_last) const {
    return joined_ && room_last > join_offset_ ? room_last - join_offset_ : 0;
  }
  uint64_t lost(uint64_t room_last) const {
    uint64_t e = expected(room_last);
    return e > received_ ? e - received_ : 0;
  }

 private:
  bool joined_ = false;
  uint64_t join_offset_ = 0;
  uint64_t epoch_ = 0;
  uint64_t next_ = 1;
  uint64_t received_ = 0;
  uint64_t violations_ = 0;
  uint64_t gap_messages_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t skipped_ = 0;
  uint64_t epoch_changes_ = 0;
};

}  // namespace weir::load
