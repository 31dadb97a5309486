// net/tls_session.h — one connection's TLS state over memory BIOs.
//
// The connection keeps doing its own socket I/O: ciphertext read from the socket is fed in,
// plaintext comes out; plaintext written is encrypted into records that the connection queues
// and sends with writev like any other bytes. So encryption happens once per flush over
// everything queued (full 16 KiB records, not one record per small write), and the watermarks
// see both the plaintext waiting and the ciphertext not yet in the kernel.
//
// The role is the connection's: a server session waits for the ClientHello, a client session
// produces it on the first handshake() call. Whether the peer must present a certificate, and
// what it is verified against, is the context's (net/tls_context.h).
//
// Thread-safety: none; owned by one connection on its reactor thread.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>

#include "core/buffer.h"

typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace weir::net {

class TlsSession {
 public:
  enum class Status { kOk, kWantMore, kError };
  enum class Role { kServer, kClient };

  // Takes ownership of `ssl` (from TlsContext::new_ssl()).
  explicit TlsSession(SSL* ssl, Role role = Role::kServer);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  void feed_ciphertext(const char* data, size_t len);
  // Advances the handshake with what was fed; kOk once established.
  Status handshake();
  bool established() const { return established_; }
  // Decrypted bytes into `out`: > 0 bytes, 0 when more ciphertext is needed or the peer sent
  // close_notify (see peer_closed()), -1 on a TLS error (see error()).
  ssize_t read_plain(char* out, size_t cap);
  // True when records already fed may hold plaintext not yet read.
  bool has_buffered_plaintext() const;
  // Encrypts all `len` bytes into pending ciphertext; false on error.
  bool write_plain(const char* data, size_t len);
  // Queues close_notify.
  void shutdown();
  // Moves pending ciphertext (handshake, records, alerts) to the end of `out`; returns bytes.
  size_t drain_ciphertext(core::BufferChain& out);
  bool has_ciphertext() const;

  bool peer_closed() const { return peer_closed_; }
  // Why the session failed (OpenSSL's reasons, with the certificate verification result when
  // that was the cause); empty while nothing failed.
  const std::string& error() const { return error_; }
  std::string protocol() const;  // "TLSv1.3"
  // The verified peer certificate's subject ("CN=node-b"); empty without one.
  std::string peer_subject() const;

 private:
  bool fail(const char* what, int ret);

  SSL* ssl_;
  BIO* rbio_;  // ciphertext in (owned by ssl_)
  BIO* wbio_;  // ciphertext out (owned by ssl_)
  bool established_ = false;
  bool peer_closed_ = false;
  std::string error_;
};

}  // namespace weir::net
