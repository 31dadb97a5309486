// net/tls_session.cc — TLS over memory BIOs.
#include "net/tls_session.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>

#include "net/tls_context.h"

namespace weir::net {

TlsSession::TlsSession(SSL* ssl, Role role) : ssl_(ssl) {
  rbio_ = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  BIO_set_mem_eof_return(rbio_, -1);  // empty input means "want more", not EOF
  SSL_set_bio(ssl_, rbio_, wbio_);
  if (role == Role::kClient)
    SSL_set_connect_state(ssl_);
  else
    SSL_set_accept_state(ssl_);
}

TlsSession::~TlsSession() {
  SSL_free(ssl_);
}

void TlsSession::feed_ciphertext(const char* data, size_t len) {
  BIO_write(rbio_, data, static_cast<int>(len));
}

bool TlsSession::fail(const char* what, int ret) {
  int code = SSL_get_error(ssl_, ret);
  error_ = std::string(what) + ": ";
  if (code == SSL_ERROR_SYSCALL || code == SSL_ERROR_SSL)
    error_ += openssl_error_string();
  else
    error_ += "SSL error " + std::to_string(code);
  // "certificate verify failed" alone does not say what was wrong with the certificate.
  long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK)
    error_ += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
  return false;
}

TlsSession::Status TlsSession::handshake() {
  if (established_) return Status::kOk;
  ERR_clear_error();
  int ret = SSL_do_handshake(ssl_);
  if (ret == 1) {
    established_ = true;
    return Status::kOk;
  }
  int code = SSL_get_error(ssl_, ret);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return Status::kWantMore;
  fail("TLS handshake", ret);
  return Status::kError;
}

ssize_t TlsSession::read_plain(char* out, size_t cap) {
  ERR_clear_error();
  int ret = SSL_read(ssl_, out, static_cast<int>(std::min<size_t>(cap, 1 << 30)));
  if (ret > 0) return ret;
  int code = SSL_get_error(ssl_, ret);
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) return 0;
  if (code == SSL_ERROR_ZERO_RETURN) {
    peer_closed_ = true;
    return 0;
  }
  fail("TLS read", ret);
  return -1;
}

// Records inside SSL, or ciphertext fed to the memory BIO that SSL has not pulled yet: either
// may turn into plaintext without another byte from the socket.
bool TlsSession::has_buffered_plaintext() const {
  return SSL_has_pending(ssl_) == 1 || BIO_ctrl_pending(rbio_) > 0;
}

bool TlsSession::write_plain(const char* data, size_t len) {
  while (len > 0) {
    ERR_clear_error();
    int ret = SSL_write(ssl_, data, static_cast<int>(std::min<size_t>(len, 1 << 30)));
    if (ret <= 0) return fail("TLS write", ret);
    data += ret;
    len -= ret;
  }
  return true;
}

void TlsSession::shutdown() {
  ERR_clear_error();
  SSL_shutdown(ssl_);
}

size_t TlsSession::drain_ciphertext(core::BufferChain& out) {
  size_t total = 0;
  while (size_t pending = BIO_ctrl_pending(wbio_)) {
    size_t chunk = std::min<size_t>(pending, 64 * 1024);
    core::SharedBuffer block = core::SharedBuffer::allocate(chunk);
    int n = BIO_read(wbio_, block.mutable_data(), static_cast<int>(chunk));
    if (n <= 0) break;
    block.set_size(n);
    out.append_shared(block);
    total += n;
  }
  return total;
}

bool TlsSession::has_ciphertext() const {
  return BIO_ctrl_pending(wbio_) > 0;
}

std::string TlsSession::protocol() const {
  return SSL_get_version(ssl_);
}

std::string TlsSession::peer_subject() const {
  X509* cert = SSL_get0_peer_certificate(ssl_);
  if (!cert) return {};
  char buf[256];
  X509_NAME_oneline(X509_get_subject_name(cert), buf, sizeof buf);
  return buf;
}

}  // namespace weir::net
