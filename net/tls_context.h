// net/tls_context.h — the server's OpenSSL context: certificate, key, protocol versions.
//
// reload() builds a fresh SSL_CTX from the same files and swaps it in: connections accepted
// afterwards use the new certificate, open ones keep theirs (SSL objects hold a reference to
// the context they were made from), so a certificate rotation drops nobody.
//
// Thread-safety: new_ssl() and reload() may be called from any thread.
#pragma once

#include <memory>
#include <mutex>
#include <string>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace weir::net {

class TlsContext {
 public:
  // Loads `cert_file` (PEM chain) and `key_file`; nullptr with a reason on failure.
  static std::unique_ptr<TlsContext> create(const std::string& cert_file, const std::string& key_file,
                                            std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // A server-side SSL object from the current context. Any thread.
  SSL* new_ssl();
  // Re-reads the certificate and key; on failure the old ones stay. Any thread.
  bool reload(std::string* error);

 private:
  TlsContext(std::string cert_file, std::string key_file) : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {}
  static SSL_CTX* build(const std::string& cert_file, const std::string& key_file, std::string* error);

  std::string cert_file_, key_file_;
  std::mutex mutex_;  // guards ctx_ (taken per accepted connection and per reload only)
  SSL_CTX* ctx_ = nullptr;
};

// The last OpenSSL error as text (drains the thread's error queue).
std::string openssl_error_string();

}  // namespace weir::net
