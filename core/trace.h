// core/trace.h — spans for the OTLP/HTTP JSON exporter (--otlp-endpoint): W3C trace ids, the
// span record, a per-thread queue, and the one exporter thread that posts them in batches.
//
// A layer records a span on its own thread: Span::start(), add() attributes, end(). end()
// copies the span (fixed size, no allocation) into the calling thread's ring; the exporter
// thread drains every ring, and every second or at kExportBatch spans posts one OTLP JSON
// document with a blocking HTTP/1.1 POST. A full ring drops the span (counted), so a slow or
// dead collector never blocks a reactor. With the exporter off, recording costs one branch:
// callers test tracing_enabled() first.
//
// Head sampling (--otlp-sample-ratio), parent-based as OpenTelemetry's default sampler: a span
// whose traceparent has the sampled flag (0x01) is recorded, one whose flag is clear is not;
// a span without a parent is recorded when its trace id falls under the ratio
// (trace_id_sampled(): the same id gets the same answer on every node). An unsampled span is
// decided in start() and costs no span id, no attribute copy, no clock read at end(), no ring
// push. Decisions are counted in weir_otlp_sampling_decisions_total{decision}.
//
//   reactor thread: span.end() -> [ring, 2048 spans] --+
//   reactor thread: span.end() -> [ring, 2048 spans] --+--> exporter thread -> POST /v1/traces
//
// Counted in weir_otlp_spans_total{result="exported|dropped|failed"}.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace weir::core {

constexpr size_t kExportBatch = 512;

// A W3C trace context (traceparent: 00-<trace id>-<parent span id>-<flags>).
struct TraceContext {
  uint8_t trace_id[16];
  uint8_t span_id[8];
  uint8_t flags = 0;
};

// Parses a version-00 traceparent; false when malformed or an id is all zeros.
bool parse_traceparent(std::string_view text, TraceContext* out);
// Random ids from a per-thread generator (never all zeros). Thread-safe.
void new_trace_id(uint8_t out[16]);
void new_span_id(uint8_t out[8]);
// Wall clock in nanoseconds since the epoch. Thread-safe.
int64_t wall_ns();

// The ratio decision for a trace without a sampled parent, as OpenTelemetry's TraceIdRatioBased
// (Go, Java): the trace id's last 8 bytes, big-endian, shifted right by one, under ratio * 2^63.
// 0 samples nothing, 1 everything. Pure and deterministic: every node decides alike.
bool trace_id_sampled(const uint8_t trace_id[16], double ratio);
// The ratio root spans are sampled with (clamped to 0..1). Before the reactors record; the
// exporter's config sets it. Thread-safe.
void set_trace_sample_ratio(double ratio);

namespace detail {
extern std::atomic<bool> g_tracing;
}
// True while the exporter runs. Thread-safe; the one branch on the hot path.
inline bool tracing_enabled() {
  return detail::g_tracing.load(std::memory_order_relaxed);
}

// One span, fixed size: attribute keys are static strings, texts are copied (cut at capacity).
// Not initialised until start(). Used by one thread at a time.
class Span {
 public:
  enum class Kind : uint8_t { kInternal = 1, kServer = 2 };
  static constexpr size_t kMaxAttributes = 6;
  static constexpr size_t kTextBytes = 256;
  static constexpr size_t kTraceStateBytes = 256;

  Span() {}  // NOLINT: left uninitialised on purpose (start() fills it)
  // Starts the span at `start_ns` (0: now), in the trace `traceparent` names when it parses
  // (its span becomes our parent, tracestate kept), else in a new trace. Decides `sampled`:
  // the parent's flag, else the ratio on the trace id. An unsampled span is left mostly
  // unfilled (no span id, attributes or times): add() and end() then do nothing.
  void start(const char* name, Kind kind, std::string_view traceparent = {},
             std::string_view tracestate = {}, int64_t start_ns = 0);
  void add(const char* key, std::string_view text);
  void add(const char* key, int64_t number);
  // Ends the span now and queues it for the exporter (or drops it, counted); nothing when not
  // sampled.
  void end();

  struct Attribute {
    const char* key;
    int64_t number;
    uint16_t text_offset, text_length;
    bool is_text;
  };
  const char* name;
  Kind kind;
  bool has_parent;
  bool sampled;  // W3C trace-flags bit 0x01 of this span's context
  uint8_t trace_id[16], span_id[8], parent_span_id[8];
  int64_t start_ns, end_ns;
  uint8_t attribute_count;
  uint16_t text_used, trace_state_length;
  Attribute attributes[kMaxAttributes];
  char text[kTextBytes];
  char trace_state[kTraceStateBytes];
};

// Appends the OTLP/HTTP JSON document for `spans` to `out`. Pure: the unit tests call it.
void encode_otlp_json(std::span<const Span> spans, std::string_view service_name, std::string* out);

struct TraceExporterConfig {
  std::string endpoint;  // http://HOST:PORT/PATH
  std::string service_name = "weir";
  int64_t interval_ms = 1000;
  int64_t timeout_ms = 2000;  // connect, send and answer, each
  double sample_ratio = 1.0;  // root spans recorded (0..1); a parent's sampled flag wins
};
// Starts the exporter thread; false with a reason when the endpoint does not parse. Call
// once, from the main thread, before the reactors record.
bool start_trace_exporter(const TraceExporterConfig& config, std::string* error);
// Stops recording, posts what is queued, joins the thread. Main thread; idempotent.
void stop_trace_exporter();

}  // namespace weir::core
