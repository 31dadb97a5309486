// tests/load_tool_test.cc — the pieces of `weir-load` that can be checked without a server:
// histogram percentiles, the echo payload check, argument parsing, URL parsing, CSV/JSON
// output, the SVG chart's well-formedness, the client's upgrade check, and the connector on
// real loopback sockets. End-to-end runs are in tests/interop/load_tool_test.sh.
//
// weir-tests links libweir.a only, not the tool's objects, so the tool's sources under test
// are compiled into this file (none of them defines main()).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/reactor.h"
#include "net/socket_ops.h"
#include "tools/load/connector.cc"
#include "tools/load/echo_payload.cc"
#include "tools/load/histogram.cc"
#include "tools/load/options.cc"
#include "tools/load/report.cc"
#include "tools/load/svg_plot.cc"
#include "tools/load/target.cc"
#include "tools/load/ws_client.cc"

namespace weir::load {
namespace {

// ---------------------------------------------------------------- Histogram

TEST(LoadHistogram, ValuesBelowThirtyTwoAreExact) {
  Histogram h;
  for (uint64_t v = 0; v < 32; ++v) h.record(v);
  EXPECT_EQ(h.count(), 32u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 31u);
  EXPECT_EQ(h.percentile(50), 15u);
  EXPECT_EQ(h.percentile(100), 31u);
}

TEST(LoadHistogram, EveryBucketHoldsItsValuesWithinOneThirtySecond) {
  std::vector<uint64_t> values = {
      32, 33, 63, 64, 65, 1000, 123456, 999999999, 1ull << 40, (1ull << 40) + 12345, UINT64_MAX};
  for (int shift = 5; shift < 64; ++shift) values.push_back((1ull << shift) - 1);
  for (uint64_t v : values) {
    size_t b = Histogram::bucket_of(v);
    ASSERT_LT(b, Histogram::kBucketCount) << v;
    EXPECT_LE(Histogram::bucket_low(b), v) << v;
    EXPECT_GE(Histogram::bucket_high(b), v) << v;
    EXPECT_LE(Histogram::bucket_high(b) - Histogram::bucket_low(b), v / 32) << v;
  }
}

TEST(LoadHistogram, BucketsAreContiguousAndIncreasing) {
  for (size_t i = 1; i < Histogram::kBucketCount; ++i)
    ASSERT_EQ(Histogram::bucket_low(i), Histogram::bucket_high(i - 1) + 1) << i;
}

TEST(LoadHistogram, PercentilesOfAUniformSpreadAreWithinThreePercent) {
  Histogram h;
  for (uint64_t us = 1; us <= 100000; ++us) h.record(us * 1000);  // 1 us .. 100 ms in ns
  auto near = [](double got, double want) { return std::fabs(got - want) <= want / 32 + 1; };
  EXPECT_TRUE(near(h.percentile(50), 50e6)) << h.percentile(50);
  EXPECT_TRUE(near(h.percentile(90), 90e6)) << h.percentile(90);
  EXPECT_TRUE(near(h.percentile(99), 99e6)) << h.percentile(99);
  EXPECT_EQ(h.max(), 100000000u);
  EXPECT_EQ(h.percentile(100), 100000000u);
  EXPECT_NEAR(h.mean(), 50000500.0, 1.0);
}

TEST(LoadHistogram, ATailShowsInP99ButNotInP50) {
  Histogram h;
  for (int i = 0; i < 980; ++i) h.record(1000000);  // 1 ms
  for (int i = 0; i < 20; ++i) h.record(50000000);  // 50 ms
  EXPECT_LE(h.percentile(50), 1000000u * 33 / 32);
  EXPECT_GE(h.percentile(99), 50000000u * 31 / 32);
}

TEST(LoadHistogram, PercentileIsClampedToTheObservedRange) {
  Histogram h;
  h.record(1000);
  EXPECT_EQ(h.percentile(0), 1000u);
  EXPECT_EQ(h.percentile(50), 1000u);
  EXPECT_EQ(h.percentile(99.9), 1000u);
}

TEST(LoadHistogram, EmptyReportsZeros) {
  Histogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.percentile(99), 0u);
  EXPECT_EQ(h.min(), 0u);
  EXPECT_EQ(h.max(), 0u);
  EXPECT_EQ(h.mean(), 0.0);
}

TEST(LoadHistogram, MergeEqualsRecordingEverythingInOne) {
  Histogram a, b, all;
  for (uint64_t v = 1; v < 5000; v += 7) {
    (v % 2 ? a : b).record(v * 131);
    all.record(v * 131);
  }
  a.merge(b);
  EXPECT_EQ(a.count(), all.count());
  EXPECT_EQ(a.min(), all.min());
  EXPECT_EQ(a.max(), all.max());
  for (double p : {1.0, 25.0, 50.0, 90.0, 99.0, 99.9})
    EXPECT_EQ(a.percentile(p), all.percentile(p)) << p;
  a.reset();
  EXPECT_EQ(a.count(), 0u);
}

// ---------------------------------------------------------------- echo payload

TEST(LoadEchoPayload, HeaderRoundTripsFiftySixBitsAndStaysAscii) {
  char header[kEchoHeaderSize];
  uint64_t seq = (1ull << 56) - 3, ns = 123456789012345ull;
  EchoPattern::encode_header(header, seq, ns);
  for (char c : header) EXPECT_EQ(static_cast<unsigned char>(c) & 0x80, 0);
  uint64_t s2 = 0, n2 = 0;
  EchoPattern::decode_header(header, &s2, &n2);
  EXPECT_EQ(s2, seq);
  EXPECT_EQ(n2, ns);
}

TEST(LoadEchoPayload, MessagesArePrintableTextThatDependsOnTheSequenceNumber) {
  EchoPattern p(200);
  std::string a(200, '\0'), b(200, '\0');
  p.write(a.data(), 1, 0);
  p.write(b.data(), 2, 0);
  EXPECT_NE(a.substr(kEchoHeaderSize), b.substr(kEchoHeaderSize));
  for (char c : a.substr(kEchoHeaderSize))
    EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7f)) << int(c);
}

TEST(LoadEchoPayload, VerifierAcceptsAnEchoSplitAtEveryByte) {
  EchoPattern p(100);
  EchoVerifier v(&p);
  for (uint64_t seq = 0; seq < 20; ++seq) {
    std::string msg(100, '\0');
    p.write(msg.data(), seq, 1000 + seq);
    size_t chunk = 1 + seq % 7;
    for (size_t off = 0; off < msg.size(); off += chunk)
      v.feed(msg.data() + off, std::min(chunk, msg.size() - off));
    EchoVerifier::Echo e = v.finish();
    EXPECT_TRUE(e.ok) << seq;
    EXPECT_EQ(e.send_ns, 1000 + seq);
  }
}

TEST(LoadEchoPayload, VerifierRejectsCorruptedTruncatedLongAndReorderedEchoes) {
  EchoPattern p(64);
  auto check = [&](auto mutate, uint64_t seq_sent) {
    EchoVerifier v(&p);
    std::string msg(64, '\0');
    p.write(msg.data(), seq_sent, 5);
    mutate(msg);
    v.feed(msg.data(), msg.size());
    return v.finish().ok;
  };
  EXPECT_TRUE(check([](std::string&) {}, 0));
  EXPECT_FALSE(check([](std::string& m) { m[40] ^= 1; }, 0));        // body byte flipped
  EXPECT_FALSE(check([](std::string& m) { m[3] |= 0x80; }, 0));      // header byte corrupted
  EXPECT_FALSE(check([](std::string& m) { m.pop_back(); }, 0));      // truncated
  EXPECT_FALSE(check([](std::string& m) { m.push_back('x'); }, 0));  // too long
  EXPECT_FALSE(check([](std::string&) {}, 1));                       // seq 1 where 0 expected
}

TEST(LoadEchoPayload, StreamVerifierCutsFixedSizeMessagesAcrossReads) {
  EchoPattern p(32);
  std::string stream;
  for (uint64_t seq = 0; seq < 10; ++seq) {
    std::string msg(32, '\0');
    p.write(msg.data(), seq, seq * 10);
    stream += msg;
  }
  EchoVerifier v(&p);
  int ok = 0, bad = 0;
  for (size_t off = 0; off < stream.size(); off += 13)
    v.feed_stream(stream.data() + off, std::min<size_t>(13, stream.size() - off),
                  [&](EchoVerifier::Echo e) { (e.ok ? ok : bad)++; });
  EXPECT_EQ(ok, 10);
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(v.partial_bytes(), 0u);
}

// ---------------------------------------------------------------- options

ParseStatus parse(std::vector<const char*> args, Options* o, std::string* error) {
  args.insert(args.begin(), "weir-load");
  return parse_command_line(static_cast<int>(args.size()), args.data(), o, error);
}

TEST(LoadOptions, ParsesEchoFlagsInBothSpellingsWithUnits) {
  Options o;
  std::string e;
  ASSERT_EQ(parse({"echo", "--url", "ws://127.0.0.1:9000/echo", "--connections=64", "--depth", "16",
                   "--size", "4KiB", "--seconds", "1500ms", "--warmup-seconds=2", "--binary",
                   "--deflate", "--threads", "2", "--csv", "out.csv", "--plot=out.svg"},
                  &o, &e),
            ParseStatus::kOk)
      << e;
  EXPECT_EQ(o.command, Command::kEcho);
  EXPECT_EQ(o.url.port, 9000);
  EXPECT_EQ(o.url.target, "/echo");
  EXPECT_EQ(o.connections, 64);
  EXPECT_EQ(o.depth, 16);
  EXPECT_EQ(o.size, 4096u);
  EXPECT_EQ(o.seconds_ms, 1500);
  EXPECT_EQ(o.warmup_ms, 2000);
  EXPECT_TRUE(o.binary);
  EXPECT_TRUE(o.deflate);
  EXPECT_EQ(o.threads, 2);
  EXPECT_EQ(o.csv_path, "out.csv");
  EXPECT_EQ(o.plot_path, "out.svg");
}

TEST(LoadOptions, HoldHasItsOwnDefaultsAndRate) {
  Options o;
  std::string e;
  ASSERT_EQ(parse({"hold", "--url", "ws://localhost:8080/echo", "--rate", "250/s",
                   "--ping-interval", "2s"},
                  &o, &e),
            ParseStatus::kOk)
      << e;
  EXPECT_EQ(o.connections, 100);
  EXPECT_EQ(o.rate, 250.0);
  EXPECT_EQ(o.ping_interval_ms, 2000);
  EXPECT_EQ(o.url.host, "localhost");
}

TEST(LoadOptions, TcpEchoTakesAnAddress) {
  Options o;
  std::string e;
  ASSERT_EQ(parse({"tcp-echo", "--addr", "127.0.0.1:7000", "--size", "32"}, &o, &e),
            ParseStatus::kOk)
      << e;
  EXPECT_EQ(o.addr.port(), 7000);
}

TEST(LoadOptions, BadArgumentsAreErrorsWithAReason) {
  struct Case {
    std::vector<const char*> args;
    const char* reason;
  };
  std::vector<Case> cases = {
      {{}, "missing command"},
      {{"flood"}, "unknown command"},
      {{"echo"}, "--url is required"},
      {{"tcp-echo"}, "--addr is required"},
      {{"echo", "--url", "ws://127.0.0.1:1/e", "--rate", "5"}, "unknown flag --rate for echo"},
      {{"hold", "--url", "ws://127.0.0.1:1/e", "--depth", "5"}, "unknown flag --depth for hold"},
      {{"echo", "--url"}, "needs a value"},
      {{"echo", "--url", "ws://127.0.0.1:1/e", "--connections", "0"}, "--connections"},
      {{"echo", "--url", "ws://127.0.0.1:1/e", "--connections", "12x"}, "--connections"},
      {{"echo", "--url", "ws://127.0.0.1:1/e", "--size", "8"}, "16B to 64MiB"},
      {{"echo", "--url", "ws://127.0.0.1:1/e", "--seconds", "soon"}, "duration"},
      {{"echo", "--url", "ws://127.0.0.1:1/e", "--binary=yes"}, "takes no value"},
      {{"echo", "--url", "http://127.0.0.1:1/e"}, "ws://"},
      {{"echo", "--url", "wss://127.0.0.1:1/e"}, "wss"},
      {{"echo", "--url", "ws://127.0.0.1:1/e", "stray"}, "unexpected argument"},
      {{"hold", "--url", "ws://127.0.0.1:1/e", "--rate", "-3/s"}, "rate"},
      {{"echo", "--url", "ws://127.0.0.1:1/e", "--connections", "1000", "--depth", "1000", "--size",
        "64KiB"},
       "in flight"},
  };
  for (const Case& c : cases) {
    Options o;
    std::string e;
    EXPECT_EQ(parse(c.args, &o, &e), ParseStatus::kError) << c.reason;
    EXPECT_NE(e.find(c.reason), std::string::npos) << "got: " << e;
  }
}

TEST(LoadOptions, HelpIsNotAnError) {
  Options o;
  std::string e;
  EXPECT_EQ(parse({"--help"}, &o, &e), ParseStatus::kHelp);
  EXPECT_EQ(parse({"hold", "--help"}, &o, &e), ParseStatus::kHelp);
}

TEST(LoadOptions, UsageListsOnlyTheCommandsOwnFlagsWithDefaults) {
  std::string hold = usage(Command::kHold);
  EXPECT_NE(hold.find("--ping-interval"), std::string::npos);
  EXPECT_NE(hold.find("(default: 1000/s)"), std::string::npos);
  EXPECT_EQ(hold.find("--depth"), std::string::npos);
  std::string overview = usage(std::nullopt);
  for (const char* c : {"echo", "tcp-echo", "hold"}) EXPECT_NE(overview.find(c), std::string::npos);
}

// ---------------------------------------------------------------- URLs and sources

TEST(LoadUrl, SplitsHostPortAndTarget) {
  WsUrl u;
  std::string e;
  ASSERT_TRUE(parse_ws_url("ws://127.0.0.1:8080/stream?rate=40&size=5000", &u, &e)) << e;
  EXPECT_EQ(u.host, "127.0.0.1");
  EXPECT_EQ(u.port, 8080);
  EXPECT_EQ(u.target, "/stream?rate=40&size=5000");
  EXPECT_EQ(u.host_header(), "127.0.0.1:8080");
  ASSERT_TRUE(parse_ws_url("ws://localhost", &u, &e)) << e;
  EXPECT_EQ(u.port, 80);
  EXPECT_EQ(u.target, "/");
  ASSERT_TRUE(parse_ws_url("ws://[::1]:9000?x=1", &u, &e)) << e;
  EXPECT_EQ(u.address.family(), AF_INET6);
  EXPECT_EQ(u.target, "/?x=1");
  EXPECT_FALSE(parse_ws_url("ws://:80/", &u, &e));
  EXPECT_FALSE(parse_ws_url("ws://127.0.0.1:0/", &u, &e));
  EXPECT_FALSE(parse_ws_url("ws://example.invalid:80/", &u, &e));
}

TEST(LoadSourceAddresses, SpreadOverLoopbackOnlyAndWrapAfter254) {
  net::SocketAddress loop, other;
  std::string e;
  ASSERT_TRUE(net::SocketAddress::parse("127.0.0.1:80", &loop, &e));
  ASSERT_TRUE(net::SocketAddress::parse("10.1.2.3:80", &other, &e));
  SourceAddresses none(other, true, 0);
  EXPECT_EQ(none.next(), nullptr);
  SourceAddresses off(loop, false, 0);
  EXPECT_EQ(off.next(), nullptr);
  SourceAddresses s(loop, true, 253);
  EXPECT_EQ(s.next()->host(), "127.0.0.254");
  EXPECT_EQ(s.next()->host(), "127.0.0.1");
  EXPECT_EQ(s.next()->host(), "127.0.0.2");
  EXPECT_EQ(s.count(), 254);
}

// ---------------------------------------------------------------- CSV and JSON

// Every line of a CSV has the header's number of fields.
void expect_rectangular_csv(const std::string& csv, size_t want_lines) {
  std::vector<size_t> fields;
  size_t start = 0;
  while (start < csv.size()) {
    size_t end = csv.find('\n', start);
    ASSERT_NE(end, std::string::npos) << "last line lacks a newline";
    std::string line = csv.substr(start, end - start);
    fields.push_back(std::count(line.begin(), line.end(), ',') + 1);
    start = end + 1;
  }
  ASSERT_EQ(fields.size(), want_lines);
  for (size_t f : fields) EXPECT_EQ(f, fields[0]);
}

TEST(LoadTimeSeries, CsvHasAHeaderAndOneRectangularRowPerSecond) {
  TimeSeries ts({"a", "b"});
  ts.add_row(1.0, "warmup", {1, 2});
  ts.add_row(2.0, "measure", {3, NAN});
  ts.add_row(3.0, "measure", {5});  // short rows are padded
  std::string csv = ts.to_csv();
  expect_rectangular_csv(csv, 4);
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "t,phase,a,b");
  EXPECT_NE(csv.find("2.000,measure,3,\n"), std::string::npos) << csv;
  EXPECT_EQ(ts.column("a"), (std::vector<double>{1, 3, 5}));
  EXPECT_EQ(ts.column("t", 2), (std::vector<double>{1, 2}));
  EXPECT_TRUE(ts.column("missing").empty());
  EXPECT_EQ(ts.first_row_of("measure"), 1u);
  EXPECT_EQ(ts.first_row_of("drain"), 3u);
}

TEST(LoadTimeSeries, SpansJoinConsecutiveRowsOfAPhase) {
  TimeSeries ts({"x"});
  for (double t : {1.0, 2.0, 3.0}) ts.add_row(t, "slow", {0});
  ts.add_row(4.0, "fast", {0});
  ts.add_row(5.0, "slow", {0});
  auto spans = ts.spans("slow");
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0], std::make_pair(0.0, 3.0));
  EXPECT_EQ(spans[1], std::make_pair(4.0, 5.0));
}

TEST(LoadJsonWriter, QuotesEscapesAndNestsWithCommas) {
  JsonWriter j;
  j.begin_object()
      .field("s", "a\"b\\c\n")
      .field("n", uint64_t{7})
      .field("neg", int64_t{-2})
      .field("d", 0.5)
      .field("nan", NAN)
      .field("yes", true)
      .begin_object("inner")
      .field("k", "v")
      .end_object()
      .end_object();
  EXPECT_EQ(j.str(),
            "{\"s\":\"a\\\"b\\\\c\\u000a\",\"n\":7,\"neg\":-2,\"d\":0.5,\"nan\":null,\"yes\":true,"
            "\"inner\":{\"k\":\"v\"}}");
}

// ---------------------------------------------------------------- SVG

// A small well-formedness check: every tag closes in order, attributes are quoted, and no
// raw '<' or '&' appears in text.
bool well_formed_xml(const std::string& doc, std::string* why) {
  std::vector<std::string> stack;
  size_t i = doc.find("<svg");
  if (i == std::string::npos) return *why = "no <svg>", false;
  while (i < doc.size()) {
    size_t lt = doc.find('<', i);
    std::string text = doc.substr(i, (lt == std::string::npos ? doc.size() : lt) - i);
    for (size_t a = text.find('&'); a != std::string::npos; a = text.find('&', a + 1))
      if (text.compare(a, 4, "&lt;") && text.compare(a, 4, "&gt;") && text.compare(a, 5, "&amp;") &&
          text.compare(a, 6, "&quot;") && text.compare(a, 6, "&apos;"))
        return *why = "raw & in text", false;
    if (lt == std::string::npos) break;
    size_t gt = doc.find('>', lt);
    if (gt == std::string::npos) return *why = "unterminated tag", false;
    std::string tag = doc.substr(lt + 1, gt - lt - 1);
    if (tag.find('<') != std::string::npos) return *why = "'<' inside a tag", false;
    if (std::count(tag.begin(), tag.end(), '"') % 2)
      return *why = "unbalanced quotes: " + tag, false;
    std::string name =
        tag.substr(tag[0] == '/' ? 1 : 0, tag.find_first_of(" /", 1) - (tag[0] == '/' ? 1 : 0));
    if (tag[0] == '/') {
      if (stack.empty() || stack.back() != name) return *why = "mismatched </" + name + ">", false;
      stack.pop_back();
    } else if (tag.back() != '/') {
      stack.push_back(name);
    }
    i = gt + 1;
  }
  if (!stack.empty()) return *why = "unclosed <" + stack.back() + ">", false;
  return true;
}

PlotSpec sample_plot() {
  PlotSpec spec;
  spec.title = "slow <clients> & \"friends\"";
  spec.panels.push_back({"messages/s",
                         {{"server send", {0, 1, 2, 3, 4}, {100, 120, NAN, 80, 90}},
                          {"client 1 recv", {0, 1, 2, 3, 4}, {100, 60, 30, 20, 10}}}});
  spec.panels.push_back({"queue (bytes)", {{"queued", {0, 1, 2, 3, 4}, {0, 1e6, 2e6, 4e6, 3e6}}}});
  spec.regions.push_back({1.5, 3.0, "backpressure"});
  spec.regions.push_back({3.5, 4.0, "backpressure"});
  return spec;
}

TEST(LoadSvgPlot, OutputIsWellFormedXmlWithEscapedText) {
  std::string svg = render_svg(sample_plot());
  std::string why;
  EXPECT_TRUE(well_formed_xml(svg, &why)) << why;
  EXPECT_NE(svg.find("slow &lt;clients&gt; &amp; &quot;friends&quot;"), std::string::npos);
  EXPECT_EQ(svg.rfind("<?xml", 0), 0u);
}

TEST(LoadSvgPlot, ParsesWithPythonsXmlParserWhenPythonIsThere) {
  if (std::system("python3 -c 'import xml.dom.minidom' >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "no python3";
  char path[] = "/tmp/weir-load-test-XXXXXX.svg";
  int fd = ::mkstemps(path, 4);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::string error;
  ASSERT_TRUE(write_text_file(path, render_svg(sample_plot()), &error)) << error;
  std::string cmd = std::string(
                        "python3 -c 'import sys,xml.dom.minidom as m; d=m.parse(sys.argv[1]); "
                        "sys.exit(0 if d.documentElement.tagName==\"svg\" else 1)' ") +
                    path;
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  ::unlink(path);
}

TEST(LoadSvgPlot, DrawsALineGapAtMissingValuesAndOneShadeLegendPerLabel) {
  std::string svg = render_svg(sample_plot());
  auto count = [&](const std::string& s) {
    size_t n = 0;
    for (size_t p = svg.find(s); p != std::string::npos; p = svg.find(s, p + 1)) n++;
    return n;
  };
  // "server send" is split by its NaN: two polylines; the others one each.
  EXPECT_EQ(count("<polyline"), 4u);
  // Two regions on each of two panels, plus one legend swatch.
  EXPECT_EQ(count("fill=\"#ff9896\""), 5u);
  EXPECT_EQ(count(">backpressure</text>"), 1u);
}

TEST(LoadSvgPlot, EmptyChartIsStillAValidDocument) {
  std::string why;
  EXPECT_TRUE(well_formed_xml(render_svg(PlotSpec{}), &why)) << why;
}

TEST(LoadSvgPlot, TickStepsAreOneTwoFiveTimesAPowerOfTen) {
  EXPECT_DOUBLE_EQ(nice_tick_step(10, 5), 2);
  EXPECT_DOUBLE_EQ(nice_tick_step(7, 5), 2);
  EXPECT_DOUBLE_EQ(nice_tick_step(1, 5), 0.2);
  EXPECT_DOUBLE_EQ(nice_tick_step(1e6, 5), 2e5);
  EXPECT_DOUBLE_EQ(nice_tick_step(30, 10), 5);
  EXPECT_DOUBLE_EQ(nice_tick_step(0, 5), 1);
}

// ---------------------------------------------------------------- upgrade

constexpr const char* kRfcKey = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr const char* kRfcAccept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

std::string response(const std::string& status, const std::string& headers) {
  return "HTTP/1.1 " + status + "\r\n" + headers + "\r\n";
}

TEST(LoadUpgradeCheck, AcceptsTheRfc6455ExampleResponse) {
  UpgradeCheck c = check_upgrade_response(
      response("101 Switching Protocols",
               "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
                   std::string(kRfcAccept) + "\r\n"),
      kRfcKey, nullptr);
  EXPECT_TRUE(c.ok) << c.error;
  EXPECT_FALSE(c.deflate);
}

TEST(LoadUpgradeCheck, RejectsWrongStatusAcceptOrMissingHeaders) {
  std::string good = "Upgrade: websocket\r\nConnection: upgrade\r\nSec-WebSocket-Accept: " +
                     std::string(kRfcAccept) + "\r\n";
  EXPECT_NE(
      check_upgrade_response(response("404 Not Found", "Content-Length: 0\r\n"), kRfcKey, nullptr)
          .error.find("404"),
      std::string::npos);
  EXPECT_FALSE(check_upgrade_response(response("200 OK", good), kRfcKey, nullptr).ok);
  EXPECT_NE(check_upgrade_response(response("101 X", good), "AAAAAAAAAAAAAAAAAAAAAA==", nullptr)
                .error.find("Accept"),
            std::string::npos);
  EXPECT_FALSE(
      check_upgrade_response(response("101 X", "Connection: upgrade\r\nSec-WebSocket-Accept: " +
                                                   std::string(kRfcAccept) + "\r\n"),
                             kRfcKey, nullptr)
          .ok);
  EXPECT_FALSE(
      check_upgrade_response(response("101 X", "Upgrade: websocket\r\nSec-WebSocket-Accept: " +
                                                   std::string(kRfcAccept) + "\r\n"),
                             kRfcKey, nullptr)
          .ok);
  EXPECT_FALSE(check_upgrade_response("garbage\r\n\r\n", kRfcKey, nullptr).ok);
}

TEST(LoadUpgradeCheck, ExtensionsMustMatchWhatWasOffered) {
  std::string base = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
                     std::string(kRfcAccept) + "\r\n";
  std::string ext = base +
                    "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                    "client_no_context_takeover\r\n";
  EXPECT_FALSE(check_upgrade_response(response("101 X", ext), kRfcKey, nullptr).ok);  // not offered
  ws::DeflateClientOffer offer;
  UpgradeCheck c = check_upgrade_response(response("101 X", ext), kRfcKey, &offer);
  ASSERT_TRUE(c.ok) << c.error;
  EXPECT_TRUE(c.deflate);
  EXPECT_TRUE(c.params.server_no_context_takeover);
  EXPECT_TRUE(c.params.client_no_context_takeover);
  UpgradeCheck plain = check_upgrade_response(response("101 X", base), kRfcKey, &offer);
  EXPECT_TRUE(plain.ok);
  EXPECT_FALSE(plain.deflate);
  std::string bad =
      base + "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=99\r\n";
  EXPECT_FALSE(check_upgrade_response(response("101 X", bad), kRfcKey, &offer).ok);
}

TEST(LoadUpgradeRequest, CarriesHostTargetKeyVersionAndTheOffer) {
  WsClientConfig cfg;
  cfg.host_header = "127.0.0.1:8080";
  cfg.target = "/stream?rate=40";
  ws::DeflateClientOffer offer;
  std::string req = build_upgrade_request(cfg, kRfcKey, &offer);
  EXPECT_EQ(req.rfind("GET /stream?rate=40 HTTP/1.1\r\n", 0), 0u);
  for (const char* h :
       {"Host: 127.0.0.1:8080\r\n", "Upgrade: websocket\r\n", "Connection: Upgrade\r\n",
        "Sec-WebSocket-Version: 13\r\n", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate"})
    EXPECT_NE(req.find(h), std::string::npos) << h;
  EXPECT_EQ(req.substr(req.size() - 4), "\r\n\r\n");
  EXPECT_EQ(build_upgrade_request(cfg, kRfcKey, nullptr).find("Extensions"), std::string::npos);
}

// ---------------------------------------------------------------- connector on real sockets

template <typename Pred>
bool run_until(core::Reactor& reactor, Pred done, int64_t limit_ms = 5000) {
  int64_t deadline = core::monotonic_ms() + limit_ms;
  while (!done()) {
    if (core::monotonic_ms() > deadline) return false;
    reactor.run_once(10);
  }
  return true;
}

// A loopback port with nothing listening: bind one, read its number, close it.
net::SocketAddress unused_port() {
  net::SocketAddress any;
  std::string e;
  net::SocketAddress::parse("127.0.0.1:0", &any, &e);
  int fd = net::create_listen_socket(any, false, 1, &e);
  net::SocketAddress bound = net::local_address(fd);
  ::close(fd);
  return bound;
}

TEST(LoadConnector, ReportsARefusedConnectOnce) {
  core::Reactor reactor;
  Connector connector(reactor, net::ConnectionOptions{});
  int calls = 0;
  std::string error;
  connector.connect(unused_port(), nullptr, 2000, [&](net::Connection* conn, std::string_view why) {
    calls++;
    EXPECT_EQ(conn, nullptr);
    error = std::string(why);
  });
  EXPECT_EQ(calls, 0);  // never from inside connect()
  ASSERT_TRUE(run_until(reactor, [&] { return calls > 0; }));
  reactor.run_once(0);
  EXPECT_EQ(calls, 1);
  EXPECT_NE(error.find("refused"), std::string::npos) << error;
  EXPECT_EQ(connector.pending(), 0u);
}

TEST(LoadConnector, HandsTheConnectedSocketToAConnectionFromTheChosenSource) {
  core::Reactor reactor;
  net::SocketAddress any;
  std::string e;
  ASSERT_TRUE(net::SocketAddress::parse("127.0.0.1:0", &any, &e));
  int listen_fd = net::create_listen_socket(any, false, 16, &e);
  ASSERT_GE(listen_fd, 0) << e;
  net::SocketAddress target = net::local_address(listen_fd);
  net::SocketAddress source;
  ASSERT_TRUE(net::SocketAddress::parse("127.0.0.7:0", &source, &e));
  Connector connector(reactor, net::ConnectionOptions{});
  net::Connection* got = nullptr;
  connector.connect(target, &source, 2000, [&](net::Connection* conn, std::string_view why) {
    ASSERT_NE(conn, nullptr) << why;
    got = conn;
  });
  ASSERT_TRUE(run_until(reactor, [&] { return got != nullptr; }));
  EXPECT_EQ(connector.connections(), 1u);
  EXPECT_EQ(got->peer().port(), target.port());
  EXPECT_EQ(net::local_address(got->fd()).host(), "127.0.0.7");
  ::close(listen_fd);
}

}  // namespace
}  // namespace weir::load
