// tools/load/room_offsets.cc — the offset rules.
#include "tools/load/room_offsets.h"

namespace weir::load {

void OffsetTracker::joined(uint64_t offset, uint64_t epoch) {
  joined_ = true;
  join_offset_ = offset;
  epoch_ = epoch;
  next_ = offset + 1;
}

OffsetTracker::Arrival OffsetTracker::on_message(uint64_t offset, uint64_t epoch) {
  if (!joined_) return Arrival::kNotJoined;
  if (epoch != epoch_) {
    // Offsets of a new epoch start over; what was owed before cannot be compared with them.
    epoch_changes_++;
    violations_++;
    epoch_ = epoch;
    next_ = offset + 1;
    received_++;
    return Arrival::kGap;
  }
  if (offset == next_) {
    next_++;
    received_++;
    return Arrival::kInOrder;
  }
  violations_++;
  if (offset < next_) {  // a duplicate or a late one: not counted as received
    duplicates_++;
    return Arrival::kBackwards;
  }
  gap_messages_ += offset - next_;
  next_ = offset + 1;
  received_++;
  return Arrival::kGap;
}

void OffsetTracker::on_lagged(uint64_t from, uint64_t to) {
  if (to < from) return;
  skipped_ += to - from + 1;
  if (to + 1 > next_) next_ = to + 1;
}

}  // namespace weir::load
