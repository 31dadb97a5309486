// net/tls_context.cc — SSL_CTX construction and reload.
#include "net/tls_context.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

namespace weir::net {

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

SSL_CTX* TlsContext::build(const std::string& cert_file, const std::string& key_file, std::string* error) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) {
    *error = "SSL_CTX_new: " + openssl_error_string();
    return nullptr;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // Partial writes and moving buffers: our ciphertext goes through memory BIOs anyway.
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    *error = "certificate " + cert_file + ": " + openssl_error_string();
    SSL_CTX_free(ctx);
    return nullptr;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    *error = "private key " + key_file + ": " + openssl_error_string();
    SSL_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

std::unique_ptr<TlsContext> TlsContext::create(const std::string& cert_file, const std::string& key_file,
                                               std::string* error) {
  std::unique_ptr<TlsContext> context(new TlsContext(cert_file, key_file));
  context->ctx_ = build(cert_file, key_file, error);
  if (!context->ctx_) return nullptr;
  return context;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

SSL* TlsContext::new_ssl() {
  std::lock_guard lock(mutex_);
  return SSL_new(ctx_);
}

bool TlsContext::reload(std::string* error) {
  SSL_CTX* fresh = build(cert_file_, key_file_, error);
  if (!fresh) return false;
  std::lock_guard lock(mutex_);
  SSL_CTX_free(ctx_);  // open connections hold their own references
  ctx_ = fresh;
  return true;
}

}  // namespace weir::net
