// Fuzzes JWT verification (ws/jwt.h) with arbitrary tokens: must never crash, every refusal has
// a known reason and a reason text that is valid UTF-8 (it goes out in a 401 body and in text
// frames), nothing unsigned is ever accepted, and base64url round-trips.
#include <simdjson.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "ws/jwt.h"

namespace {

void check(bool ok) {
  if (!ok) abort();
}

const weir::ws::JwtKeySet& keys() {
  static weir::ws::JwtKeySet* set = [] {
    auto* k = new weir::ws::JwtKeySet;
    std::string error;
    check(k->add_hmac_secret("fuzzing-secret-fuzzing-secret-32+", "", &error));
    return k;
  }();
  return *set;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  weir::ws::JwtResult r = keys().verify(input, 1'800'000'000, 30);
  check(weir::ws::jwt_error_name(r.error) != "?");
  // A random input cannot carry a valid HMAC-SHA256 under the secret.
  check(!r.ok());
  check(simdjson::validate_utf8(r.reason.data(), r.reason.size()) && !r.reason.empty());

  std::string decoded;
  if (weir::ws::base64url_decode(input, &decoded))
    check(weir::ws::base64url_encode(decoded) == input);
  std::string raw, der;
  if (weir::ws::ecdsa_der_to_raw(input, &raw)) check(raw.size() == 64);
  if (size == 64) weir::ws::ecdsa_raw_to_der(input, &der);
  return 0;
}
