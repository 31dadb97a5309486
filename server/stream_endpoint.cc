// server/stream_endpoint.cc — the rate-driven producer.
#include "server/stream_endpoint.h"

#include <charconv>
#include <cstdio>
#include <string>

#include "core/clock.h"
#include "core/metrics.h"
#include "core/timer_wheel.h"

namespace weir::server {
namespace {

core::Counter g_sent("weir_stream_messages_sent_total", "Messages /stream sent");
core::Counter g_deferred("weir_stream_messages_deferred_total",
                         "Messages /stream could not send at once because the client's queue was above the high watermark");
core::Counter g_dropped("weir_stream_messages_dropped_total",
                        "Deferred /stream messages dropped because the backlog was full");
core::Gauge g_held("weir_stream_sessions_held_back", "/stream sessions currently held back by backpressure");

constexpr int64_t kTickMs = 10;

uint64_t query_number(std::string_view query, std::string_view key, uint64_t fallback) {
  size_t pos = 0;
  while (pos <= query.size()) {
    size_t end = query.find('&', pos);
    if (end == std::string_view::npos) end = query.size();
    std::string_view pair = query.substr(pos, end - pos);
    if (pair.size() > key.size() && pair.substr(0, key.size()) == key && pair[key.size()] == '=') {
      std::string_view v = pair.substr(key.size() + 1);
      uint64_t n;
      auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec == std::errc() && p == v.data() + v.size()) return n;
      return fallback;
    }
    pos = end + 1;
  }
  return fallback;
}

class StreamHandler : public ws::WebSocketHandler {
 public:
  StreamHandler(uint64_t rate, uint64_t size, uint64_t max_backlog)
      : rate_(rate), size_(size), max_backlog_(max_backlog) {}

  void on_open(ws::WebSocketSession& session) override {
    session_ = &session;
    started_ms_ = session.connection().reactor().now_ms();
    timer_.set_callback([this] { on_tick(); });
    session.connection().reactor().schedule(timer_, kTickMs);
  }
  void on_message(ws::WebSocketSession&, ws::Opcode, std::string_view) override {}  // input ignored
  void on_backpressure(ws::WebSocketSession&, bool above_high) override {
    if (above_high) {
      g_held.inc();
    } else {
      g_held.dec();
      send_backlog();
    }
  }
  void on_close(ws::WebSocketSession& session, uint16_t, std::string_view) override {
    timer_.cancel();
    if (session.above_high_watermark()) g_held.dec();
  }

 private:
  // Messages due so far follow from elapsed time, so timer jitter never changes the rate.
  void on_tick() {
    int64_t now = session_->connection().reactor().now_ms();
    uint64_t due_total = static_cast<uint64_t>((now - started_ms_) * static_cast<double>(rate_) / 1000.0);
    uint64_t due = due_total - produced_;
    produced_ = due_total;
    backlog_ += due;
    if (session_->above_high_watermark()) {
      g_deferred.inc(due);
      deferred_ += due;
      if (backlog_ > max_backlog_) {
        g_dropped.inc(backlog_ - max_backlog_);
        backlog_ = max_backlog_;
      }
    } else {
      send_backlog();
    }
    session_->connection().reactor().schedule(timer_, kTickMs);
  }

  void send_backlog() {
    while (backlog_ > 0 && session_->is_open() && !session_->above_high_watermark()) {
      send_one();
      backlog_--;
    }
  }

  void send_one() {
    char head[128];
    int n = std::snprintf(head, sizeof head, "{\"seq\":%llu,\"ts_us\":%lld,\"deferred\":%llu,\"pad\":\"",
                          static_cast<unsigned long long>(seq_++),
                          static_cast<long long>(core::monotonic_ns() / 1000),
                          static_cast<unsigned long long>(deferred_));
    message_.assign(head, n);
    if (size_ > message_.size() + 2) message_.append(size_ - message_.size() - 2, 'x');
    message_ += "\"}";
    session_->send(ws::Opcode::kText, message_);
    g_sent.inc();
  }

  ws::WebSocketSession* session_ = nullptr;
  uint64_t rate_, size_, max_backlog_;
  int64_t started_ms_ = 0;
  uint64_t produced_ = 0;
  uint64_t backlog_ = 0;
  uint64_t deferred_ = 0;
  uint64_t seq_ = 0;
  std::string message_;
  core::Timer timer_;
};

}  // namespace

std::unique_ptr<ws::WebSocketHandler> StreamEndpoint::create(ws::WebSocketSession&, const ws::HttpRequest& request) {
  uint64_t rate = std::min(query_number(request.query(), "rate", 10), limits_.max_rate);
  uint64_t size = std::min(query_number(request.query(), "size", 100), limits_.max_size);
  return std::make_unique<StreamHandler>(rate, size, limits_.max_backlog);
}

}  // namespace weir::server
