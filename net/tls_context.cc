// net/tls_context.cc — SSL_CTX construction and reload.
#include "net/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace weir::net {
namespace {

constexpr unsigned char kSessionIdContext[] = "weir";

// Peers must present a certificate chaining to `ca_file`, in either role. No resumption: links
// are long-lived, and a full handshake re-checks every certificate against the current CA.
bool require_peer_certificates(SSL_CTX* ctx, const std::string& ca_file, std::string* error) {
  if (SSL_CTX_load_verify_locations(ctx, ca_file.c_str(), nullptr) != 1) {
    *error = "CA " + ca_file + ": " + openssl_error_string();
    return false;
  }
  // The CertificateRequest names the CA, so a client holding several certificates picks ours.
  STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(ca_file.c_str());
  if (!names) {
    *error = "CA " + ca_file + ": no certificate in it";
    return false;
  }
  SSL_CTX_set_client_CA_list(ctx, names);
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  SSL_CTX_set_session_id_context(ctx, kSessionIdContext, sizeof kSessionIdContext - 1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  return true;
}

}  // namespace

std::string openssl_error_string() {
  std::string text;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text.empty() ? "unknown TLS error" : text;
}

SSL_CTX* TlsContext::build(const TlsConfig& config, std::string* error) {
  bool mutual = !config.ca_file.empty();
  SSL_CTX* ctx = SSL_CTX_new(mutual ? TLS_method() : TLS_server_method());
  if (!ctx) {
    *error = "SSL_CTX_new: " + openssl_error_string();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Partial writes and moving buffers: our ciphertext goes through memory BIOs anyway.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(ctx, config.cert_file.c_str()) != 1) {
    *error = "certificate " + config.cert_file + ": " + openssl_error_string();
    SSL_CTX_free(ctx);
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, config.key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    *error = "private key " + config.key_file + ": " + openssl_error_string();
    SSL_CTX_free(ctx);
    return nullptr;
  }
  if (mutual && !require_peer_certificates(ctx, config.ca_file, error)) {
    SSL_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

std::unique_ptr<TlsContext> TlsContext::create(const std::string& cert_file,
                                               const std::string& key_file, std::string* error) {
  return create(TlsConfig{cert_file, key_file, {}}, error);
}

std::unique_ptr<TlsContext> TlsContext::create(const TlsConfig& config, std::string* error) {
  std::unique_ptr<TlsContext> context(new TlsContext(config));
  context->ctx_ = build(context->config_, error);
  if (!context->ctx_) return nullptr;
  return context;
}

TlsContext::~TlsContext() {
  SSL_CTX_free(ctx_);
}

SSL* TlsContext::new_ssl() {
  std::lock_guard lock(mutex_);
  return SSL_new(ctx_);
}

bool TlsContext::reload(std::string* error) {
  SSL_CTX* fresh = build(config_, error);
  if (!fresh) return false;
  std::lock_guard lock(mutex_);
  SSL_CTX_free(ctx_);  // open connections hold their own references
  ctx_ = fresh;
  return true;
}

}  // namespace weir::net
