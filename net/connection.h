// net/connection.h — one TCP connection on a reactor, with the backpressure models of Akka
// IO TCP: ACK-based, NACK-based and NACK-with-suspending writes, push and pull reading,
// high/low watermarks with a hard maximum, and Akka's close modes.
//
// Write policy in one sentence: writes are appended to the connection's queue (small ones
// copied into a private tail block, large or shared ones by reference) and the queue goes to
// the kernel in one writev at the end of the loop iteration (ACK mode) or at once (NACK modes,
// where "pending" must mean "not yet in the kernel"); what the kernel refuses waits for EPOLLOUT.
//
// Reads go into the reactor thread's shared 64 KiB buffer and are handed to the handler as a
// mutable span valid for the callback only, so an idle connection owns no read buffer.
//
// Lifetime: the connection owns its handler. Closing never re-enters the handler: the close
// is recorded, the descriptor stops doing I/O, and on_closed() is delivered at the end of the
// iteration; the connection is destroyed after that iteration.
//
// Thread-safety: none. A connection and its handler live on one reactor thread; other threads
// reach it only by posting to that reactor.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "core/buffer.h"
#include "core/reactor.h"
#include "core/timer_wheel.h"
#include "net/address.h"
#include "net/tls_session.h"

namespace weir::net {

class Connection;
class TlsContext;

enum class WriteMode {
  kAck,          // every write is queued; a write may carry an ack token
  kNack,         // a write while another is pending is refused and handed back
  kNackSuspend,  // after one refusal every write is refused until resume_writing()
};
enum class ReadMode { kPush, kPull };

// Why a connection ended; each has a counter on /metrics.
enum class CloseReason {
  kClosed,           // close(): flushed, then FIN
  kConfirmedClosed,  // confirmed_close(): both directions closed
  kAborted,          // abort(): RST, pending data dropped
  kPeerClosed,       // the peer sent FIN (and keep-open was off)
  kErrorClosed,      // a socket error (reset, broken pipe, ...)
  kBufferOverrun,    // more than max_buffer bytes were queued
};
inline constexpr int kCloseReasonCount = 6;
const char* close_reason_name(CloseReason reason);

enum class WriteResult {
  kAccepted,  // queued (ACK mode) or taken by the kernel / pending (NACK modes)
  kRefused,   // NACK: the caller still owns the data
  kClosed,    // the connection is closing or closed; the data was dropped
};

inline constexpr uint64_t kNoAck = 0;

// One part of a compound write: bytes copied, a shared buffer slice by reference, or a file
// range sent with sendfile. Each part may carry its own ack token.
struct WritePart {
  enum class Kind { kCopy, kShared, kFile };
  Kind kind = Kind::kCopy;
  const char* bytes = nullptr;                 // kCopy
  const core::SharedBuffer* shared = nullptr;  // kShared
  int file_fd = -1;                            // kFile (dup'ed; the caller keeps its own fd)
  uint64_t offset = 0;                         // kShared, kFile
  uint64_t length = 0;
  uint64_t ack = kNoAck;

  static WritePart copy(std::string_view data, uint64_t ack = kNoAck) {
    return {Kind::kCopy, data.data(), nullptr, -1, 0, data.size(), ack};
  }
  static WritePart share(const core::SharedBuffer& buf, uint64_t ack = kNoAck) {
    return {Kind::kShared, nullptr, &buf, -1, 0, buf.size(), ack};
  }
  static WritePart file(int fd, uint64_t offset, uint64_t length, uint64_t ack = kNoAck) {
    return {Kind::kFile, nullptr, nullptr, fd, offset, length, ack};
  }
};

struct ConnectionOptions {
  WriteMode write_mode = WriteMode::kAck;
  ReadMode read_mode = ReadMode::kPush;
  size_t high_watermark = 1 << 20;   // bytes queued: notify on_high_watermark at or above
  size_t low_watermark = 256 << 10;  // then notify on_low_watermark at or below
  size_t max_buffer = 4 << 20;       // a write that would queue more drops the connection (0: no
                                     // limit); a lone write onto an empty queue is always taken
  bool tcp_nodelay = true;
  bool keep_open_on_peer_closed = false;
  int64_t linger_ms = 2000;   // after our FIN, how long to drain the peer's bytes before closing
  TlsContext* tls = nullptr;  // set: the connection speaks TLS (server side)
  bool tls_client = false;    // with tls: we dialled, so we are the TLS client and speak first
                              // (the context must be a mutual one, net/tls_context.h)
  int64_t tls_handshake_timeout_ms = 10000;
};

// Receives a connection's events. Each callback runs on the connection's reactor thread.
class ConnectionHandler : public core::Retirable {
 public:
  // Bytes received (push mode: as they arrive; pull mode: one call per resume_reading()).
  // The span is valid during the call only; it may be modified in place (unmasking).
  virtual void on_data(Connection& conn, char* data, size_t len) = 0;
  // The connection ended; no other callback follows. `detail` says why in words.
  virtual void on_closed(Connection& conn, CloseReason reason, std::string_view detail) = 0;
  // All bytes of the write that carried `ack` reached the kernel.
  virtual void on_write_ack(Connection&, uint64_t /*ack*/) {}
  // NACK-suspend: every write accepted before resume_writing() reached the kernel.
  virtual void on_writing_resumed(Connection&) {}
  virtual void on_high_watermark(Connection&) {}
  virtual void on_low_watermark(Connection&) {}
  // The peer sent FIN and keep_open_on_peer_closed is on: we may still write, then close().
  virtual void on_peer_closed(Connection&) {}
};

// Told when a connection is finished, so its owner can forget it. Loop thread.
class ConnectionOwner {
 public:
  virtual ~ConnectionOwner() = default;
  virtual void on_connection_finished(Connection& conn) = 0;
};

class Connection : public core::IoHandler, public core::IterationHook, public core::Retirable {
 public:
  // Takes ownership of the connected, non-blocking `fd` and registers it with `reactor`.
  Connection(core::Reactor& reactor, int fd, const ConnectionOptions& options,
             ConnectionOwner* owner);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Installs the handler (and retires the previous one, e.g. HTTP -> WebSocket). Starts reading
  // in push mode. Loop thread.
  void set_handler(std::unique_ptr<ConnectionHandler> handler);
  ConnectionHandler* handler() const { return handler_.get(); }

  // ---- writing (loop thread) ----
  WriteResult write(std::string_view data, uint64_t ack = kNoAck);
  WriteResult write(const core::SharedBuffer& buffer, size_t offset, size_t length,
                    uint64_t ack = kNoAck);
  // Several parts as one sequence: in NACK modes the whole sequence is accepted or refused.
  WriteResult write(std::span<const WritePart> parts);
  WriteResult write_file(int fd, uint64_t offset, uint64_t length, uint64_t ack = kNoAck);
  // NACK-suspend: lifts the refusal; on_writing_resumed follows once nothing is pending.
  void resume_writing();
  // Sends what is queued now instead of at the end of the iteration.
  void flush();

  // ---- reading (loop thread) ----
  void suspend_reading();
  // Push mode: reading continues. Pull mode: exactly one on_data follows (when data arrives).
  void resume_reading();
  bool reading_suspended() const { return !reading_enabled_; }

  // ---- closing (loop thread) ----
  void close();            // flush, FIN, discard further input; on_closed(kClosed)
  void confirmed_close();  // flush, FIN, keep delivering input until the peer's FIN
  void abort();            // RST now, pending output dropped
  bool closing() const { return state_ != State::kOpen; }
  bool closed() const { return state_ == State::kClosed || state_ == State::kLingering; }

  // ---- state ----
  // Bytes waiting to reach the kernel: plaintext queued plus, under TLS, ciphertext.
  size_t queued_bytes() const { return output_.bytes() + file_bytes_queued_ + cipher_.bytes(); }
  bool tls() const { return tls_ != nullptr; }
  bool tls_established() const { return tls_ && tls_->established(); }
  // Why TLS failed (handshake or records), OpenSSL's reason; empty without TLS or a failure.
  std::string_view tls_error() const { return tls_ ? std::string_view(tls_->error()) : ""; }
  // The verified peer certificate's subject, once the handshake is done; else empty.
  std::string tls_peer_subject() const { return tls_ ? tls_->peer_subject() : std::string(); }
  bool above_high_watermark() const { return above_high_; }
  uint64_t bytes_written() const { return written_total_; }
  uint64_t bytes_read() const { return read_total_; }
  core::Reactor& reactor() const { return reactor_; }
  int fd() const { return fd_; }
  const SocketAddress& peer() const { return peer_; }
  const ConnectionOptions& options() const { return options_; }
  void set_watermarks(size_t high, size_t low, size_t max_buffer);
  uint64_t id() const { return id_; }

  void on_io(uint32_t events) override;
  void on_end_of_iteration() override;

 private:
  enum class State { kOpen, kClosing, kConfirmClosing, kHalfClosedByPeer, kLingering, kClosed };
  struct FileRange {
    int fd;
    uint64_t offset;
    uint64_t remaining;
    uint64_t chain_before;  // chain bytes that must be written before this range
  };
  struct AckMark {
    uint64_t position;  // stream position the ack waits for
    uint64_t token;
  };

  WriteResult admit(uint64_t bytes);
  void enqueue(const WritePart& part);
  void after_enqueue();
  void schedule_flush();
  bool write_some();  // false when the connection died
  ssize_t write_chain(size_t limit, size_t* offered);
  ssize_t write_file_head();
  void after_written();
  void deliver_acks();
  void check_low_watermark();

  void handle_readable();
  void read_loop();
  void handle_eof();
  void discard_input();

  bool output_pending() const { return !output_.empty() || !files_.empty() || !cipher_.empty(); }

  // TLS path (net/connection_tls.cc).
  void start_tls();
  bool tls_write_some();
  bool encrypt_pending();
  void tls_read_loop();
  bool tls_advance_handshake();
  bool queue_close_notify();
  void after_cipher_written();

  void start_shutdown_write();
  void finish(CloseReason reason, std::string detail);
  void notify_closed(CloseReason reason, std::string detail);
  void release_fd();
  void maybe_finished();
  void on_linger_timeout();

  core::Reactor& reactor_;
  int fd_;
  uint64_t id_;
  ConnectionOptions options_;
  ConnectionOwner* owner_;
  SocketAddress peer_;
  std::unique_ptr<ConnectionHandler> handler_;
  State state_ = State::kOpen;

  core::BufferChain output_;
  std::deque<FileRange> files_;
  std::deque<AckMark> acks_;
  uint64_t file_bytes_queued_ = 0;
  uint64_t chain_enqueued_ = 0;  // chain bytes ever queued
  uint64_t chain_written_ = 0;   // chain bytes ever written
  uint64_t enqueued_total_ = 0;  // stream position of the queue's end
  uint64_t written_total_ = 0;   // stream position reached by the kernel
  uint64_t read_total_ = 0;

  bool writable_ = true;          // no EAGAIN seen since the last EPOLLOUT
  bool flush_requested_ = false;  // corked output to send at end of iteration
  bool read_requested_ = false;   // resume_reading() or fairness: read at end of iteration
  bool readable_ = false;         // kernel may hold bytes we have not read (edge-triggered)
  bool reading_enabled_ = true;
  bool writes_suspended_ = false;  // NACK-suspend after a refusal
  bool resume_pending_ = false;    // resume_writing() awaiting an empty queue
  bool above_high_ = false;
  bool closed_notify_pending_ = false;  // on_closed due at the end of the iteration
  bool closed_notified_ = false;
  bool finished_ = false;           // owner told
  bool shutdown_sent_ = false;      // our FIN is out
  bool peer_fin_pending_ = false;   // EPOLLRDHUP seen: a read will return 0 after the data
  bool peer_fin_received_ = false;  // read returned 0
  bool in_hook_ = false;
  int64_t suspended_since_ms_ = -1;
  CloseReason close_reason_ = CloseReason::kClosed;
  std::string close_detail_;
  core::Timer linger_timer_;

  // TLS: ciphertext queued for the socket, and which plaintext position each record ends.
  struct CipherMark {
    uint64_t cipher_end;
    uint64_t plain_end;
  };
  std::unique_ptr<TlsSession> tls_;
  core::BufferChain cipher_;
  std::deque<CipherMark> cipher_marks_;
  uint64_t cipher_enqueued_ = 0;
  uint64_t cipher_written_ = 0;
  uint64_t plain_encrypted_ = 0;
  bool tls_close_notify_queued_ = false;
  core::Timer tls_timer_;
};

}  // namespace weir::net
