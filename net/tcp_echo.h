// net/tcp_echo.h — the three echo handlers of the Akka IO TCP document, on weir's connection:
// the net layer's diagnostic (`weir --tcp-echo`) and the raw-TCP baseline for benchmarks.
//
//  AckEchoHandler         ACK-based writes; the connection's queue is the store; crossing the
//                         high watermark suspends reading, falling under the low one resumes.
//  NackSuspendEchoHandler NACK-based writes with suspending: a refused write goes to the
//                         handler's own store, resume_writing() is sent, and the store is
//                         written when writing_resumed arrives; reading pauses while the store
//                         is above the high watermark.
//  PullEchoHandler        pull reading: one read, write it with an ack, read again on the ack.
//
// In every variant the bytes held for one connection stay under max-buffer. The connections
// run with keep_open_on_peer_closed, as Akka's echo handlers do: a peer that half-closes
// after sending still receives every byte back before the close.
#pragma once

#include <memory>

#include "core/buffer.h"
#include "net/connection.h"

namespace weir::net {

class AckEchoHandler : public ConnectionHandler {
 public:
  void on_data(Connection& conn, char* data, size_t len) override;
  void on_write_ack(Connection& conn, uint64_t ack) override;
  void on_high_watermark(Connection& conn) override { conn.suspend_reading(); }
  void on_low_watermark(Connection& conn) override { conn.resume_reading(); }
  void on_peer_closed(Connection& conn) override { conn.close(); }  // close() flushes the queue
  void on_closed(Connection&, CloseReason, std::string_view) override {}
  uint64_t acked() const { return acked_; }

 private:
  uint64_t next_ack_ = 1;
  uint64_t acked_ = 0;
};

class NackSuspendEchoHandler : public ConnectionHandler {
 public:
  void on_data(Connection& conn, char* data, size_t len) override;
  void on_writing_resumed(Connection& conn) override;
  void on_peer_closed(Connection& conn) override;
  void on_closed(Connection&, CloseReason, std::string_view) override {}
  size_t stored() const { return store_.readable(); }

 private:
  void write_store(Connection& conn);

  core::ByteBuffer store_;     // bytes refused by the connection, in order
  bool suspended_ = false;     // waiting for writing_resumed
  bool peer_closed_ = false;   // close once the store is written
};

class PullEchoHandler : public ConnectionHandler {
 public:
  explicit PullEchoHandler(Connection& conn) { conn.resume_reading(); }
  void on_data(Connection& conn, char* data, size_t len) override;
  void on_write_ack(Connection& conn, uint64_t) override { conn.resume_reading(); }
  void on_peer_closed(Connection& conn) override { conn.close(); }
  void on_closed(Connection&, CloseReason, std::string_view) override {}
};

// Picks the handler for the connection's modes (pull reading, NACK writes, else ACK).
std::unique_ptr<ConnectionHandler> make_echo_handler(Connection& conn);

}  // namespace weir::net
