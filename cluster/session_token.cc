// cluster/session_token.cc — HMAC-signed session tokens.
#include "cluster/session_token.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace weir::cluster {
namespace {

constexpr size_t kKeyBytes = 32;

std::string to_hex(const unsigned char* bytes, size_t n) {
  static const char digits[] = "0123456789abcdef";
  std::string out(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 15];
  }
  return out;
}

}  // namespace

bool SessionTokens::load_key(const std::string& path, std::string* key, std::string* error) {
  unsigned char fresh[kKeyBytes];
  if (RAND_bytes(fresh, sizeof fresh) != 1) {
    *error = "no randomness for the session key";
    return false;
  }
  if (path.empty()) {
    key->assign(reinterpret_cast<char*>(fresh), sizeof fresh);
    return true;
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    ::close(fd);
    if (n < 16) {
      *error = "session secret file " + path + " holds fewer than 16 bytes";
      return false;
    }
    key->assign(buf, static_cast<size_t>(n));
    return true;
  }
  if (errno != ENOENT) {
    *error = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  std::string hex = to_hex(fresh, sizeof fresh) + "\n";
  fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0 || ::write(fd, hex.data(), hex.size()) != static_cast<ssize_t>(hex.size())) {
    *error = "cannot create " + path + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return false;
  }
  ::close(fd);
  key->assign(hex);
  return true;
}

std::string SessionTokens::mac(std::string_view signed_part) const {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key_.data(), static_cast<int>(key_.size()),
       reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), out, &len);
  return to_hex(out, len);
}

std::string SessionTokens::issue(std::string_view member_id, int64_t expires_ms) const {
  std::string token(member_id);
  token += '.';
  token += std::to_string(expires_ms);
  std::string signature = mac(token);
  token += '.';
  token += signature;
  return token;
}

SessionTokens::Check SessionTokens::verify(std::string_view token, int64_t now_ms,
                                           std::string* member_id) const {
  size_t last = token.rfind('.');
  if (last == std::string_view::npos || last == 0) return Check::kInvalid;
  size_t middle = token.rfind('.', last - 1);
  if (middle == std::string_view::npos || middle == 0) return Check::kInvalid;
  std::string_view signed_part = token.substr(0, last);
  std::string expected = mac(signed_part);
  std::string_view given = token.substr(last + 1);
  if (given.size() != expected.size() ||
      CRYPTO_memcmp(given.data(), expected.data(), expected.size()) != 0)
    return Check::kInvalid;
  int64_t expires = 0;
  std::string_view digits = token.substr(middle + 1, last - middle - 1);
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), expires);
  if (ec != std::errc() || end != digits.data() + digits.size()) return Check::kInvalid;
  if (member_id) member_id->assign(token.substr(0, middle));
  return expires <= now_ms ? Check::kExpired : Check::kOk;
}

}  // namespace weir::cluster
