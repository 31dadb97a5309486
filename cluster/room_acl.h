// cluster/room_acl.h — which rooms a member may join (subscribe) and publish to, from the
// `rooms` claim of its token: {"subscribe": [patterns], "publish": [patterns]}.
//
// A pattern is a room id, matched exactly, or a prefix followed by one `*` at its very end,
// which matches one or more characters of any kind (dots included): `chat.*` matches
// `chat.general` and `chat.eu.paris`, not `chat.` nor `chat`; `*` alone matches every room.
// A `*` anywhere else makes the pattern invalid (the token is refused as invalid_claims), so a
// typo never silently grants or denies.
//
// Thread-safety: a plain value; immutable after compile().
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace weir::cluster {

class RoomAcl {
 public:
  // Every right on every room: connections without a token (--auth=off, or optional).
  static RoomAcl allow_all();
  // From the claim's lists. False with *error naming the first invalid pattern.
  static bool compile(const std::vector<std::string>& subscribe,
                      const std::vector<std::string>& publish, RoomAcl* out, std::string* error);

  bool may_join(std::string_view room_id) const { return matches(subscribe_, room_id); }
  bool may_publish(std::string_view room_id) const { return matches(publish_, room_id); }

  // True when `pattern` is a valid pattern; `room_id` matches it.
  static bool valid_pattern(std::string_view pattern);
  static bool pattern_matches(std::string_view pattern, std::string_view room_id);

 private:
  static bool matches(const std::vector<std::string>& patterns, std::string_view room_id);
  std::vector<std::string> subscribe_;
  std::vector<std::string> publish_;
};

}  // namespace weir::cluster
