// ws/jwt.cc — JWS compact verification: segments, base64url, header and claims (simdjson
// On-Demand), signatures (OpenSSL EVP), time checks.
#include "ws/jwt.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

namespace weir::ws {
namespace {

namespace od = simdjson::ondemand;

constexpr size_t kMaxTokenBytes = 8192;
constexpr size_t kMaxSubBytes = 128;
constexpr size_t kMaxPatterns = 256;  // per right
constexpr size_t kMaxAudiences = 64;
constexpr size_t kMinHmacSecretBytes = 32;
constexpr int kMinRsaBits = 2048;

struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

int base64url_value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// At most `max` bytes of `s`, cut on a UTF-8 boundary: reasons go out in JSON and text frames.
std::string excerpt(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  while (max > 0 && (static_cast<unsigned char>(s[max]) & 0xC0) == 0x80) --max;
  return std::string(s.substr(0, max)) + "...";
}

JwtResult fail(JwtError error, std::string reason) {
  JwtResult r;
  r.error = error;
  r.reason = std::move(reason);
  return r;
}

// One thread-local parser: handshakes on a reactor thread reuse its buffers.
od::parser& json_parser() {
  thread_local od::parser parser;
  return parser;
}

struct Header {
  std::string alg, kid;
  bool crit = false;
};

// The JOSE header: alg (required), kid; crit names extensions we do not understand, so a
// token that carries it is refused (RFC 7515 4.1.11).
bool parse_header(std::string_view json, Header* h, std::string* why) {
  simdjson::padded_string padded(json);
  od::document doc;
  od::object obj;
  if (json_parser().iterate(padded).get(doc) || doc.get_object().get(obj)) {
    *why = "the header is not a JSON object";
    return false;
  }
  bool seen_alg = false, seen_kid = false;
  for (auto field : obj) {
    std::string_view key, s;
    od::value v;
    if (field.unescaped_key().get(key) || field.value().get(v)) {
      *why = "the header is not valid JSON";
      return false;
    }
    if (key == "alg" || key == "kid") {
      bool& seen = key == "alg" ? seen_alg : seen_kid;
      if (seen || v.get_string().get(s)) {
        *why = "header." + std::string(key) + " must be one string";
        return false;
      }
      seen = true;
      (key == "alg" ? h->alg : h->kid).assign(s);
    } else if (key == "crit") {
      h->crit = true;
    }
  }
  if (!seen_alg) *why = "the header has no alg";
  return seen_alg;
}

// A NumericDate: a JSON number of seconds (fractions allowed, truncated).
bool read_numeric_date(od::value& v, int64_t* out) {
  double d = 0;
  if (v.get_double().get(d) || !std::isfinite(d) || d < 0 || d > 1e15) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

// An array of at most `max` strings.
bool read_strings(od::value& v, size_t max, std::vector<std::string>* out) {
  od::array arr;
  if (v.get_array().get(arr)) return false;
  for (auto element : arr) {
    std::string_view s;
    if (element.get_string().get(s) || out->size() >= max) return false;
    out->emplace_back(s);
  }
  return true;
}

// aud: one string, or an array of strings (RFC 7519 4.1.3).
bool read_audience(od::value& v, std::vector<std::string>* out) {
  od::json_type type;
  if (v.type().get(type)) return false;
  if (type != od::json_type::string) return read_strings(v, kMaxAudiences, out);
  std::string_view s;
  if (v.get_string().get(s)) return false;
  out->emplace_back(s);
  return true;
}

bool read_rooms(od::value& v, JwtClaims* c, std::string* why) {
  od::object obj;
  if (v.get_object().get(obj)) {
    *why = "rooms must be an object {subscribe, publish}";
    return false;
  }
  for (auto field : obj) {
    std::string_view key;
    od::value child;
    if (field.unescaped_key().get(key) || field.value().get(child)) {
      *why = "rooms is not valid JSON";
      return false;
    }
    if (key != "subscribe" && key != "publish") continue;
    std::vector<std::string>* list = key == "subscribe" ? &c->subscribe : &c->publish;
    if (!list->empty() || !read_strings(child, kMaxPatterns, list)) {
      *why = "rooms." + std::string(key) + " must be one array of at most 256 strings";
      return false;
    }
  }
  c->has_rooms = true;
  return true;
}

bool valid_sub(std::string_view sub) {
  if (sub.empty() || sub.size() > kMaxSubBytes) return false;
  for (char ch : sub)
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) return false;
  return true;
}

// The claims, read only once the signature verified. A claim we read that appears twice is
// refused (RFC 7519 4: a parser either rejects duplicates or takes the last; two parsers taking
// different ones would disagree about who the token is for). iss and aud are read only when
// `required` names them.
JwtError parse_claims(std::string_view json, const JwtRequirements& required, JwtClaims* c,
                      std::string* why) {
  simdjson::padded_string padded(json);
  od::document doc;
  od::object obj;
  if (json_parser().iterate(padded).get(doc) || doc.get_object().get(obj)) {
    *why = "the claims are not a JSON object";
    return JwtError::kMalformed;
  }
  bool seen_sub = false, seen_exp = false, seen_nbf = false, seen_rooms = false;
  bool seen_iss = false, seen_aud = false;
  for (auto field : obj) {
    std::string_view key, s;
    od::value v;
    if (field.unescaped_key().get(key) || field.value().get(v)) {
      *why = "the claims are not valid JSON";
      return JwtError::kMalformed;
    }
    bool* seen = key == "sub"     ? &seen_sub
                 : key == "exp"   ? &seen_exp
                 : key == "nbf"   ? &seen_nbf
                 : key == "rooms" ? &seen_rooms
                 : key == "iss"   ? (required.issuer.empty() ? nullptr : &seen_iss)
                 : key == "aud"   ? (required.audience.empty() ? nullptr : &seen_aud)
                                  : nullptr;
    if (!seen) continue;
    if (*seen) {
      *why = "claim " + std::string(key) + " appears twice";
      return JwtError::kInvalidClaims;
    }
    *seen = true;
    if (key == "sub") {
      if (v.get_string().get(s) || !valid_sub(s)) {
        *why = "sub must be a string of 1 to 128 bytes without control characters";
        return JwtError::kInvalidClaims;
      }
      c->sub.assign(s);
    } else if (key == "rooms") {
      if (!read_rooms(v, c, why)) return JwtError::kInvalidClaims;
    } else if (key == "iss") {
      if (v.get_string().get(s)) {
        *why = "iss must be a string";
        return JwtError::kInvalidClaims;
      }
      c->iss.assign(s);
    } else if (key == "aud") {
      if (!read_audience(v, &c->aud)) {
        *why = "aud must be a string or an array of at most 64 strings";
        return JwtError::kInvalidClaims;
      }
    } else if (!read_numeric_date(v, key == "exp" ? &c->exp : &c->nbf)) {
      *why = std::string(key) + " must be a number of seconds since the epoch";
      return JwtError::kInvalidClaims;
    }
  }
  if (!seen_sub || !seen_exp) {
    *why = seen_sub ? "the token has no exp (weir accepts expiring tokens only)"
                    : "the token has no sub";
    return JwtError::kInvalidClaims;
  }
  return JwtError::kOk;
}

// --jwt-issuer, --jwt-audience. A reason quotes what the token holds, never what is required.
JwtError check_required(const JwtClaims& c, const JwtRequirements& required, std::string* why) {
  if (!required.issuer.empty() && c.iss != required.issuer) {
    *why = c.iss.empty()
               ? "the token has no iss, and this server requires its issuer"
               : "iss \"" + excerpt(c.iss, 64) + "\" is not the issuer this server accepts";
    return JwtError::kWrongIssuer;
  }
  if (!required.audience.empty() &&
      std::find(c.aud.begin(), c.aud.end(), required.audience) == c.aud.end()) {
    *why = c.aud.empty() ? "the token has no aud, and this server requires its audience"
                         : "aud does not name this server's audience";
    return JwtError::kWrongAudience;
  }
  return JwtError::kOk;
}

bool alg_from_name(std::string_view name, JwtAlg* alg) {
  if (name == "HS256") return *alg = JwtAlg::kHS256, true;
  if (name == "RS256") return *alg = JwtAlg::kRS256, true;
  if (name == "ES256") return *alg = JwtAlg::kES256, true;
  return false;
}

// [KID=]PATH: a prefix before the first '=' is a kid when it holds no '/'.
void split_kid(std::string_view spec, std::string* kid, std::string* path) {
  size_t eq = spec.find('=');
  if (eq != std::string_view::npos && eq > 0 &&
      spec.substr(0, eq).find('/') == std::string_view::npos) {
    kid->assign(spec.substr(0, eq));
    path->assign(spec.substr(eq + 1));
  } else {
    kid->clear();
    path->assign(spec);
  }
}

bool read_file(const std::string& path, std::string* out, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    *error = "cannot read " + path;
    return false;
  }
  out->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  return true;
}

}  // namespace

std::string_view jwt_alg_name(JwtAlg alg) {
  switch (alg) {
    case JwtAlg::kHS256:
      return "HS256";
    case JwtAlg::kRS256:
      return "RS256";
    case JwtAlg::kES256:
      return "ES256";
  }
  return "?";
}

std::string_view jwt_error_name(JwtError error) {
  switch (error) {
    case JwtError::kOk:
      return "ok";
    case JwtError::kMalformed:
      return "malformed";
    case JwtError::kAlgNotAllowed:
      return "alg_not_allowed";
    case JwtError::kUnknownKid:
      return "unknown_kid";
    case JwtError::kBadSignature:
      return "bad_signature";
    case JwtError::kInvalidClaims:
      return "invalid_claims";
    case JwtError::kExpired:
      return "expired";
    case JwtError::kNotYetValid:
      return "not_yet_valid";
    case JwtError::kWrongIssuer:
      return "wrong_issuer";
    case JwtError::kWrongAudience:
      return "wrong_audience";
  }
  return "?";
}

// ---------------------------------------------------------------- base64url and ECDSA

bool base64url_decode(std::string_view text, std::string* out) {
  if (text.size() % 4 == 1) return false;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = base64url_value(c);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out->push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return (acc & ((1u << bits) - 1)) == 0;  // the unused bits of the last character
}

std::string base64url_encode(std::string_view data) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((data.size() * 4 + 2) / 3);
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : data) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(alphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(alphabet[(acc << (6 - bits)) & 63]);
  return out;
}

bool ecdsa_raw_to_der(std::string_view raw, std::string* der) {
  if (raw.size() != 64) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(raw.data());
  ECDSA_SIG* sig = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(p, 32, nullptr);
  BIGNUM* s = BN_bin2bn(p + 32, 32, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig, r, s) != 1) {
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return false;
  }
  unsigned char* out = nullptr;
  int n = i2d_ECDSA_SIG(sig, &out);
  ECDSA_SIG_free(sig);
  if (n <= 0) return false;
  der->assign(reinterpret_cast<char*>(out), static_cast<size_t>(n));
  OPENSSL_free(out);
  return true;
}

bool ecdsa_der_to_raw(std::string_view der, std::string* raw) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* sig = d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size()));
  if (!sig) return false;
  const BIGNUM *r = nullptr, *s = nullptr;
  ECDSA_SIG_get0(sig, &r, &s);
  unsigned char buf[64];
  bool ok = BN_bn2binpad(r, buf, 32) == 32 && BN_bn2binpad(s, buf + 32, 32) == 32;
  ECDSA_SIG_free(sig);
  if (ok) raw->assign(reinterpret_cast<char*>(buf), sizeof buf);
  return ok;
}

// ---------------------------------------------------------------- keys

struct JwtKeySet::Key {
  std::string kid;
  JwtAlg alg;
  std::string secret;  // HS256
  PkeyPtr pkey;        // RS256, ES256

  bool verifies(std::string_view input, std::string_view signature) const;
};

bool JwtKeySet::Key::verifies(std::string_view input, std::string_view signature) const {
  if (alg == JwtAlg::kHS256) {
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
              reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len))
      return false;
    return signature.size() == len && CRYPTO_memcmp(signature.data(), mac, len) == 0;
  }
  std::string der;
  if (alg == JwtAlg::kES256) {
    if (!ecdsa_raw_to_der(signature, &der)) return false;
    signature = der;
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestVerifyInit(ctx, nullptr, EVP_sha256(), nullptr, pkey.get()) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(signature.data()),
                             signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                             input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

JwtKeySet::JwtKeySet() = default;
JwtKeySet::~JwtKeySet() = default;

bool JwtKeySet::add_hmac_secret(std::string secret, std::string kid, std::string* error) {
  if (secret.size() < kMinHmacSecretBytes) {
    *error = "the HS256 secret must be at least 32 bytes (RFC 7518 3.2)";
    return false;
  }
  if (find_kid(kid) && !kid.empty()) {
    *error = "two keys with kid " + kid;
    return false;
  }
  auto key = std::make_unique<Key>();
  key->kid = std::move(kid);
  key->alg = JwtAlg::kHS256;
  key->secret = std::move(secret);
  keys_.push_back(std::move(key));
  return true;
}

bool JwtKeySet::add_public_key_pem(std::string_view pem, std::string kid, std::string* error) {
  if (!kid.empty() && find_kid(kid)) {
    *error = "two keys with kid " + kid;
    return false;
  }
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  PkeyPtr pkey(bio ? PEM_read_bio_PUBKEY(bio, nullptr, nullptr, nullptr) : nullptr);
  if (!pkey && bio) {  // perhaps a certificate
    BIO_reset(bio);
    if (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      pkey.reset(X509_get_pubkey(cert));
      X509_free(cert);
    }
  }
  BIO_free(bio);
  if (!pkey) {
    *error = "not a PEM public key or certificate";
    return false;
  }
  auto key = std::make_unique<Key>();
  switch (EVP_PKEY_get_base_id(pkey.get())) {
    case EVP_PKEY_RSA:
      if (EVP_PKEY_get_bits(pkey.get()) < kMinRsaBits) {
        *error = "RSA keys must have 2048 bits or more";
        return false;
      }
      key->alg = JwtAlg::kRS256;
      break;
    case EVP_PKEY_EC: {
      char group[64] = {};
      size_t len = 0;
      EVP_PKEY_get_group_name(pkey.get(), group, sizeof group, &len);
      if (std::strcmp(group, "prime256v1") != 0 && std::strcmp(group, "P-256") != 0) {
        *error = std::string("EC keys must be on P-256 (ES256), not ") + group;
        return false;
      }
      key->alg = JwtAlg::kES256;
      break;
    }
    default:
      *error = "only RSA (RS256) and EC P-256 (ES256) public keys are supported";
      return false;
  }
  key->kid = std::move(kid);
  key->pkey = std::move(pkey);
  keys_.push_back(std::move(key));
  return true;
}

const JwtKeySet::Key* JwtKeySet::find_kid(std::string_view kid) const {
  for (const auto& k : keys_)
    if (k->kid == kid) return k.get();
  return nullptr;
}

JwtResult JwtKeySet::verify(std::string_view token, int64_t now_s, int64_t leeway_s,
                            const JwtRequirements& required) const {
  if (token.size() > kMaxTokenBytes) return fail(JwtError::kMalformed, "the token is over 8 KiB");
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return fail(JwtError::kMalformed, "a JWT is three base64url segments joined by dots");
  std::string header_json, signature;
  if (!base64url_decode(token.substr(0, dot1), &header_json) ||
      !base64url_decode(token.substr(dot2 + 1), &signature))
    return fail(JwtError::kMalformed, "a segment is not base64url");
  Header header;
  std::string why;
  if (!parse_header(header_json, &header, &why)) return fail(JwtError::kMalformed, why);
  if (header.crit) return fail(JwtError::kMalformed, "crit header extensions are not supported");
  JwtAlg alg;
  if (!alg_from_name(header.alg, &alg))
    return fail(JwtError::kAlgNotAllowed,
                "alg " + excerpt(header.alg, 16) + " is not accepted (HS256, RS256, ES256 only)");

  // The key decides the algorithm: a token may only be checked with a key of its own alg.
  std::string_view input = token.substr(0, dot2);
  bool verified = false;
  if (!header.kid.empty()) {
    const Key* key = find_kid(header.kid);
    if (!key) return fail(JwtError::kUnknownKid, "no key has kid " + excerpt(header.kid, 64));
    if (key->alg != alg)
      return fail(JwtError::kAlgNotAllowed, "kid " + excerpt(header.kid, 64) + " is a " +
                                                std::string(jwt_alg_name(key->alg)) + " key");
    verified = key->verifies(input, signature);
  } else {
    bool any = false;
    for (const auto& key : keys_) {
      if (key->alg != alg) continue;
      any = true;
      if ((verified = key->verifies(input, signature))) break;
    }
    if (!any) return fail(JwtError::kAlgNotAllowed, "no " + header.alg + " key is configured");
  }
  if (!verified) return fail(JwtError::kBadSignature, "the signature does not verify");

  JwtResult result;
  std::string claims_json;
  if (!base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1), &claims_json))
    return fail(JwtError::kMalformed, "the claims segment is not base64url");
  JwtError e = parse_claims(claims_json, required, &result.claims, &why);
  if (e == JwtError::kOk) e = check_required(result.claims, required, &why);
  if (e != JwtError::kOk) return fail(e, why);
  result.claims.kid = std::move(header.kid);
  result.claims.alg = alg;
  const JwtClaims& c = result.claims;
  if (now_s >= c.exp + leeway_s)
    return fail(JwtError::kExpired, "the token expired " + std::to_string(now_s - c.exp) +
                                        " s ago (leeway " + std::to_string(leeway_s) + " s)");
  if (c.nbf && now_s + leeway_s < c.nbf)
    return fail(JwtError::kNotYetValid, "the token is valid only in " +
                                            std::to_string(c.nbf - now_s) + " s (leeway " +
                                            std::to_string(leeway_s) + " s)");
  return result;
}

// ---------------------------------------------------------------- loading and reloading

std::shared_ptr<const JwtKeySet> load_jwt_keys(const JwtKeyFiles& files, std::string* error) {
  auto keys = std::make_shared<JwtKeySet>();
  std::string kid, path, bytes;
  if (!files.secret_file.empty()) {
    split_kid(files.secret_file, &kid, &path);
    if (!read_file(path, &bytes, error)) return nullptr;
    while (!bytes.empty() && (bytes.back() == '\n' || bytes.back() == '\r')) bytes.pop_back();
    if (!keys->add_hmac_secret(std::move(bytes), kid, error)) {
      *error = "--jwt-secret-file " + path + ": " + *error;
      return nullptr;
    }
  }
  for (const std::string& spec : files.public_keys) {
    split_kid(spec, &kid, &path);
    if (!read_file(path, &bytes, error)) return nullptr;
    if (!keys->add_public_key_pem(bytes, kid, error)) {
      *error = "--jwt-public-key " + path + ": " + *error;
      return nullptr;
    }
  }
  return keys;
}

std::shared_ptr<const JwtKeySet> JwtKeyRing::current() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return keys_;
}

void JwtKeyRing::replace(std::shared_ptr<const JwtKeySet> keys) {
  std::lock_guard<std::mutex> lock(mutex_);
  keys_.swap(keys);
  // The old set (now in `keys`) is released after the lock, by its last user.
}

}  // namespace weir::ws
