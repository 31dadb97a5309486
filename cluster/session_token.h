// cluster/session_token.h — resumable session tokens: "<member_id>.<expires_ms>.<mac>", the
// mac an HMAC-SHA256 over the first two parts (hex). The store holds what a session carries
// (rooms, offsets); the signature lets a node refuse a forged or expired token without asking
// the store, and a key shared between nodes lets any of them resume any session.
//
// Thread-safety: immutable after construction; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace weir::cluster {

class SessionTokens {
 public:
  enum class Check : uint8_t { kOk, kInvalid, kExpired };

  explicit SessionTokens(std::string key) : key_(std::move(key)) {}

  // The key in `path`; when the file is missing, a new random key written there (mode 0600).
  // An empty path gives a random key that dies with the process. False with *error on failure.
  static bool load_key(const std::string& path, std::string* key, std::string* error);

  std::string issue(std::string_view member_id, int64_t expires_ms) const;
  Check verify(std::string_view token, int64_t now_ms, std::string* member_id) const;

 private:
  std::string mac(std::string_view signed_part) const;
  std::string key_;
};

}  // namespace weir::cluster
