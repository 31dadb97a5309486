// cluster/room_acl.cc — room ACL patterns.
#include "cluster/room_acl.h"

namespace weir::cluster {
namespace {

// At most `max` bytes of `s`, cut on a UTF-8 boundary (the error goes out in JSON).
std::string excerpt(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  while (max > 0 && (static_cast<unsigned char>(s[max]) & 0xC0) == 0x80) --max;
  return std::string(s.substr(0, max)) + "...";
}

}  // namespace

RoomAcl RoomAcl::allow_all() {
  RoomAcl acl;
  acl.subscribe_ = {"*"};
  acl.publish_ = {"*"};
  return acl;
}

bool RoomAcl::valid_pattern(std::string_view pattern) {
  if (pattern.empty()) return false;
  size_t star = pattern.find('*');
  return star == std::string_view::npos || star == pattern.size() - 1;
}

bool RoomAcl::pattern_matches(std::string_view pattern, std::string_view room_id) {
  if (pattern.empty() || pattern.back() != '*') return pattern == room_id;
  std::string_view prefix = pattern.substr(0, pattern.size() - 1);
  return room_id.size() > prefix.size() && room_id.substr(0, prefix.size()) == prefix;
}

bool RoomAcl::compile(const std::vector<std::string>& subscribe,
                      const std::vector<std::string>& publish, RoomAcl* out, std::string* error) {
  for (const auto* list : {&subscribe, &publish}) {
    for (const std::string& p : *list) {
      if (valid_pattern(p)) continue;
      *error = "room pattern \"" + excerpt(p, 64) +
               "\" is not valid: a room id, optionally ending in one *";
      return false;
    }
  }
  out->subscribe_ = subscribe;
  out->publish_ = publish;
  return true;
}

bool RoomAcl::matches(const std::vector<std::string>& patterns, std::string_view room_id) {
  for (const std::string& p : patterns)
    if (pattern_matches(p, room_id)) return true;
  return false;
}

}  // namespace weir::cluster
