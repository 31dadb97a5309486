// Base64 via OpenSSL for encoding; decoding is our own because EVP_DecodeBlock accepts
// whitespace and miscounts padding, and the handshake must reject malformed keys.
#include "ws/base64.h"

#include <openssl/evp.h>

#include <cstdint>

namespace weir::ws {
namespace {

// Sextet value of a base64 character, or -1.
int sextet(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

}  // namespace

std::string base64_encode(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return out;
}

bool base64_decode(std::string_view text, std::string* out) {
  if (text.size() % 4 != 0) return false;
  size_t padding = 0;
  if (!text.empty() && text.back() == '=') padding = text[text.size() - 2] == '=' ? 2 : 1;
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    uint32_t group = 0;
    for (size_t j = 0; j < 4; ++j) {
      bool pad = last && j >= 4 - padding;
      int v = pad ? 0 : sextet(text[i + j]);
      if (v < 0) return false;
      group = (group << 6) | static_cast<uint32_t>(v);
    }
    size_t bytes = last ? 3 - padding : 3;
    for (size_t k = 0; k < bytes; ++k) out->push_back(static_cast<char>(group >> (16 - 8 * k)));
  }
  return true;
}

}  // namespace weir::ws
