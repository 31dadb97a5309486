// net/connection_tls.cc — Connection's TLS path: the handshake, decrypting what the socket
// delivers, encrypting the queue at flush time, and close_notify before FIN.
//
// Plaintext still queues in output_ exactly as without TLS (so write modes, acks and
// watermarks behave the same); encryption happens in encrypt_pending(), a flush's worth at a
// time, into cipher_. written_total_ (what acks wait for) advances only when a record's
// ciphertext reached the kernel, tracked by cipher_marks_.
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/log.h"
#include "core/metrics.h"
#include "net/connection.h"
#include "net/net_metrics.h"
#include "net/socket_ops.h"
#include "net/tls_context.h"

namespace weir::net {
namespace {

constexpr size_t kCipherReadSize = 64 * 1024;
constexpr size_t kRecordPlaintext = 16 * 1024;  // one full TLS record
constexpr size_t kEncryptAhead = 256 * 1024;    // ciphertext queued before we stop encrypting
constexpr int kMaxIovecs = 64;

thread_local char t_cipher_in[kCipherReadSize];
thread_local char t_plain[kCipherReadSize];
thread_local char t_record[kRecordPlaintext];

core::Counter g_tls_ok("weir_tls_handshakes_total", "TLS handshakes, by result", "result=\"ok\"");
core::Counter g_tls_failed("weir_tls_handshakes_total", "TLS handshakes, by result",
                           "result=\"failed\"");
core::Counter g_tls_timeout("weir_tls_handshakes_total", "TLS handshakes, by result",
                            "result=\"timeout\"");

}  // namespace

void Connection::start_tls() {
  SSL* ssl = options_.tls->new_ssl();
  if (!ssl) {
    log_warn("connection %llu: cannot create TLS session: %s", static_cast<unsigned long long>(id_),
             openssl_error_string().c_str());
    set_linger_abort(fd_);
    finish(CloseReason::kErrorClosed, "tls: no session");
    return;
  }
  tls_ = std::make_unique<TlsSession>(
      ssl, options_.tls_client ? TlsSession::Role::kClient : TlsSession::Role::kServer);
  tls_timer_.set_callback([this] {
    if (tls_->established() || fd_ < 0) return;
    g_tls_timeout.inc();
    set_linger_abort(fd_);
    finish(CloseReason::kErrorClosed, "tls handshake timeout");
  });
  reactor_.schedule(tls_timer_, options_.tls_handshake_timeout_ms);
  // A client speaks first: its ClientHello goes out now (the socket is connected). A failure
  // here is reported like any other, from the end of the iteration.
  if (options_.tls_client) tls_advance_handshake();
}

// Feeds handshake input and sends what the handshake produced; false when the connection died.
bool Connection::tls_advance_handshake() {
  TlsSession::Status status = tls_->handshake();
  // Handshake records carry no plaintext (no mark), but they sit in the stream before the next
  // record: count them, or that record's mark would fire before its last bytes are sent.
  cipher_enqueued_ += tls_->drain_ciphertext(cipher_);
  if (status == TlsSession::Status::kError) {
    g_tls_failed.inc();
    log_debug("connection %llu %s: %s", static_cast<unsigned long long>(id_),
              peer_.to_string().c_str(), tls_->error().c_str());
    write_some();  // the alert, best effort
    if (fd_ >= 0) finish(CloseReason::kErrorClosed, tls_->error());
    return false;
  }
  if (status == TlsSession::Status::kOk) {
    g_tls_ok.inc();
    tls_timer_.cancel();
  }
  if (!cipher_.empty() || (tls_->established() && !output_.empty())) write_some();
  return fd_ >= 0;
}

// Encrypts queued plaintext into records while the ciphertext queue is short.
bool Connection::encrypt_pending() {
  while (cipher_.bytes() < kEncryptAhead && (!output_.empty() || !files_.empty())) {
    size_t n = 0;
    bool file_next = !files_.empty() && files_.front().chain_before == chain_written_;
    if (file_next) {
      FileRange& f = files_.front();
      ssize_t got =
          ::pread(f.fd, t_record, std::min<uint64_t>(f.remaining, kRecordPlaintext), f.offset);
      if (got <= 0) {
        finish(CloseReason::kErrorClosed,
               got == 0 ? "file shorter than promised" : std::strerror(errno));
        return false;
      }
      n = got;
      f.offset += n;
      f.remaining -= n;
      file_bytes_queued_ -= n;
      if (f.remaining == 0) {
        ::close(f.fd);
        files_.pop_front();
      }
    } else {
      // Gather small slices into one record rather than one record per write.
      size_t limit =
          files_.empty()
              ? kRecordPlaintext
              : std::min<uint64_t>(kRecordPlaintext, files_.front().chain_before - chain_written_);
      struct iovec iov[kMaxIovecs];
      int count = output_.fill_iovecs(iov, kMaxIovecs);
      for (int i = 0; i < count && n < limit; ++i) {
        size_t take = std::min(iov[i].iov_len, limit - n);
        std::memcpy(t_record + n, iov[i].iov_base, take);
        n += take;
      }
      output_.consume(n);
      chain_written_ += n;
    }
    if (!tls_->write_plain(t_record, n)) {
      finish(CloseReason::kErrorClosed, tls_->error());
      return false;
    }
    plain_encrypted_ += n;
    cipher_enqueued_ += tls_->drain_ciphertext(cipher_);
    cipher_marks_.push_back(CipherMark{cipher_enqueued_, plain_encrypted_});
  }
  return true;
}

bool Connection::tls_write_some() {
  // Ciphertext the session produced while reading (a key update answer, tickets) goes first.
  if (tls_->has_ciphertext()) cipher_enqueued_ += tls_->drain_ciphertext(cipher_);
  while (fd_ >= 0) {
    if (tls_->established() && !encrypt_pending()) return false;
    if (cipher_.empty() || !writable_) break;
    struct iovec iov[kMaxIovecs];
    int count = cipher_.fill_iovecs(iov, kMaxIovecs);
    size_t offered = 0;
    for (int i = 0; i < count; ++i) offered += iov[i].iov_len;
    metrics::write_calls.inc();
    ssize_t n = ::writev(fd_, iov, count);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        writable_ = false;
        break;
      }
      finish(CloseReason::kErrorClosed, std::strerror(errno));
      return false;
    }
    cipher_.consume(n);
    cipher_written_ += n;
    metrics::bytes_sent.inc(n);
    after_cipher_written();
    if (static_cast<size_t>(n) < offered) {
      writable_ = false;
      break;
    }
  }
  if (fd_ < 0) return false;
  after_written();
  return fd_ >= 0;
}

// Plaintext counts as written once the last byte of its record reached the kernel.
// cipher_enqueued_ counts every ciphertext byte queued (handshake, records, alerts), so a
// mark's cipher_end is the record's true end in the socket stream.
void Connection::after_cipher_written() {
  while (!cipher_marks_.empty() && cipher_marks_.front().cipher_end <= cipher_written_) {
    written_total_ = cipher_marks_.front().plain_end;
    cipher_marks_.pop_front();
  }
}

void Connection::tls_read_loop() {
  for (int i = 0; i < 16; ++i) {
    if (fd_ < 0 || !reading_enabled_ || closed_notify_pending_) return;
    if (tls_->established()) {
      ssize_t p = tls_->read_plain(t_plain, sizeof t_plain);
      if (p > 0) {
        read_total_ += p;
        if (options_.read_mode == ReadMode::kPull) reading_enabled_ = false;
        handler_->on_data(*this, t_plain, p);
        if (tls_->has_ciphertext()) schedule_flush();  // e.g. a key update answer
        continue;
      }
      if (p < 0) {
        finish(CloseReason::kErrorClosed, tls_->error());
        return;
      }
      if (tls_->peer_closed()) {  // close_notify: the peer is done sending
        readable_ = false;
        handle_eof();
        return;
      }
    }
    if (!readable_) return;
    ssize_t n = ::recv(fd_, t_cipher_in, sizeof t_cipher_in, 0);
    if (n > 0) {
      metrics::read_calls.inc();
      metrics::bytes_received.inc(n);
      if (static_cast<size_t>(n) < sizeof t_cipher_in && !peer_fin_pending_) readable_ = false;
      tls_->feed_ciphertext(t_cipher_in, n);
      if (!tls_->established() && !tls_advance_handshake()) return;
      continue;
    }
    if (n == 0) {
      readable_ = false;
      handle_eof();
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      readable_ = false;
      continue;  // plaintext may still be buffered in the session
    }
    finish(CloseReason::kErrorClosed, std::strerror(errno));
    return;
  }
  // Only a full round of progress gets here (every dead end returned above): continue at the
  // end of the iteration. A partial record alone never re-queues, so it cannot spin.
  if (reading_enabled_) {
    read_requested_ = true;
    reactor_.on_end_of_iteration(this);
  }
}

// Called when the plaintext queue is empty and the connection is closing: encrypt the
// close_notify and send it; the FIN follows when the ciphertext is gone. Returns true when
// ready for the FIN now.
bool Connection::queue_close_notify() {
  tls_close_notify_queued_ = true;
  if (tls_->established()) {
    tls_->shutdown();
    cipher_enqueued_ += tls_->drain_ciphertext(cipher_);
  }
  if (cipher_.empty()) return true;
  write_some();  // after_written() calls start_shutdown_write() again once cipher_ drains
  return false;
}

}  // namespace weir::net
