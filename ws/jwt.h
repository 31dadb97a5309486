// ws/jwt.h — JSON Web Token (JWS compact serialisation, RFC 7515/7519) verification with
// OpenSSL: HS256 with a shared secret, RS256 and ES256 with public keys, several keys told
// apart by `kid`.
//
// The key decides the algorithm, never the token: an HMAC secret verifies HS256 only, an RSA
// key RS256 only, a P-256 key ES256 only. So `alg: none`, an RS256 token checked against the
// HMAC secret, and an HS256 token "signed" with a public key's PEM bytes as its secret (the
// classic algorithm-confusion attack) are all refused.
//
// Key lookup: a token with a `kid` is checked against the key of that kid only (unknown_kid
// when there is none; alg_not_allowed when that key is of another type); a token without a
// `kid` against every key of its algorithm.
//
// Claims read: `sub` (required, 1..128 bytes, no control characters), `exp` (required),
// `nbf` (optional), and `rooms`: {"subscribe": [patterns], "publish": [patterns]} (optional,
// kept as strings: the rooms layer gives them meaning). exp and nbf are checked with a leeway.
// `iss` and `aud` are read only when a JwtRequirements asks for them (--jwt-issuer,
// --jwt-audience): iss must then equal the issuer, and aud be the audience or an array holding
// it (RFC 7519 4.1.1, 4.1.3); otherwise they are ignored, whatever their type.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace weir::ws {

enum class JwtAlg : uint8_t { kHS256, kRS256, kES256 };
std::string_view jwt_alg_name(JwtAlg alg);

enum class JwtError : uint8_t {
  kOk,
  kMalformed,      // not three base64url segments, or a header/claims that is not JSON
  kAlgNotAllowed,  // none, an unknown alg, or no key of the token's alg (confusion included)
  kUnknownKid,     // the token's kid names no key
  kBadSignature,   // the signature does not verify with the key(s) it may use
  kInvalidClaims,  // sub or exp missing, a claim of the wrong type
  kExpired,        // now > exp + leeway
  kNotYetValid,    // now < nbf - leeway
  kWrongIssuer,    // an issuer is required and iss is missing or another
  kWrongAudience,  // an audience is required and aud is missing or does not hold it
};
// "malformed", "alg_not_allowed", "unknown_kid", "bad_signature", "invalid_claims",
// "expired", "not_yet_valid", "wrong_issuer", "wrong_audience" ("ok" for kOk).
std::string_view jwt_error_name(JwtError error);

struct JwtClaims {
  std::string sub;
  int64_t exp = 0;  // seconds since the epoch
  int64_t nbf = 0;  // 0: absent
  bool has_rooms = false;
  std::vector<std::string> subscribe;  // rooms.subscribe patterns
  std::vector<std::string> publish;    // rooms.publish patterns
  std::string iss;                     // read only when an issuer is required
  std::vector<std::string> aud;        // read only when an audience is required
  std::string kid;                     // the header's, empty when absent
  JwtAlg alg = JwtAlg::kHS256;
};

struct JwtResult {
  JwtError error = JwtError::kOk;
  std::string reason;  // one human-readable line when error != kOk
  JwtClaims claims;
  bool ok() const { return error == JwtError::kOk; }
};

// Registered claims a deployment requires of every token; an empty one is not checked.
struct JwtRequirements {
  std::string audience;  // --jwt-audience: aud is it, or an array holding it
  std::string issuer;    // --jwt-issuer: iss equals it
};

// The keys tokens are verified with. Built once (load or add_*), then immutable and shared.
//
// Thread-safety: add_* before sharing; verify() from any thread at once.
class JwtKeySet {
 public:
  JwtKeySet();
  ~JwtKeySet();
  JwtKeySet(const JwtKeySet&) = delete;
  JwtKeySet& operator=(const JwtKeySet&) = delete;

  // An HS256 secret (raw bytes, at least 32 bytes: RFC 7518 3.2 asks for the hash size).
  bool add_hmac_secret(std::string secret, std::string kid, std::string* error);
  // A PEM public key (SubjectPublicKeyInfo or an X.509 certificate): RSA of 2048 bits or more
  // (RS256) or EC P-256 (ES256).
  bool add_public_key_pem(std::string_view pem, std::string kid, std::string* error);
  size_t size() const { return keys_.size(); }
  bool empty() const { return keys_.empty(); }

  // Verifies `token` at `now_s` (seconds since the epoch), exp and nbf within `leeway_s`, and
  // the claims `required` asks for.
  JwtResult verify(std::string_view token, int64_t now_s, int64_t leeway_s,
                   const JwtRequirements& required = {}) const;

 private:
  struct Key;
  const Key* find_kid(std::string_view kid) const;
  std::vector<std::unique_ptr<Key>> keys_;
};

// Where the keys come from: `--jwt-secret-file [KID=]PATH`, `--jwt-public-key [KID=]PATH`.
struct JwtKeyFiles {
  std::string secret_file;               // [KID=]PATH or empty; trailing newlines are dropped
  std::vector<std::string> public_keys;  // [KID=]PATH each
};

// Reads every file named in `files` into a new key set; null with *error when one cannot be
// read or parsed (then the caller keeps the keys it had).
std::shared_ptr<const JwtKeySet> load_jwt_keys(const JwtKeyFiles& files, std::string* error);

// The key set in use, replaced as a whole on reload: a verifier copies the pointer (under a
// short lock) and verifies without it, so a reload never waits for, nor breaks, a verification
// in progress; the old set is freed by its last user.
//
// Thread-safety: every method from any thread.
class JwtKeyRing {
 public:
  std::shared_ptr<const JwtKeySet> current() const;
  void replace(std::shared_ptr<const JwtKeySet> keys);

 private:
  mutable std::mutex mutex_;
  std::shared_ptr<const JwtKeySet> keys_;
};

// Base64url without padding (RFC 4648 section 5, as JWS uses it). Strict: no padding, no
// whitespace, and unused trailing bits must be zero. Appends to `out`.
bool base64url_decode(std::string_view text, std::string* out);
std::string base64url_encode(std::string_view data);

// ES256 signatures: JWS carries r||s (32 bytes each), OpenSSL wants DER. Both return false on
// a wrong size or encoding.
bool ecdsa_raw_to_der(std::string_view raw, std::string* der);
bool ecdsa_der_to_raw(std::string_view der, std::string* raw);

}  // namespace weir::ws
