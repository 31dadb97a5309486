// net/connection.cc — reading, writing, watermarks and closing for one TCP connection.
#include "net/connection.h"

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "core/log.h"
#include "core/metrics.h"
#include "net/net_metrics.h"
#include "net/socket_ops.h"

namespace weir::net {

namespace metrics {
core::Counter bytes_received("weir_tcp_bytes_received_total", "Bytes read from TCP sockets");
core::Counter bytes_sent("weir_tcp_bytes_sent_total", "Bytes written to TCP sockets");
core::Counter read_calls("weir_read_syscalls_total", "read(2) calls on connections");
core::Counter write_calls("weir_write_syscalls_total",
                          "writev(2), send(2) and sendfile(2) calls on connections");
}  // namespace metrics

namespace {

constexpr size_t kReadBufferSize = 64 * 1024;
// Reads per readiness event before other connections get their turn (Redis caps a client's
// work per event the same way); the rest is read at the end of the iteration.
constexpr int kMaxReadsPerEvent = 4;
constexpr int kMaxIovecs = 64;
constexpr size_t kSendfileChunk = 1 << 20;

thread_local char t_read_buffer[kReadBufferSize];
std::atomic<uint64_t> g_next_id{1};

core::Gauge g_open("weir_connections_open", "TCP connections currently open");
core::Counter& g_bytes_in = metrics::bytes_received;
core::Counter& g_bytes_out = metrics::bytes_sent;
core::Counter& g_read_calls = metrics::read_calls;
core::Counter& g_write_calls = metrics::write_calls;
core::Counter g_high_marks("weir_high_watermark_crossings_total",
                           "Times a connection's queue reached the high watermark");
core::Gauge g_above_high("weir_connections_above_high_watermark",
                         "Connections whose queue reached the high watermark and has not yet "
                         "fallen to the low one");
core::Counter g_suspended("weir_reading_suspended_seconds_total",
                          "Time connections spent with reading suspended", "", 1000);
core::Counter g_overruns("weir_buffer_overruns_total",
                         "Connections dropped because their queue passed max-buffer");
core::Counter g_nacks("weir_write_nacks_total", "Writes refused by NACK-mode connections");

core::Counter g_closed[kCloseReasonCount] = {
    {"weir_connections_closed_total", "Connections closed, by reason", "reason=\"closed\""},
    {"weir_connections_closed_total", "Connections closed, by reason",
     "reason=\"confirmed_closed\""},
    {"weir_connections_closed_total", "Connections closed, by reason", "reason=\"aborted\""},
    {"weir_connections_closed_total", "Connections closed, by reason", "reason=\"peer_closed\""},
    {"weir_connections_closed_total", "Connections closed, by reason", "reason=\"error_closed\""},
    {"weir_connections_closed_total", "Connections closed, by reason", "reason=\"buffer_overrun\""},
};

}  // namespace

const char* close_reason_name(CloseReason reason) {
  switch (reason) {
    case CloseReason::kClosed:
      return "closed";
    case CloseReason::kConfirmedClosed:
      return "confirmed_closed";
    case CloseReason::kAborted:
      return "aborted";
    case CloseReason::kPeerClosed:
      return "peer_closed";
    case CloseReason::kErrorClosed:
      return "error_closed";
    case CloseReason::kBufferOverrun:
      return "buffer_overrun";
  }
  return "unknown";
}

Connection::Connection(core::Reactor& reactor, int fd, const ConnectionOptions& options,
                       ConnectionOwner* owner)
    : reactor_(reactor),
      fd_(fd),
      id_(g_next_id.fetch_add(1, std::memory_order_relaxed)),
      options_(options),
      owner_(owner),
      peer_(peer_address(fd)) {
  if (options_.tcp_nodelay) set_tcp_nodelay(fd_, true);
  reading_enabled_ = options_.read_mode == ReadMode::kPush;
  linger_timer_.set_callback([this] { on_linger_timeout(); });
  reactor_.add(fd_, this);
  g_open.inc();
  if (options_.tls) start_tls();
}

Connection::~Connection() {
  reactor_.cancel_end_of_iteration(this);
  for (FileRange& f : files_) ::close(f.fd);
  if (fd_ >= 0) release_fd();
  g_open.dec();
  if (above_high_) g_above_high.dec();
}

void Connection::set_handler(std::unique_ptr<ConnectionHandler> handler) {
  if (handler_) reactor_.retire(std::move(handler_));
  handler_ = std::move(handler);
  if (readable_ && reading_enabled_) {
    read_requested_ = true;
    reactor_.on_end_of_iteration(this);
  }
}

void Connection::set_watermarks(size_t high, size_t low, size_t max_buffer) {
  options_.high_watermark = high;
  options_.low_watermark = low;
  options_.max_buffer = max_buffer;
}

// ---------------------------------------------------------------- writing

WriteResult Connection::write(std::string_view data, uint64_t ack) {
  WritePart part = WritePart::copy(data, ack);
  return write(std::span<const WritePart>(&part, 1));
}

WriteResult Connection::write(const core::SharedBuffer& buffer, size_t offset, size_t length,
                              uint64_t ack) {
  WritePart part{WritePart::Kind::kShared, nullptr, &buffer, -1, offset, length, ack};
  return write(std::span<const WritePart>(&part, 1));
}

WriteResult Connection::write_file(int fd, uint64_t offset, uint64_t length, uint64_t ack) {
  WritePart part = WritePart::file(fd, offset, length, ack);
  return write(std::span<const WritePart>(&part, 1));
}

WriteResult Connection::write(std::span<const WritePart> parts) {
  if (state_ != State::kOpen && state_ != State::kHalfClosedByPeer) return WriteResult::kClosed;
  if (options_.write_mode != WriteMode::kAck) {
    bool pending = output_pending();
    if (writes_suspended_ || pending) {
      if (options_.write_mode == WriteMode::kNackSuspend) writes_suspended_ = true;
      g_nacks.inc();
      return WriteResult::kRefused;
    }
  }
  uint64_t memory_bytes = 0;
  for (const WritePart& part : parts)
    if (part.kind != WritePart::Kind::kFile) memory_bytes += part.length;
  WriteResult admitted = admit(memory_bytes);
  if (admitted != WriteResult::kAccepted) return admitted;
  for (const WritePart& part : parts) enqueue(part);
  after_enqueue();
  if (options_.write_mode == WriteMode::kAck)
    schedule_flush();
  else
    write_some();
  return WriteResult::kAccepted;
}

// Enforces max_buffer before anything is queued: the queue never exceeds the limit, except
// that one write larger than the whole limit is admitted onto an empty queue (a 16 MiB
// message must be sendable with a 4 MiB limit; the limit is about piling up, not size).
// Under TLS the ciphertext not yet sent is queued memory too (up to kEncryptAhead of it).
WriteResult Connection::admit(uint64_t bytes) {
  size_t queued = output_.bytes() + cipher_.bytes();
  if (options_.max_buffer == 0 || queued + bytes <= options_.max_buffer || queued == 0)
    return WriteResult::kAccepted;
  g_overruns.inc();
  log_info("connection %llu %s: buffer overrun (%zu queued + %llu > max-buffer %zu), dropping",
           static_cast<unsigned long long>(id_), peer_.to_string().c_str(), queued,
           static_cast<unsigned long long>(bytes), options_.max_buffer);
  set_linger_abort(fd_);
  finish(CloseReason::kBufferOverrun, "buffer overrun");
  return WriteResult::kClosed;
}

void Connection::enqueue(const WritePart& part) {
  switch (part.kind) {
    case WritePart::Kind::kCopy:
      output_.append_copy(part.bytes, part.length);
      chain_enqueued_ += part.length;
      break;
    case WritePart::Kind::kShared:
      output_.append_shared(*part.shared, part.offset, part.length);
      chain_enqueued_ += part.length;
      break;
    case WritePart::Kind::kFile:
      if (part.length > 0) {
        int dup_fd = ::fcntl(part.file_fd, F_DUPFD_CLOEXEC, 0);
        files_.push_back(FileRange{dup_fd, part.offset, part.length, chain_enqueued_});
        file_bytes_queued_ += part.length;
      }
      break;
  }
  enqueued_total_ += part.length;
  if (part.ack != kNoAck) acks_.push_back(AckMark{enqueued_total_, part.ack});
}

void Connection::after_enqueue() {
  if (!above_high_ && queued_bytes() >= options_.high_watermark) {
    above_high_ = true;
    g_high_marks.inc();
    g_above_high.inc();
    if (handler_) handler_->on_high_watermark(*this);
  }
}

void Connection::schedule_flush() {
  flush_requested_ = true;
  if (!in_hook_) reactor_.on_end_of_iteration(this);
}

void Connection::flush() {
  flush_requested_ = false;
  write_some();
}

void Connection::resume_writing() {
  if (!writes_suspended_) return;
  resume_pending_ = true;
  schedule_flush();  // answers on_writing_resumed from the flush path once the queue is empty
}

bool Connection::write_some() {
  if (tls_) return tls_write_some();
  while (fd_ >= 0 && writable_ && (!output_.empty() || !files_.empty())) {
    bool file_next = !files_.empty() && files_.front().chain_before == chain_written_;
    size_t limit = files_.empty() ? SIZE_MAX : files_.front().chain_before - chain_written_;
    size_t offered = file_next ? std::min<uint64_t>(files_.front().remaining, kSendfileChunk) : 0;
    ssize_t n = file_next ? write_file_head() : write_chain(limit, &offered);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        writable_ = false;
        break;
      }
      finish(CloseReason::kErrorClosed, std::strerror(errno));
      return false;
    }
    written_total_ += n;
    g_bytes_out.inc(n);
    // A short write means the socket buffer is full: wait for EPOLLOUT rather than spend a
    // syscall to be told EAGAIN. Short against what this call offered, not against the queue:
    // a writev that took all its kMaxIovecs slices filled nothing, and no EPOLLOUT would come.
    if (static_cast<size_t>(n) < offered) {
      writable_ = false;
      break;
    }
  }
  if (fd_ < 0) return false;
  after_written();
  return fd_ >= 0;
}

ssize_t Connection::write_chain(size_t limit, size_t* offered) {
  struct iovec iov[kMaxIovecs];
  int count = output_.fill_iovecs(iov, kMaxIovecs);
  size_t total = 0;
  for (int i = 0; i < count; ++i) {
    if (total + iov[i].iov_len >= limit) {
      iov[i].iov_len = limit - total;
      count = i + 1;
      total = limit;
      break;
    }
    total += iov[i].iov_len;
  }
  *offered = total;
  g_write_calls.inc();
  // One slice (a corked batch, a room's frames of one iteration) goes by send(2): it skips
  // writev's trip through the VFS (file position lock, iterator setup) on every call.
  ssize_t n = count == 1 ? ::send(fd_, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL)
                         : ::writev(fd_, iov, count);
  if (n > 0) {
    output_.consume(n);
    chain_written_ += n;
  }
  return n;
}

ssize_t Connection::write_file_head() {
  FileRange& f = files_.front();
  off_t offset = static_cast<off_t>(f.offset);
  g_write_calls.inc();
  ssize_t n = ::sendfile(fd_, f.fd, &offset, std::min<uint64_t>(f.remaining, kSendfileChunk));
  if (n == 0 && f.remaining > 0) {  // the file is shorter than promised
    errno = EIO;
    return -1;
  }
  if (n > 0) {
    f.offset += n;
    f.remaining -= n;
    file_bytes_queued_ -= n;
    if (f.remaining == 0) {
      ::close(f.fd);
      files_.pop_front();
    }
  }
  return n;
}

void Connection::after_written() {
  deliver_acks();
  if (fd_ < 0) return;
  check_low_watermark();
  bool empty = !output_pending();
  if (empty && resume_pending_ && state_ != State::kClosed) {
    resume_pending_ = false;
    writes_suspended_ = false;
    if (handler_) handler_->on_writing_resumed(*this);
  }
  if (empty && (state_ == State::kClosing || state_ == State::kConfirmClosing) && !shutdown_sent_)
    start_shutdown_write();
}

void Connection::deliver_acks() {
  while (!acks_.empty() && acks_.front().position <= written_total_ && !closed_notify_pending_) {
    uint64_t token = acks_.front().token;
    acks_.pop_front();
    if (handler_) handler_->on_write_ack(*this, token);
  }
}

void Connection::check_low_watermark() {
  if (above_high_ && queued_bytes() <= options_.low_watermark) {
    above_high_ = false;
    g_above_high.dec();
    if (handler_) handler_->on_low_watermark(*this);
  }
}

// ---------------------------------------------------------------- reading

void Connection::suspend_reading() {
  if (!reading_enabled_) return;
  reading_enabled_ = false;
  if (options_.read_mode == ReadMode::kPush) suspended_since_ms_ = reactor_.now_ms();
}

void Connection::resume_reading() {
  if (suspended_since_ms_ >= 0) {
    g_suspended.inc(reactor_.now_ms() - suspended_since_ms_);
    suspended_since_ms_ = -1;
  }
  if (reading_enabled_ && options_.read_mode == ReadMode::kPush) return;
  reading_enabled_ = true;
  // Edge-triggered: bytes that arrived while suspended raise no new event, so read them here,
  // at the end of the iteration (never inside the caller's own callback).
  if (readable_ || (tls_ && tls_->has_buffered_plaintext())) {
    read_requested_ = true;
    reactor_.on_end_of_iteration(this);
  }
}

void Connection::on_io(uint32_t events) {
  if (fd_ < 0) return;
  if (events & EPOLLERR) {
    int err = socket_error(fd_);
    if (err != 0 && state_ != State::kLingering) {
      finish(CloseReason::kErrorClosed, std::strerror(err));
      return;
    }
  }
  if (events & (EPOLLRDHUP | EPOLLHUP)) peer_fin_pending_ = true;
  if (events & EPOLLOUT) {
    writable_ = true;
    if (output_pending() || resume_pending_) {
      if (!write_some()) return;
    }
  }
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) {
    readable_ = true;
    handle_readable();
  }
}

void Connection::handle_readable() {
  switch (state_) {
    case State::kClosing:
    case State::kLingering:
      discard_input();
      return;
    case State::kClosed:
      return;
    default:
      if (reading_enabled_ && handler_) read_loop();
  }
}

void Connection::read_loop() {
  if (tls_) return tls_read_loop();
  for (int i = 0; i < kMaxReadsPerEvent; ++i) {
    if (fd_ < 0 || !reading_enabled_ || closed_notify_pending_) return;
    g_read_calls.inc();
    ssize_t n = ::recv(fd_, t_read_buffer, kReadBufferSize, 0);  // recv: no VFS detour
    if (n > 0) {
      read_total_ += n;
      g_bytes_in.inc(n);
      // A short read drained the socket; with a FIN pending one more read returns 0.
      bool drained = static_cast<size_t>(n) < kReadBufferSize && !peer_fin_pending_;
      if (drained) readable_ = false;
      if (options_.read_mode == ReadMode::kPull) reading_enabled_ = false;
      handler_->on_data(*this, t_read_buffer, n);
      if (drained) return;
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
      return;
    }
    finish(CloseReason::kErrorClosed, std::strerror(errno));
    return;
  }
  if (readable_ && reading_enabled_) {
    read_requested_ = true;
    reactor_.on_end_of_iteration(this);
  }
}

// Drops input after close(): the handler is done, but the peer's bytes must be consumed or
// closing with unread data would send RST and could destroy our last response in flight.
void Connection::discard_input() {
  for (;;) {
    ssize_t n = ::recv(fd_, t_read_buffer, kReadBufferSize, 0);  // recv: no VFS detour
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      readable_ = false;
      return;
    }
    peer_fin_received_ = true;  // EOF or error: the peer is done
    if (state_ == State::kLingering) {
      linger_timer_.cancel();
      release_fd();
      maybe_finished();
    }
    return;
  }
}

void Connection::handle_eof() {
  peer_fin_received_ = true;
  switch (state_) {
    case State::kOpen:
      if (options_.keep_open_on_peer_closed) {
        state_ = State::kHalfClosedByPeer;
        if (handler_) handler_->on_peer_closed(*this);
        return;
      }
      state_ = State::kClosing;
      close_reason_ = CloseReason::kPeerClosed;
      close_detail_ = "peer closed";
      if (!output_pending())
        start_shutdown_write();
      else
        schedule_flush();
      return;
    case State::kConfirmClosing:
      if (shutdown_sent_) finish(CloseReason::kConfirmedClosed, "confirmed close");
      return;
    default:
      return;
  }
}

// ---------------------------------------------------------------- closing

void Connection::close() {
  if (state_ != State::kOpen && state_ != State::kHalfClosedByPeer) return;
  state_ = State::kClosing;
  close_reason_ = CloseReason::kClosed;
  close_detail_ = "closed";
  if (!output_pending())
    start_shutdown_write();
  else
    schedule_flush();
}

void Connection::confirmed_close() {
  if (state_ != State::kOpen && state_ != State::kHalfClosedByPeer) return;
  bool peer_done = state_ == State::kHalfClosedByPeer;
  state_ = State::kConfirmClosing;
  if (peer_done) peer_fin_received_ = true;
  if (!output_pending())
    start_shutdown_write();
  else
    schedule_flush();
}

void Connection::abort() {
  if (closed_notify_pending_ || closed_notified_) return;
  if (fd_ >= 0) set_linger_abort(fd_);
  finish(CloseReason::kAborted, "aborted");
}

void Connection::start_shutdown_write() {
  // TLS: close_notify goes after the last record, and the FIN after close_notify.
  if (tls_ && !tls_close_notify_queued_ && !queue_close_notify()) return;
  shutdown_sent_ = true;
  ::shutdown(fd_, SHUT_WR);
  if (state_ == State::kConfirmClosing) {
    if (peer_fin_received_) finish(CloseReason::kConfirmedClosed, "confirmed close");
    return;  // keep delivering input until the peer's FIN
  }
  // close() or peer-closed: the handler is done now; the descriptor lingers for the peer's FIN.
  notify_closed(close_reason_, close_detail_);
  if (peer_fin_received_) {
    release_fd();
    maybe_finished();
    return;
  }
  state_ = State::kLingering;
  reactor_.schedule(linger_timer_, options_.linger_ms);
  discard_input();
}

void Connection::on_linger_timeout() {
  if (fd_ >= 0) release_fd();
  maybe_finished();
}

// Ends the connection now: no more I/O, handler told at the end of the iteration.
void Connection::finish(CloseReason reason, std::string detail) {
  notify_closed(reason, std::move(detail));
  output_.clear();
  cipher_.clear();
  if (fd_ >= 0) release_fd();
}

void Connection::notify_closed(CloseReason reason, std::string detail) {
  if (closed_notify_pending_ || closed_notified_) return;
  close_reason_ = reason;
  close_detail_ = std::move(detail);
  closed_notify_pending_ = true;
  state_ = State::kClosed;
  g_closed[static_cast<int>(reason)].inc();
  reactor_.on_end_of_iteration(this);
}

void Connection::release_fd() {
  reactor_.remove(fd_);
  ::close(fd_);
  fd_ = -1;
  if (state_ == State::kLingering) state_ = State::kClosed;
}

void Connection::maybe_finished() {
  if (finished_ || !closed_notified_ || fd_ >= 0) return;
  finished_ = true;
  if (owner_) owner_->on_connection_finished(*this);
}

void Connection::on_end_of_iteration() {
  if (closed_notify_pending_) {
    closed_notify_pending_ = false;
    closed_notified_ = true;
    if (handler_) handler_->on_closed(*this, close_reason_, close_detail_);
    maybe_finished();
    return;
  }
  in_hook_ = true;
  if (read_requested_) {
    read_requested_ = false;
    if (readable_ || (tls_ && tls_->has_buffered_plaintext())) handle_readable();
  }
  if (flush_requested_ && fd_ >= 0) {
    flush_requested_ = false;
    write_some();
  }
  in_hook_ = false;
  // Callbacks of this flush (acks, low watermark) may have queued more: next iteration.
  if ((flush_requested_ || read_requested_) && fd_ >= 0) reactor_.on_end_of_iteration(this);
}

}  // namespace weir::net
