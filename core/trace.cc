// core/trace.cc — span ids, the per-thread span rings, the OTLP JSON encoding and the exporter
// thread's blocking HTTP/1.1 POST.
#include "core/trace.h"

#include <netdb.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/metrics.h"

namespace weir::core {
namespace detail {
std::atomic<bool> g_tracing{false};
}
namespace {

Counter g_exported("weir_otlp_spans_total", "Spans handed to the OTLP exporter, by outcome",
                   "result=\"exported\"");
Counter g_dropped("weir_otlp_spans_total", "Spans handed to the OTLP exporter, by outcome",
                  "result=\"dropped\"");
Counter g_failed("weir_otlp_spans_total", "Spans handed to the OTLP exporter, by outcome",
                 "result=\"failed\"");
Counter g_sampled("weir_otlp_sampling_decisions_total",
                  "Spans started while tracing, by head-sampling decision", "decision=\"sampled\"");
Counter g_not_sampled("weir_otlp_sampling_decisions_total",
                      "Spans started while tracing, by head-sampling decision",
                      "decision=\"not_sampled\"");

constexpr uint8_t kSampledFlag = 0x01;  // W3C trace-flags
constexpr uint64_t kAllSampled = uint64_t{1} << 63;

// --otlp-sample-ratio as the bound trace_id_sampled() compares with, so a root span pays a
// load and a compare, not a multiply.
std::atomic<uint64_t> g_sample_bound{kAllSampled};

uint64_t sample_bound(double ratio) {
  if (!(ratio > 0)) return 0;  // NaN included
  if (ratio >= 1) return kAllSampled;
  return static_cast<uint64_t>(std::ldexp(ratio, 63));
}

bool under_bound(const uint8_t trace_id[16], uint64_t bound) {
  uint64_t x = 0;
  for (int i = 8; i < 16; ++i) x = x << 8 | trace_id[i];
  return (x >> 1) < bound;
}

// ---------------------------------------------------------------- ids

// splitmix64: one add and three multiply-xor steps per 64 bits, seeded once per thread.
uint64_t next_random() {
  thread_local uint64_t state = [] {
    std::random_device device;
    return (uint64_t{device()} << 32) ^ device() ^ static_cast<uint64_t>(wall_ns());
  }();
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Never all zeros; no bit is forced either, since the sampling decision reads the id's bits
// as uniform.
void fill_random(uint8_t* out, size_t n) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t r;
    do r = next_random();
    while (r == 0);
    std::memcpy(out + i, &r, std::min<size_t>(8, n - i));
  }
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;  // W3C: lowercase only
}

// Lowercase hex into bytes; false when a digit is not one or, with `nonzero`, all are zeros.
bool parse_hex(std::string_view text, uint8_t* out, bool nonzero) {
  uint8_t any = 0;
  for (size_t i = 0; i < text.size() / 2; ++i) {
    int hi = hex_value(text[2 * i]), lo = hex_value(text[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
    any |= out[i];
  }
  return !nonzero || any != 0;
}

void append_hex(std::string* out, const uint8_t* bytes, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    out->push_back(kDigits[bytes[i] >> 4]);
    out->push_back(kDigits[bytes[i] & 15]);
  }
}

// ---------------------------------------------------------------- per-thread rings

// Single producer (the recording thread), single consumer (the exporter thread).
struct SpanRing {
  static constexpr size_t kCapacity = 2048;
  std::unique_ptr<Span[]> slots{new Span[kCapacity]};
  alignas(64) std::atomic<uint64_t> head{0};  // written by the consumer
  alignas(64) std::atomic<uint64_t> tail{0};  // written by the producer

  bool push(const Span& span) {
    uint64_t t = tail.load(std::memory_order_relaxed);
    if (t - head.load(std::memory_order_acquire) == kCapacity) return false;
    slots[t % kCapacity] = span;
    tail.store(t + 1, std::memory_order_release);
    return true;
  }
  bool pop(Span* span) {
    uint64_t h = head.load(std::memory_order_relaxed);
    if (h == tail.load(std::memory_order_acquire)) return false;
    *span = slots[h % kCapacity];
    head.store(h + 1, std::memory_order_release);
    return true;
  }
};

// Rings live until the process ends (freed with g_rings, after every thread was joined): a
// thread that exits leaves its spans to be exported.
std::mutex g_rings_mutex;
std::vector<std::unique_ptr<SpanRing>> g_rings;

SpanRing& thread_ring() {
  thread_local SpanRing* ring = [] {
    auto owned = std::make_unique<SpanRing>();
    SpanRing* r = owned.get();
    std::lock_guard<std::mutex> lock(g_rings_mutex);
    g_rings.push_back(std::move(owned));
    return r;
  }();
  return *ring;
}

// ---------------------------------------------------------------- JSON

void append_json_string(std::string* out, std::string_view text) {
  out->push_back('"');
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char escape[8];
      std::snprintf(escape, sizeof escape, "\\u%04x", c);
      out->append(escape);
    } else {
      out->push_back(c < 0x80 ? static_cast<char>(c) : '?');  // ids and paths are ASCII
    }
  }
  out->push_back('"');
}

void append_span(std::string* out, const Span& s) {
  out->append("{\"traceId\":\"");
  append_hex(out, s.trace_id, 16);
  out->append("\",\"spanId\":\"");
  append_hex(out, s.span_id, 8);
  out->push_back('"');
  if (s.has_parent) {
    out->append(",\"parentSpanId\":\"");
    append_hex(out, s.parent_span_id, 8);
    out->push_back('"');
  }
  if (s.trace_state_length > 0) {
    out->append(",\"traceState\":");
    append_json_string(out, std::string_view(s.trace_state, s.trace_state_length));
  }
  out->append(",\"name\":");
  append_json_string(out, s.name);
  out->append(",\"kind\":" + std::to_string(static_cast<int>(s.kind)));
  out->append(",\"startTimeUnixNano\":\"" + std::to_string(s.start_ns));
  out->append("\",\"endTimeUnixNano\":\"" + std::to_string(s.end_ns) + "\",\"attributes\":[");
  for (size_t i = 0; i < s.attribute_count; ++i) {
    const Span::Attribute& a = s.attributes[i];
    if (i) out->push_back(',');
    out->append("{\"key\":");
    append_json_string(out, a.key);
    if (a.is_text) {
      out->append(",\"value\":{\"stringValue\":");
      append_json_string(out, std::string_view(s.text + a.text_offset, a.text_length));
      out->append("}}");
    } else {  // proto3 JSON: 64-bit integers are strings
      out->append(",\"value\":{\"intValue\":\"" + std::to_string(a.number) + "\"}}");
    }
  }
  out->append("]}");
}

// ---------------------------------------------------------------- the exporter

struct Endpoint {
  std::string host, port, path;
};

bool parse_endpoint(std::string_view url, Endpoint* out, std::string* error) {
  constexpr std::string_view kScheme = "http://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    *error = "--otlp-endpoint must start with http:// (no TLS)";
    return false;
  }
  url.remove_prefix(kScheme.size());
  size_t slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  out->path = slash == std::string_view::npos ? "/v1/traces" : std::string(url.substr(slash));
  size_t colon = authority.rfind(':');
  out->host = std::string(authority.substr(0, colon));
  out->port = colon == std::string_view::npos ? "80" : std::string(authority.substr(colon + 1));
  if (out->host.size() > 2 && out->host.front() == '[')
    out->host = out->host.substr(1, out->host.size() - 2);
  if (out->host.empty() || out->port.empty()) {
    *error = "--otlp-endpoint: expected http://HOST:PORT/PATH";
    return false;
  }
  return true;
}

class Exporter {
 public:
  Exporter(TraceExporterConfig config, Endpoint endpoint)
      : config_(std::move(config)), endpoint_(std::move(endpoint)) {
    batch_.reserve(kExportBatch);
    thread_ = std::thread([this] { run(); });
  }
  ~Exporter() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
  }

 private:
  // Drains the rings every 50 ms (a ring holds 2048 spans: 40k spans/s per thread before
  // drops); posts when a batch is full or a second passed.
  void run() {
    auto last = std::chrono::steady_clock::now();
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait_for(lock, std::chrono::milliseconds(50), [this] { return stopping_; });
        final_pass_ = stopping_;
      }
      drain();
      auto now = std::chrono::steady_clock::now();
      if (!batch_.empty() &&
          (final_pass_ || now - last >= std::chrono::milliseconds(config_.interval_ms))) {
        post_batch();
        last = now;
      }
      if (final_pass_) return;
    }
  }
  void drain() {
    std::vector<SpanRing*> rings;
    {
      std::lock_guard<std::mutex> lock(g_rings_mutex);
      for (const auto& ring : g_rings) rings.push_back(ring.get());
    }
    Span span;
    for (SpanRing* ring : rings) {
      while (ring->pop(&span)) {
        batch_.push_back(span);
        if (batch_.size() == kExportBatch) post_batch();
      }
    }
  }
  void post_batch() {
    if (giving_up_) {  // stopping, and the collector failed once: exit without waiting on it
      g_failed.inc(batch_.size());
      batch_.clear();
      return;
    }
    body_.clear();
    encode_otlp_json(batch_, config_.service_name, &body_);
    std::string reason;
    if (post(&reason)) {
      g_exported.inc(batch_.size());
    } else {
      g_failed.inc(batch_.size());
      giving_up_ = final_pass_;
      log_event(LogLevel::kWarn, "otlp export failed",
                {{"spans", static_cast<uint64_t>(batch_.size())}, {"reason", reason}});
    }
    batch_.clear();
  }
  bool post(std::string* reason);

  TraceExporterConfig config_;
  Endpoint endpoint_;
  std::vector<Span> batch_;
  std::string body_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool final_pass_ = false, giving_up_ = false;  // the exporter thread's own
  std::thread thread_;
};

// One connection per batch (a batch a second at most): connect, send, read the status line.
bool Exporter::post(std::string* reason) {
  addrinfo hints{}, *found = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (int rc = getaddrinfo(endpoint_.host.c_str(), endpoint_.port.c_str(), &hints, &found)) {
    *reason = gai_strerror(rc);
    return false;
  }
  int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval timeout{config_.timeout_ms / 1000,
                  static_cast<suseconds_t>(config_.timeout_ms % 1000 * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);  // bounds connect too
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  bool connected = fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) == 0;
  freeaddrinfo(found);
  if (!connected) {
    *reason = std::string("connect: ") + std::strerror(errno);
    if (fd >= 0) close(fd);
    return false;
  }
  std::string request = "POST " + endpoint_.path + " HTTP/1.1\r\nHost: " + endpoint_.host + ":" +
                        endpoint_.port +
                        "\r\nContent-Type: application/json\r\nConnection: close\r\n"
                        "Content-Length: " +
                        std::to_string(body_.size()) + "\r\n\r\n";
  request += body_;
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      *reason = std::string("send: ") + std::strerror(errno);
      close(fd);
      return false;
    }
    sent += static_cast<size_t>(n);
  }
  // The status line decides; the rest is read to its end (Connection: close), so closing
  // does not reset the connection under the collector's answer.
  char answer[64], rest[4096];
  size_t got = 0;
  for (;;) {
    char* into = got < sizeof answer ? answer + got : rest;
    size_t room = got < sizeof answer ? sizeof answer - got : sizeof rest;
    ssize_t n = recv(fd, into, room, 0);
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  close(fd);
  if (got < 12 || std::memcmp(answer, "HTTP/1.", 7) != 0) {
    *reason = "no HTTP answer";
    return false;
  }
  if (answer[9] != '2') {
    *reason = "status " + std::string(answer + 9, 3);
    return false;
  }
  return true;
}

std::unique_ptr<Exporter> g_exporter;

}  // namespace

// ---------------------------------------------------------------- public

bool parse_traceparent(std::string_view text, TraceContext* out) {
  // 00-<32 hex>-<16 hex>-<2 hex>
  if (text.size() != 55 || text.substr(0, 3) != "00-" || text[35] != '-' || text[52] != '-')
    return false;
  return parse_hex(text.substr(3, 32), out->trace_id, true) &&
         parse_hex(text.substr(36, 16), out->span_id, true) &&
         parse_hex(text.substr(53, 2), &out->flags, false);
}

void new_trace_id(uint8_t out[16]) {
  fill_random(out, 16);
}
void new_span_id(uint8_t out[8]) {
  fill_random(out, 8);
}

bool trace_id_sampled(const uint8_t trace_id[16], double ratio) {
  return under_bound(trace_id, sample_bound(ratio));
}

void set_trace_sample_ratio(double ratio) {
  g_sample_bound.store(sample_bound(ratio), std::memory_order_relaxed);
}

int64_t wall_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// The decision comes first: an unsampled span stops before the clock, the span id and the
// tracestate copy.
void Span::start(const char* span_name, Kind span_kind, std::string_view traceparent,
                 std::string_view tracestate, int64_t start) {
  name = span_name;
  kind = span_kind;
  attribute_count = 0;
  text_used = 0;
  trace_state_length = 0;
  TraceContext parent;
  has_parent = !traceparent.empty() && parse_traceparent(traceparent, &parent);
  if (has_parent) {
    std::memcpy(trace_id, parent.trace_id, sizeof trace_id);
    sampled = (parent.flags & kSampledFlag) != 0;
  } else {
    new_trace_id(trace_id);
    sampled = under_bound(trace_id, g_sample_bound.load(std::memory_order_relaxed));
  }
  (sampled ? g_sampled : g_not_sampled).inc();
  if (!sampled) return;
  start_ns = start ? start : wall_ns();
  end_ns = start_ns;
  if (has_parent) {
    std::memcpy(parent_span_id, parent.span_id, sizeof parent_span_id);
    if (tracestate.size() <= kTraceStateBytes) {  // cut short it would mean something else
      std::memcpy(trace_state, tracestate.data(), tracestate.size());
      trace_state_length = static_cast<uint16_t>(tracestate.size());
    }
  }
  new_span_id(span_id);
}

void Span::add(const char* key, std::string_view value) {
  if (!sampled || attribute_count == kMaxAttributes) return;
  size_t n = std::min(value.size(), kTextBytes - text_used);
  std::memcpy(text + text_used, value.data(), n);
  attributes[attribute_count++] =
      Attribute{key, 0, text_used, static_cast<uint16_t>(n), /*is_text=*/true};
  text_used = static_cast<uint16_t>(text_used + n);
}

void Span::add(const char* key, int64_t number) {
  if (!sampled || attribute_count == kMaxAttributes) return;
  attributes[attribute_count++] = Attribute{key, number, 0, 0, /*is_text=*/false};
}

void Span::end() {
  if (!sampled) return;
  end_ns = wall_ns();
  if (!tracing_enabled() || !thread_ring().push(*this)) g_dropped.inc();
}

void encode_otlp_json(std::span<const Span> spans, std::string_view service_name,
                      std::string* out) {
  out->append(
      "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
      "\"value\":{\"stringValue\":");
  append_json_string(out, service_name);
  out->append("}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"weir\"},\"spans\":[");
  for (size_t i = 0; i < spans.size(); ++i) {
    if (i) out->push_back(',');
    append_span(out, spans[i]);
  }
  out->append("]}]}]}");
}

bool start_trace_exporter(const TraceExporterConfig& config, std::string* error) {
  Endpoint endpoint;
  if (!parse_endpoint(config.endpoint, &endpoint, error)) return false;
  set_trace_sample_ratio(config.sample_ratio);
  g_exporter = std::make_unique<Exporter>(config, std::move(endpoint));
  detail::g_tracing.store(true, std::memory_order_relaxed);
  return true;
}

void stop_trace_exporter() {
  detail::g_tracing.store(false, std::memory_order_relaxed);
  g_exporter.reset();  // posts what the rings hold
}

}  // namespace weir::core
