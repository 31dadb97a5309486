// net/tls_context.h — an OpenSSL context: certificate, key, protocol versions and, for mutual
// TLS, the CA that peers' certificates must chain to.
//
// Two kinds:
//   - a server context (create(cert, key)): the public listener's; clients are asked for no
//     certificate.
//   - a mutual context (create(TlsConfig) with a CA): every peer, in either role, must present
//     a certificate that chains to the CA; a connection dialled with it is a TLS client that
//     presents our certificate, one accepted with it a TLS server that requires the client's
//     (SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT). Only the chain is verified, never a
//     host name: the users of this (cluster peer links) address peers by IP, and the CA is
//     their trust boundary.
// Both: TLS 1.2 at least (1.3 is negotiated when both ends have it), no compression, no
// renegotiation.
//
// reload() builds a fresh SSL_CTX from the same files and swaps it in: connections made
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

struct TlsConfig {
  std::string cert_file;  // PEM chain: our certificate first
  std::string key_file;   // PEM private key of that certificate
  std::string ca_file;    // PEM CA bundle; set: mutual TLS (see above). Empty: a server context
};

class TlsContext {
 public:
  // Loads `cert_file` (PEM chain) and `key_file`: a server context. nullptr with a reason on
  // failure.
  static std::unique_ptr<TlsContext> create(const std::string& cert_file,
                                            const std::string& key_file, std::string* error);
  // A server context, or a mutual one when config.ca_file is set. nullptr with a reason.
  static std::unique_ptr<TlsContext> create(const TlsConfig& config, std::string* error);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // An SSL object from the current context; the caller picks its role (TlsSession does). A
  // server context can only accept. Any thread.
  SSL* new_ssl();
  // Re-reads the certificate, key and CA; on failure the old ones stay. Any thread.
  bool reload(std::string* error);
  // A mutual context: it can dial as well as accept, and verifies every peer.
  bool mutual() const { return !config_.ca_file.empty(); }

 private:
  explicit TlsContext(TlsConfig config) : config_(std::move(config)) {}
  static SSL_CTX* build(const TlsConfig& config, std::string* error);

  const TlsConfig config_;
  std::mutex mutex_;  // guards ctx_ (taken per connection and per reload only)
  SSL_CTX* ctx_ = nullptr;
};

// The last OpenSSL error as text (drains the thread's error queue).
std::string openssl_error_string();

}  // namespace weir::net
