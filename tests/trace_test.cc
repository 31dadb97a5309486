// tests/trace_test.cc — W3C traceparent parsing, span ids, head sampling, and the OTLP JSON
// encoding; the exporter posts to a collector on a loopback socket.
#include "core/trace.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <thread>

namespace weir::core {
namespace {

constexpr std::string_view kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
constexpr std::string_view kUnsampledParent =
    "00-5cf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";

std::string hex(const uint8_t* bytes, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    char b[3];
    std::snprintf(b, sizeof b, "%02x", bytes[i]);
    out += b;
  }
  return out;
}

TEST(TraceContext, ParsesVersion00Traceparent) {
  TraceContext c;
  ASSERT_TRUE(parse_traceparent(kParent, &c));
  EXPECT_EQ(hex(c.trace_id, 16), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(hex(c.span_id, 8), "00f067aa0ba902b7");
  EXPECT_EQ(c.flags, 1);
}

TEST(TraceContext, RefusesMalformedTraceparent) {
  TraceContext c;
  EXPECT_FALSE(parse_traceparent("", &c));
  EXPECT_FALSE(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &c));
  EXPECT_FALSE(parse_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", &c));
  EXPECT_FALSE(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01", &c));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", &c));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", &c));
  EXPECT_FALSE(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7-01", &c));
  EXPECT_FALSE(parse_traceparent(std::string(kParent) + "-", &c));
}

TEST(TraceIds, AreRandomAndNeverZero) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    uint8_t trace[16], span[8];
    new_trace_id(trace);
    new_span_id(span);
    EXPECT_NE(hex(trace, 16), std::string(32, '0'));
    EXPECT_NE(hex(span, 8), std::string(16, '0'));
    seen.insert(hex(trace, 16));
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(TraceSpan, ContinuesTheTraceItsTraceparentNames) {
  Span s;
  s.start("room.publish", Span::Kind::kServer, kParent, "congo=t61rcWkgMzE", 1000);
  EXPECT_TRUE(s.has_parent);
  EXPECT_EQ(hex(s.trace_id, 16), "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(hex(s.parent_span_id, 8), "00f067aa0ba902b7");
  EXPECT_NE(hex(s.span_id, 8), "00f067aa0ba902b7");
  EXPECT_EQ(std::string(s.trace_state, s.trace_state_length), "congo=t61rcWkgMzE");
  EXPECT_EQ(s.start_ns, 1000);
}

TEST(TraceSpan, StartsANewTraceWithoutAValidTraceparent) {
  Span s;
  s.start("room.publish", Span::Kind::kServer, "garbage", "kept=no");
  EXPECT_FALSE(s.has_parent);
  EXPECT_EQ(s.trace_state_length, 0);
  EXPECT_GT(s.start_ns, 0);
}

TEST(TraceSpan, CutsTextAttributesAtCapacity) {
  Span s;
  s.start("x", Span::Kind::kInternal);
  s.add("a", std::string(200, 'a'));
  s.add("b", std::string(200, 'b'));
  ASSERT_EQ(s.attribute_count, 2);
  EXPECT_EQ(s.attributes[0].text_length, 200);
  EXPECT_EQ(s.attributes[1].text_length, Span::kTextBytes - 200);
  for (int i = 0; i < 10; ++i) s.add("n", int64_t{i});
  EXPECT_EQ(s.attribute_count, Span::kMaxAttributes);
}

TEST(TraceJson, EncodesTheOtlpShape) {
  Span s;
  s.start("room.publish", Span::Kind::kServer, kParent, "a=b", 1700000000000000000);
  s.add("weir.room.id", "lobby\"1");
  s.add("weir.room.offset", int64_t{42});
  s.end_ns = 1700000000000001000;
  std::string json;
  encode_otlp_json(std::span<const Span>(&s, 1), "weir", &json);
  const std::string expected =
      "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":"
      "{\"stringValue\":\"weir\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"weir\"},\"spans\":[{"
      "\"traceId\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"spanId\":\"" +
      hex(s.span_id, 8) +
      "\",\"parentSpanId\":\"00f067aa0ba902b7\",\"traceState\":\"a=b\",\"name\":\"room.publish\","
      "\"kind\":2,\"startTimeUnixNano\":\"1700000000000000000\",\"endTimeUnixNano\":"
      "\"1700000000000001000\",\"attributes\":[{\"key\":\"weir.room.id\",\"value\":{"
      "\"stringValue\":\"lobby\\\"1\"}},{\"key\":\"weir.room.offset\",\"value\":{\"intValue\":"
      "\"42\"}}]}]}]}]}";
  EXPECT_EQ(json, expected);
}

TEST(TraceJson, LeavesOutParentAndStateOfARootSpan) {
  Span s;
  s.start("room.fanout", Span::Kind::kInternal);
  s.add("p", std::string_view("\x01\xff", 2));
  std::string json;
  encode_otlp_json(std::span<const Span>(&s, 1), "svc", &json);
  EXPECT_EQ(json.find("parentSpanId"), std::string::npos);
  EXPECT_EQ(json.find("traceState"), std::string::npos);
  EXPECT_NE(json.find("\"stringValue\":\"svc\""), std::string::npos);
  EXPECT_NE(json.find("\"stringValue\":\"\\u0001?\""), std::string::npos);
  EXPECT_NE(json.find("\"kind\":1"), std::string::npos);
}

// ---------------------------------------------------------------- head sampling

// Restores the process-wide ratio (1, the default) when a test ends.
struct SampleRatio {
  explicit SampleRatio(double ratio) { set_trace_sample_ratio(ratio); }
  ~SampleRatio() { set_trace_sample_ratio(1.0); }
};

// A trace id whose last 8 bytes are `low` (big-endian), the rest 0xab.
std::array<uint8_t, 16> trace_id_ending(uint64_t low) {
  std::array<uint8_t, 16> id;
  id.fill(0xab);
  for (int i = 15; i >= 8; --i, low >>= 8) id[i] = static_cast<uint8_t>(low);
  return id;
}

TEST(TraceSampling, RatioComparesTheTraceIdsLast8BytesAsOpenTelemetryDoes) {
  // (last 8 bytes >> 1) < ratio * 2^63, the bytes big-endian.
  EXPECT_TRUE(trace_id_sampled(trace_id_ending(0x7fffffffffffffff).data(), 0.5));
  EXPECT_FALSE(trace_id_sampled(trace_id_ending(0x8000000000000000).data(), 0.5));
  EXPECT_TRUE(trace_id_sampled(trace_id_ending(0).data(), 0.001));
  EXPECT_FALSE(trace_id_sampled(trace_id_ending(0).data(), 0));
  EXPECT_TRUE(trace_id_sampled(trace_id_ending(~uint64_t{0}).data(), 1));
  EXPECT_FALSE(trace_id_sampled(trace_id_ending(~uint64_t{0}).data(), 0.9999));
  auto high = trace_id_ending(0x1234);
  high[0] = high[7] = 0xff;  // the first 8 bytes play no part
  EXPECT_EQ(trace_id_sampled(high.data(), 0.25),
            trace_id_sampled(trace_id_ending(0x1234).data(), 0.25));
}

TEST(TraceSampling, DecisionIsDeterministicPerTraceIdAndGrowsWithTheRatio) {
  for (int i = 0; i < 1000; ++i) {
    uint8_t id[16];
    new_trace_id(id);
    bool at_30 = trace_id_sampled(id, 0.3);
    EXPECT_EQ(trace_id_sampled(id, 0.3), at_30) << "the same id, the same answer";
    EXPECT_TRUE(!at_30 || trace_id_sampled(id, 0.6)) << "sampled at 0.3 means at 0.6 too";
  }
}

TEST(TraceSampling, HalfOfManyRandomTraceIdsAreSampledAtRatioHalf) {
  constexpr int kIds = 100000;
  int half = 0, tenth = 0;
  for (int i = 0; i < kIds; ++i) {
    uint8_t id[16];
    new_trace_id(id);
    half += trace_id_sampled(id, 0.5);
    tenth += trace_id_sampled(id, 0.1);
  }
  // Wide bounds: the standard deviation is about 160 and 95 ids.
  EXPECT_NEAR(half, kIds / 2, kIds / 50);
  EXPECT_NEAR(tenth, kIds / 10, kIds / 50);
}

TEST(TraceSampling, RootSpansFollowTheRatio) {
  {
    SampleRatio none(0);
    Span s;
    s.start("room.fanout", Span::Kind::kInternal);
    EXPECT_FALSE(s.sampled);
  }
  {
    SampleRatio half(0.5);
    int sampled = 0;
    for (int i = 0; i < 10000; ++i) {
      Span s;
      s.start("room.fanout", Span::Kind::kInternal);
      EXPECT_EQ(s.sampled, trace_id_sampled(s.trace_id, 0.5));
      sampled += s.sampled;
    }
    EXPECT_NEAR(sampled, 5000, 1000);
  }
  Span s;
  s.start("room.fanout", Span::Kind::kInternal);
  EXPECT_TRUE(s.sampled) << "ratio 1 (the default) samples every root";
}

TEST(TraceSampling, AParentsSampledFlagDecidesWhateverTheRatio) {
  {
    SampleRatio none(0);
    Span s;
    s.start("room.publish", Span::Kind::kServer, kParent);
    EXPECT_TRUE(s.sampled) << "flags 01";
  }
  Span s;  // ratio 1
  s.start("room.publish", Span::Kind::kServer, kUnsampledParent, "a=b");
  EXPECT_FALSE(s.sampled) << "flags 00";
  EXPECT_TRUE(s.has_parent);
  EXPECT_EQ(hex(s.trace_id, 16), "5cf92f3577b34da6a3ce929d0e0e4736") << "still the parent's trace";
  Span other;
  other.start("x", Span::Kind::kServer, "00-5cf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
  EXPECT_TRUE(other.sampled) << "bit 0x01 decides; other flag bits do not";
}

TEST(TraceSampling, AnUnsampledSpanTakesNoAttributes) {
  Span s;
  s.start("room.publish", Span::Kind::kServer, kUnsampledParent);
  s.add("weir.room.id", "lobby");
  s.add("weir.room.offset", int64_t{1});
  EXPECT_EQ(s.attribute_count, 0);
  EXPECT_EQ(s.text_used, 0);
  s.end();  // nothing queued, nothing counted as dropped
}

// An OTLP collector on 127.0.0.1: answers every POST 200 and keeps the bodies.
class LoopbackCollector {
 public:
  LoopbackCollector() {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(listen(listener_, 16), 0);
    getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~LoopbackCollector() {
    shutdown(listener_, SHUT_RDWR);  // wakes accept()
    thread_.join();
    close(listener_);
  }
  std::string endpoint() const {
    return "http://127.0.0.1:" + std::to_string(port_) + "/v1/traces";
  }
  // Every posted body so far, joined. After stop_trace_exporter() returns it is complete: the
  // exporter waits for each answer, and a body is kept before it is answered.
  std::string bodies() {
    std::lock_guard<std::mutex> lock(mutex_);
    return bodies_;
  }

 private:
  void serve() {
    for (int fd; (fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC)) >= 0; close(fd)) {
      std::string request;
      char buffer[65536];
      size_t body_at = std::string::npos, length = 0;
      while (body_at == std::string::npos || request.size() < body_at + length) {
        ssize_t n = recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        request.append(buffer, static_cast<size_t>(n));
        if (body_at == std::string::npos && (body_at = request.find("\r\n\r\n")) != request.npos) {
          body_at += 4;
          size_t at = request.find("Content-Length: ");
          length = at < body_at ? std::stoul(request.substr(at + 16)) : 0;
        }
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (body_at != std::string::npos) bodies_ += request.substr(body_at);
      }
      constexpr std::string_view kAnswer =
          "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      send(fd, kAnswer.data(), kAnswer.size(), MSG_NOSIGNAL);
    }
  }

  int listener_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::string bodies_;
};

size_t count_of(const std::string& text, std::string_view what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// Records `roots` root spans, one span under kParent (sampled) and one under kUnsampledParent,
// with the exporter posting to a loopback collector at `ratio`; the bodies it received.
std::string export_with_ratio(double ratio, int roots) {
  LoopbackCollector collector;
  TraceExporterConfig config;
  config.endpoint = collector.endpoint();
  config.sample_ratio = ratio;
  std::string error;
  EXPECT_TRUE(start_trace_exporter(config, &error)) << error;
  for (int i = 0; i < roots; ++i) {
    Span s;
    s.start("room.fanout", Span::Kind::kInternal);
    s.end();
  }
  Span sampled, unsampled;
  sampled.start("room.publish", Span::Kind::kServer, kParent);
  sampled.end();
  unsampled.start("room.publish", Span::Kind::kServer, kUnsampledParent);
  unsampled.end();
  stop_trace_exporter();  // posts what is queued
  set_trace_sample_ratio(1.0);
  return collector.bodies();
}

TEST(TraceExporter, RatioZeroExportsNoRootSpanButASampledParentsChild) {
  std::string posted = export_with_ratio(0, 200);
  EXPECT_EQ(count_of(posted, "\"spanId\""), 1u) << posted;
  EXPECT_NE(posted.find("4bf92f3577b34da6a3ce929d0e0e4736"), std::string::npos);
  EXPECT_EQ(posted.find("room.fanout"), std::string::npos);
}

TEST(TraceExporter, RatioOneExportsEveryRootSpanButNoUnsampledParentsChild) {
  std::string posted = export_with_ratio(1, 200);
  EXPECT_EQ(count_of(posted, "\"name\":\"room.fanout\""), 200u);
  EXPECT_EQ(count_of(posted, "\"name\":\"room.publish\""), 1u);
  EXPECT_EQ(posted.find("5cf92f3577b34da6a3ce929d0e0e4736"), std::string::npos)
      << "the span under flags 00 is not exported";
}

TEST(TraceExporter, RefusesAnEndpointThatIsNotHttp) {
  std::string error;
  EXPECT_FALSE(start_trace_exporter({"https://collector:4318/v1/traces"}, &error));
  EXPECT_NE(error.find("http://"), std::string::npos);
  EXPECT_FALSE(tracing_enabled());
}

}  // namespace
}  // namespace weir::core
