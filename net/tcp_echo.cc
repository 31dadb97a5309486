// net/tcp_echo.cc — echo handlers.
#include "net/tcp_echo.h"

namespace weir::net {

void AckEchoHandler::on_data(Connection& conn, char* data, size_t len) {
  conn.write(std::string_view(data, len), next_ack_++);
}

void AckEchoHandler::on_write_ack(Connection&, uint64_t ack) { acked_ = ack; }

void NackSuspendEchoHandler::on_data(Connection& conn, char* data, size_t len) {
  if (!suspended_ && store_.empty()) {
    if (conn.write(std::string_view(data, len)) != WriteResult::kRefused) return;
    suspended_ = true;
    conn.resume_writing();
  }
  store_.append(data, len);
  // Bound the store as Akka's EchoHandler bounds its storage: stop reading at the high mark
  // (one read of at most 256 KiB may still land), give up past the maximum.
  const ConnectionOptions& o = conn.options();
  if (o.max_buffer && store_.readable() > o.max_buffer) {
    conn.abort();
    return;
  }
  if (store_.readable() >= o.high_watermark) conn.suspend_reading();
}

void NackSuspendEchoHandler::on_writing_resumed(Connection& conn) {
  suspended_ = false;
  write_store(conn);
}

void NackSuspendEchoHandler::on_peer_closed(Connection& conn) {
  peer_closed_ = true;
  if (store_.empty() && !suspended_) conn.close();
}

void NackSuspendEchoHandler::write_store(Connection& conn) {
  if (store_.empty()) {
    if (peer_closed_) conn.close();
    return;
  }
  // A NACK connection holds one write at a time: hand it the whole store in one piece.
  WriteResult result = conn.write(std::string_view(store_.peek(), store_.readable()));
  if (result == WriteResult::kRefused) {
    suspended_ = true;
    conn.resume_writing();
    return;
  }
  store_.retrieve_all();
  store_.shrink_if_empty();
  if (peer_closed_) conn.close();  // flushes the write just accepted, then FIN
  else if (conn.reading_suspended()) conn.resume_reading();
}

void PullEchoHandler::on_data(Connection& conn, char* data, size_t len) {
  conn.write(std::string_view(data, len), 1);
}

std::unique_ptr<ConnectionHandler> make_echo_handler(Connection& conn) {
  const ConnectionOptions& o = conn.options();
  if (o.read_mode == ReadMode::kPull) return std::make_unique<PullEchoHandler>(conn);
  if (o.write_mode != WriteMode::kAck) return std::make_unique<NackSuspendEchoHandler>();
  return std::make_unique<AckEchoHandler>();
}

}  // namespace weir::net
