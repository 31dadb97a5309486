// tests/trace_test.cc — W3C traceparent parsing, span ids, and the OTLP JSON encoding.
#include "core/trace.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace weir::core {
namespace {

constexpr std::string_view kParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

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

TEST(TraceExporter, RefusesAnEndpointThatIsNotHttp) {
  std::string error;
  EXPECT_FALSE(start_trace_exporter({"https://collector:4318/v1/traces"}, &error));
  EXPECT_NE(error.find("http://"), std::string::npos);
  EXPECT_FALSE(tracing_enabled());
}

}  // namespace
}  // namespace weir::core
