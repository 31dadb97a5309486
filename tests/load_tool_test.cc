// tests/load_tool_test.cc — the pieces of `weir-load` that can be checked without a server:
// histogram percentiles, the echo payload check, argument parsing, URL parsing, CSV/JSON
// output, the SVG chart's well-formedness, the client's upgrade check, and the connector on
// real loopback sockets; for fanout, slow and relay: the JSON field scanner, the rooms
// protocol envelopes, offset (loss and order) accounting, /metrics parsing and the held-back
// rule, the HTTP GET, the token bucket, the relay's console and a relay on real sockets.
// End-to-end runs are in tests/interop/load_tool_test.sh and tests/interop/load_slow_test.sh.
//
// weir-tests links libweir.a only, not the tool's objects, so the tool's sources under test
// are compiled into this file (none of them defines main()).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/reactor.h"
#include "net/socket_ops.h"
#include "tools/load/connector.cc"
#include "tools/load/echo_pacer.h"
#include "tools/load/echo_payload.cc"
#include "tools/load/histogram.cc"
#include "tools/load/json_scan.cc"
#include "tools/load/load_worker.cc"
#include "tools/load/options.cc"
#include "tools/load/relay.cc"
#include "tools/load/relay_control.cc"
#include "tools/load/report.cc"
#include "tools/load/room_offsets.cc"
#include "tools/load/room_protocol.cc"
#include "tools/load/run_support.cc"
#include "tools/load/server_metrics.cc"
#include "tools/load/slow_plan.cc"
#include "tools/load/svg_plot.cc"
#include "tools/load/target.cc"
#include "tools/load/token_bucket.cc"
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
      {{"tcp-echo", "--addr", "127.0.0.1:1", "--rate", "5"}, "unknown flag --rate for tcp-echo"},
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

// ---------------------------------------------------------------- JSON scanner

TEST(LoadJsonScan, FindsTheFirstKeyAndScalarFieldsAtAnyDepth) {
  std::string_view m =
      R"({"message":{"target":"r","content":"hi","sent_at":"2026-11-22T00:20:00.231Z",)"
      R"("sender":"m1","offset":17,"epoch":"7353576653725696"}})";
  EXPECT_EQ(json_first_key(m), "message");
  uint64_t v = 0;
  ASSERT_TRUE(json_find_uint(m, "offset", &v));
  EXPECT_EQ(v, 17u);
  ASSERT_TRUE(json_find_uint(m, "epoch", &v));  // protojson writes 64-bit integers as strings
  EXPECT_EQ(v, 7353576653725696u);
  std::string_view s;
  ASSERT_TRUE(json_find_string(m, "target", &s));
  EXPECT_EQ(s, "r");
  EXPECT_FALSE(json_find_uint(m, "sender", &v));    // a string that is not a number
  EXPECT_FALSE(json_find_string(m, "offset", &s));  // a number is not a string
  EXPECT_FALSE(json_find_uint(m, "missing", &v));
  EXPECT_EQ(json_first_key("  {\n \"seq\" : 1}"), "seq");
}

TEST(LoadJsonScan, AKeyNameInsideAStringValueNeverMatches) {
  std::string_view m = R"({"content":"fake \"offset\":99, \\","offset":3})";
  uint64_t v = 0;
  ASSERT_TRUE(json_find_uint(m, "offset", &v));
  EXPECT_EQ(v, 3u);
  std::string_view s;
  ASSERT_TRUE(json_find_string(m, "content", &s));
  EXPECT_EQ(s, R"(fake \"offset\":99, \\)");  // raw: escapes are left as they are
}

TEST(LoadJsonScan, SeveralFieldsInOnePassInAnyOrderFirstOccurrenceWins) {
  std::string_view m =
      R"({"x":{"epoch":5,"content":"\\\"target\":\"no","target":"r","offset":{"a":1},)"
      R"("offset":9,"epoch":6}})";
  JsonField f[4] = {{"target"}, {"content"}, {"offset"}, {"epoch"}};
  EXPECT_EQ(json_find_fields(m, f, 4), 3u);  // offset's first occurrence is no scalar
  EXPECT_TRUE(f[0].found && f[0].is_string);
  EXPECT_EQ(f[0].value, "r");
  EXPECT_EQ(f[1].value, R"(\\\"target\":\"no)");  // an escaped quote after an escaped backslash
  EXPECT_FALSE(f[2].found);                       // its first occurrence is an object
  uint64_t v = 0;
  EXPECT_TRUE(json_field_uint(f[3], &v));
  EXPECT_EQ(v, 5u);  // the first epoch, not the second
  EXPECT_FALSE(json_field_uint(f[2], &v));
  JsonField again[1] = {{"epoch"}};  // fields are reset on entry
  again[0].found = true;
  EXPECT_EQ(json_find_fields("{}", again, 1), 0u);
  EXPECT_FALSE(again[0].found);
}

TEST(LoadJsonScan, MalformedOrTruncatedInputIsNotFoundNotACrash) {
  uint64_t v = 0;
  std::string_view s;
  for (std::string_view bad :
       {"", "{", "{\"", "{\"offset\"", "{\"offset\":", "{\"offset\":\"12", "[1,2]", "{\"a\\",
        "{\"offset\":{\"x\":1}}", "{\"offset\":-4}", "{\"offset\":1.5}", "not json"}) {
    EXPECT_FALSE(json_find_uint(bad, "offset", &v)) << bad;
    EXPECT_FALSE(json_find_string(bad, "offset", &s)) << bad;
  }
  EXPECT_EQ(json_first_key("[\"a\":1]"), "");
  EXPECT_EQ(json_first_key("{\"unterminated"), "");
}

// ---------------------------------------------------------------- rooms protocol

TEST(LoadRoomProtocol, ReadsEveryEnvelopeTheServerSends) {
  RoomEnvelope e = parse_room_envelope(
      R"({"message":{"target":"r1","content":"t=5,p=0,s=1;..","message_id":"","sent_at":"x",)"
      R"("sender":"m2","offset":8,"epoch":77}})");
  EXPECT_EQ(e.type, RoomEvent::kMessage);
  EXPECT_EQ(e.room, "r1");
  EXPECT_EQ(e.content, "t=5,p=0,s=1;..");
  EXPECT_EQ(e.offset, 8u);
  EXPECT_EQ(e.epoch, 77u);
  e = parse_room_envelope(R"({"room_joined":{"room_id":"r1","offset":4,"epoch":77}})");
  EXPECT_EQ(e.type, RoomEvent::kJoined);
  EXPECT_EQ(e.offset, 4u);
  e = parse_room_envelope(R"({"lagged":{"room_id":"r1","from_offset":10,"to_offset":19}})");
  EXPECT_EQ(e.type, RoomEvent::kLagged);
  EXPECT_EQ(e.from, 10u);
  EXPECT_EQ(e.to, 19u);
  e = parse_room_envelope(R"({"error":{"code":"invalid_json","message":"bad","ref":""}})");
  EXPECT_EQ(e.type, RoomEvent::kError);
  EXPECT_EQ(e.code, "invalid_json");
  EXPECT_EQ(parse_room_envelope(R"({"session":{"token":"t","member_id":"m1","rooms":[]}})").type,
            RoomEvent::kSession);
  EXPECT_EQ(parse_room_envelope(R"({"resumed":{"room_id":"r"}})").type, RoomEvent::kOther);
  e = parse_room_envelope(
      R"({"resumed":{"room_id":"r2","recovered":true,"offset":41,"epoch":9007199254740991}})");
  EXPECT_EQ(e.type, RoomEvent::kResumed);
  EXPECT_EQ(e.room, "r2");
  EXPECT_TRUE(e.recovered);
  EXPECT_EQ(e.offset, 41u);
  EXPECT_EQ(e.epoch, 9007199254740991u);
  e = parse_room_envelope(R"({"resumed":{"room_id":"r2","recovered":false,"offset":3,"epoch":1}})");
  EXPECT_EQ(e.type, RoomEvent::kResumed);
  EXPECT_FALSE(e.recovered);
  EXPECT_EQ(parse_room_envelope(R"({"message":{"target":"r","content":"x"}})").type,
            RoomEvent::kMalformed);  // no offset: cannot be checked
  EXPECT_EQ(parse_room_envelope("garbage").type, RoomEvent::kMalformed);
}

// The message reader looks for offset and epoch in the last 64 bytes first; other layouts, and
// a long content quoting the field names, must read the same.
TEST(LoadRoomProtocol, AMessageReadsTheSameWhateverItsFieldOrder) {
  std::string pad(100, '.');
  for (
      std::string json : {
          R"({"message":{"offset":8,"epoch":77,"target":"r1","content":"t=5,p=0,s=1;)" + pad +
              R"("}})",
          R"({"message":{"target":"r1","content":"t=5,p=0,s=1;)" + pad +
              R"(","offset":8,"epoch":77}})",
          R"({"message":{"target":"r1","offset":8,"content":"t=5,p=0,s=1;)" + pad +
              R"(\"offset\":9,\"epoch\":1","epoch":77}})",
          R"({"message":{"epoch":77,"content":"t=5,p=0,s=1;)" + pad +
              R"(","sender":"m","target":"r1","offset":8}})",
          // the exact layout weir writes, read without a scan, and near misses of it
          std::string(
              R"({"message":{"target":"r1","content":"t=5,p=0,s=1;","sender":"m","offset":8,"epoch":77}})"),
          std::string(
              R"({"message":{"target":"r1","content":"t=5,p=0,s=1;\"x","offset":8,"epoch":77}})"),
          std::string(
              R"({"message":{"target":"r1","content":"t=5,p=0,s=1;\\","offset":8,"epoch":77}})"),
          std::string(
              R"({"message":{"target":"r1","content":"t=5,p=0,s=1;","offset":8,"epoch":77,"x":"1"}})"),
          std::string(
              R"({"message":{"target":"r1","content":"t=5,p=0,s=1;","offset":8, "epoch":77}})"),
          std::string(
              R"({"message":{"target":"r1","content":"t=5,p=0,s=1;","offset":"8","epoch":77}})"),
      }) {
    RoomEnvelope e = parse_room_envelope(json);
    EXPECT_EQ(e.type, RoomEvent::kMessage) << json;
    EXPECT_EQ(e.room, "r1") << json;
    EXPECT_EQ(e.offset, 8u) << json;
    EXPECT_EQ(e.epoch, 77u) << json;
    EXPECT_EQ(e.content.substr(0, 12), "t=5,p=0,s=1;") << json;
  }
}

TEST(LoadRoomProtocol, MessageEnvelopesHaveTheExactSizeAndTheirStampReadsBack) {
  for (size_t size : {0, 10, 32, 1000}) {
    ContentStamp stamp{123456789012345, 7, 42};
    std::string buf(message_envelope_size("room-1", size, stamp), '\0');
    size_t n = write_message_envelope(buf.data(), "room-1", size, stamp);
    ASSERT_EQ(n, buf.size()) << size;
    EXPECT_EQ(json_first_key(buf), "message");
    std::string_view target, content;
    ASSERT_TRUE(json_find_string(buf, "target", &target));
    EXPECT_EQ(target, "room-1");
    ASSERT_TRUE(json_find_string(buf, "content", &content));
    EXPECT_EQ(content.size(), std::max<size_t>(size, content.find(';') + 1)) << size;
    ContentStamp back;
    ASSERT_TRUE(parse_content_stamp(content, &back)) << content;
    EXPECT_EQ(back.send_ns, stamp.send_ns);
    EXPECT_EQ(back.publisher, 7u);
    EXPECT_EQ(back.seq, 42u);
  }
  ContentStamp unused;
  for (std::string_view bad : {"", "hello", "t=1,p=2", "t=x,p=1,s=2;", "t=1,p=2,s=3"})
    EXPECT_FALSE(parse_content_stamp(bad, &unused)) << bad;
  EXPECT_EQ(join_envelope("r"), R"({"join_room":{"room_id":"r"}})");
}

TEST(LoadRoomProtocol, AssemblerJoinsPartsAndPassesWholeMessagesThrough) {
  MessageAssembler a;
  std::string_view out;
  std::string whole = "{\"a\":1}";
  ASSERT_TRUE(a.feed(std::span<const char>(whole.data(), whole.size()), true, &out));
  EXPECT_EQ(out.data(), whole.data());  // no copy
  EXPECT_FALSE(a.feed(std::span<const char>("{\"b\"", 4), false, &out));
  EXPECT_FALSE(a.feed(std::span<const char>(":", 1), false, &out));
  ASSERT_TRUE(a.feed(std::span<const char>("2}", 2), true, &out));
  EXPECT_EQ(out, "{\"b\":2}");
  ASSERT_TRUE(a.feed(std::span<const char>("{}", 2), true, &out));
  EXPECT_EQ(out, "{}");
}

// ---------------------------------------------------------------- offsets: loss and order

TEST(LoadOffsets, InOrderDeliveryFromTheJoinOffsetLosesNothing) {
  OffsetTracker t;
  EXPECT_EQ(t.on_message(1, 9), OffsetTracker::Arrival::kNotJoined);
  t.joined(10, 9);
  for (uint64_t o = 11; o <= 20; ++o)
    EXPECT_EQ(t.on_message(o, 9), OffsetTracker::Arrival::kInOrder);
  EXPECT_EQ(t.received(), 10u);
  EXPECT_EQ(t.last_offset(), 20u);
  EXPECT_EQ(t.order_violations(), 0u);
  EXPECT_EQ(t.expected(20), 10u);
  EXPECT_EQ(t.lost(20), 0u);
  EXPECT_EQ(t.lost(25), 5u);  // the room went on to 25 and this member never saw 21..25
}

TEST(LoadOffsets, AGapAndAStepBackAreOrderViolations) {
  OffsetTracker t;
  t.joined(0, 1);
  t.on_message(1, 1);
  EXPECT_EQ(t.on_message(4, 1), OffsetTracker::Arrival::kGap);  // 2 and 3 missing
  EXPECT_EQ(t.gap_messages(), 2u);
  EXPECT_EQ(t.on_message(3, 1), OffsetTracker::Arrival::kBackwards);  // late: not counted
  EXPECT_EQ(t.on_message(4, 1), OffsetTracker::Arrival::kBackwards);  // duplicate
  EXPECT_EQ(t.on_message(5, 1), OffsetTracker::Arrival::kInOrder);
  EXPECT_EQ(t.order_violations(), 3u);
  EXPECT_EQ(t.received(), 3u);  // 1, 4, 5
  EXPECT_EQ(t.lost(5), 2u);
}

TEST(LoadOffsets, ALaggedNoticeIsLossButNotDisorder) {
  OffsetTracker t;
  t.joined(100, 1);
  t.on_message(101, 1);
  t.on_lagged(102, 150);
  EXPECT_EQ(t.on_message(151, 1), OffsetTracker::Arrival::kInOrder);
  EXPECT_EQ(t.order_violations(), 0u);
  EXPECT_EQ(t.skipped(), 49u);
  EXPECT_EQ(t.lost(151), 49u);
  t.on_lagged(5, 4);  // an empty range changes nothing
  EXPECT_EQ(t.skipped(), 49u);
}

TEST(LoadOffsets, ANewEpochIsCountedAndStartsOver) {
  OffsetTracker t;
  t.joined(5, 1);
  t.on_message(6, 1);
  EXPECT_EQ(t.on_message(1, 2), OffsetTracker::Arrival::kGap);
  EXPECT_EQ(t.epoch_changes(), 1u);
  EXPECT_EQ(t.on_message(2, 2), OffsetTracker::Arrival::kInOrder);
}

// ---------------------------------------------------------------- /metrics

constexpr std::string_view kMetricsSample =
    "# HELP weir_connections_closed_total Connections closed, by reason\n"
    "# TYPE weir_connections_closed_total counter\n"
    "weir_connections_closed_total{reason=\"closed\"} 3\n"
    "weir_connections_closed_total{reason=\"buffer_overrun\"} 2\n"
    "weir_stream_messages_sent_total 1200\n"
    "weir_stream_messages_deferred_total 40\n"
    "weir_stream_sessions_held_back 1\n"
    "weir_reading_suspended_seconds_total 0.25 1700000000000\n"
    "weir_label_with_space{a=\"x y\",b=\"z\"} 7\r\n"
    "\n"
    "weir_slow_consumer_actions_total{action=\"skip\"} 5\n"
    "weir_slow_consumer_actions_total{action=\"pause_publisher\"} 0\n";

TEST(LoadMetrics, ParsesSeriesLabelsTimestampsAndSums) {
  MetricsText m;
  std::string e;
  ASSERT_TRUE(m.parse(kMetricsSample, &e)) << e;
  EXPECT_EQ(m.value("weir_stream_messages_sent_total"), 1200);
  EXPECT_EQ(m.value("weir_connections_closed_total", "reason=\"buffer_overrun\""), 2);
  EXPECT_EQ(m.sum("weir_connections_closed_total"), 5);
  EXPECT_EQ(m.value("weir_reading_suspended_seconds_total"), 0.25);
  EXPECT_EQ(m.value("weir_label_with_space", "a=\"x y\",b=\"z\""), 7);
  EXPECT_TRUE(std::isnan(m.value("weir_nothing")));
  EXPECT_TRUE(std::isnan(m.sum("weir_connections")));  // a prefix is not a name
  ServerSnapshot s = server_snapshot(m);
  EXPECT_EQ(s.stream_deferred, 40);
  EXPECT_EQ(s.slow_skips, 5);
  EXPECT_EQ(s.buffer_overruns, 2);
  EXPECT_TRUE(std::isnan(s.room_deliveries));
}

TEST(LoadMetrics, ABadLineIsAnErrorNamingIt) {
  MetricsText m;
  std::string e;
  EXPECT_FALSE(m.parse("ok 1\nweir_x{a=\"b\" 3\n", &e));
  EXPECT_NE(e.find("weir_x"), std::string::npos) << e;
  EXPECT_FALSE(m.parse("weir_y twelve\n", &e));
  EXPECT_EQ(m.value("ok"), 1);  // lines before the bad one are kept
}

TEST(LoadMetrics, HeldBackMeansDeferredSkippedPausedOrAQueueAtTheWatermark) {
  ServerSnapshot a, b;
  a.stream_sent = 100, b.stream_sent = 140;
  a.stream_deferred = b.stream_deferred = 7;
  a.stream_held_back = b.stream_held_back = 0;
  ServerInterval r = server_interval(a, b, 2.0, false);
  EXPECT_EQ(r.sent_per_sec, 20);
  EXPECT_EQ(r.deferred_per_sec, 0);
  EXPECT_FALSE(r.held_back);
  b.stream_deferred = 9;
  EXPECT_TRUE(server_interval(a, b, 2.0, false).held_back);
  b.stream_deferred = 7;
  b.stream_held_back = 1;  // the gauge at the end of the interval
  EXPECT_TRUE(server_interval(a, b, 2.0, false).held_back);
  b.stream_held_back = 0;
  a.slow_pauses = 3, b.slow_pauses = 4;
  EXPECT_TRUE(server_interval(a, b, 1.0, true).held_back);
  ServerSnapshot none;  // a server without these metrics is never "held back"
  EXPECT_FALSE(server_interval(none, none, 1.0, false).held_back);
  a.room_deliveries = 0, b.room_deliveries = 500;
  EXPECT_EQ(server_interval(a, b, 1.0, true).sent_per_sec, 500);
}

// A one-shot HTTP server on a thread: answers the first request with `response`.
class OneShotHttp {
 public:
  explicit OneShotHttp(std::string response) {
    net::SocketAddress any;
    std::string e;
    net::SocketAddress::parse("127.0.0.1:0", &any, &e);
    fd_ = net::create_listen_socket(any, false, 4, &e);
    port_ = net::local_address(fd_).port();
    thread_ = std::thread([this, response = std::move(response)] {
      int c = -1;
      for (int i = 0; i < 200 && c < 0; ++i) {
        c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) ::usleep(10000);
      }
      if (c < 0) return;
      char buf[4096];
      std::string request;
      while (request.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::recv(c, buf, sizeof buf, 0);
        if (n < 0 && errno == EAGAIN) {
          ::usleep(1000);
          continue;
        }
        if (n <= 0) break;
        request.append(buf, static_cast<size_t>(n));
      }
      request_ = request;
      ::send(c, response.data(), response.size(), MSG_NOSIGNAL);
      ::close(c);
    });
  }
  ~OneShotHttp() {
    thread_.join();
    ::close(fd_);
  }
  HttpUrl url(const std::string& path) {
    HttpUrl u;
    std::string e;
    parse_http_url("http://127.0.0.1:" + std::to_string(port_) + path, &u, &e);
    return u;
  }
  const std::string& request() const { return request_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::thread thread_;
  std::string request_;
};

TEST(LoadHttpGet, ReadsContentLengthAndChunkedBodiesAndRefusesOtherStatuses) {
  std::string body, e;
  {
    OneShotHttp server("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello-and-more");
    ASSERT_TRUE(http_get(server.url("/metrics"), 2000, &body, &e)) << e;
    EXPECT_EQ(body, "hello");
    EXPECT_EQ(server.request().rfind("GET /metrics HTTP/1.1\r\n", 0), 0u);
  }
  {
    OneShotHttp server(
        "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nweir\r\n5\r\n_x "
        "1\n\r\n0\r\n\r\n");
    ASSERT_TRUE(http_get(server.url("/"), 2000, &body, &e)) << e;
    EXPECT_EQ(body, "weir_x 1\n");
  }
  {
    OneShotHttp server("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    EXPECT_FALSE(http_get(server.url("/metrics"), 2000, &body, &e));
    EXPECT_NE(e.find("404"), std::string::npos) << e;
  }
  EXPECT_FALSE(http_get(
      [] {
        HttpUrl u;
        std::string e;
        parse_http_url("http://127.0.0.1:" + std::to_string(unused_port().port()) + "/", &u, &e);
        return u;
      }(),
      1000, &body, &e));
}

TEST(LoadHttpGet, UrlsNeedHttpAndAHost) {
  HttpUrl u;
  std::string e;
  ASSERT_TRUE(parse_http_url("http://127.0.0.1:9090/metrics", &u, &e)) << e;
  EXPECT_EQ(u.port, 9090);
  EXPECT_EQ(u.path, "/metrics");
  ASSERT_TRUE(parse_http_url("http://localhost", &u, &e)) << e;
  EXPECT_EQ(u.port, 80);
  EXPECT_EQ(u.path, "/");
  EXPECT_FALSE(parse_http_url("ws://127.0.0.1:1/metrics", &u, &e));
  EXPECT_FALSE(parse_http_url("http://:80/", &u, &e));
}

// ---------------------------------------------------------------- token bucket

TEST(LoadTokenBucket, StartsEmptyAndAccruesAtItsRate) {
  TokenBucket b(1000, 0);
  EXPECT_EQ(b.available(0), 0u);
  EXPECT_EQ(b.available(100'000'000), 100u);  // 0.1 s
  b.consume(60);
  EXPECT_EQ(b.available(100'000'000), 40u);
  EXPECT_EQ(b.wait_ns(50, 100'000'000), 10'000'000);  // 10 more bytes: 10 ms
  EXPECT_EQ(b.wait_ns(40, 100'000'000), 0);
}

TEST(LoadTokenBucket, IdleTimeEarnsAtMostOneBurst) {
  TokenBucket b(100000, 0);
  EXPECT_EQ(b.burst(), 5000);  // 1/20 s
  EXPECT_EQ(b.available(60'000'000'000), 5000u);
  TokenBucket slow(100, 0);
  EXPECT_EQ(slow.burst(), 256);                          // never below 256 bytes
  EXPECT_EQ(slow.wait_ns(1'000'000, 0), 2'560'000'000);  // a wait is for one burst at most
}

TEST(LoadTokenBucket, SendingInTimerTicksHoldsTheRateOverFiveSeconds) {
  for (double rate : {1000.0, 50000.0, 3e6}) {
    TokenBucket b(rate, 0);
    uint64_t sent = 0;
    for (int64_t now = 0; now <= 5'000'000'000; now += 10'000'000) {      // 10 ms ticks
      while (uint64_t n = std::min<uint64_t>(b.available(now), 16384)) {  // chunk by chunk
        b.consume(n);
        sent += n;
      }
    }
    EXPECT_NEAR(static_cast<double>(sent), rate * 5, rate * 5 * 0.01) << rate;
  }
}

TEST(LoadTokenBucket, RateChangesApplyFromNowAndZeroIsUnlimited) {
  TokenBucket b(1000, 0);
  EXPECT_EQ(b.available(1'000'000'000), 256u);  // capped by the burst
  b.consume(256);
  b.set_rate(2000, 1'000'000'000);
  EXPECT_EQ(b.available(1'100'000'000), 200u);
  b.set_rate(0, 1'100'000'000);
  EXPECT_EQ(b.available(1'100'000'000), TokenBucket::kUnlimited);
  EXPECT_EQ(b.wait_ns(1 << 20, 1'100'000'000), 0);
}

// ---------------------------------------------------------------- relay control

TEST(LoadRelayControl, ConsoleLinesSetAndShowTheBandwidth) {
  RelayControl c(1000, {});
  std::string answer;
  uint64_t g = c.generation();
  EXPECT_TRUE(c.apply_line("bandwidth 2000", &answer));
  EXPECT_EQ(c.bandwidth(), 2000);
  EXPECT_GT(c.generation(), g);
  EXPECT_TRUE(c.apply_line("set bandwidth 3KiB/s\r", &answer));  // ip_relay's spelling
  EXPECT_EQ(c.bandwidth(), 3072);
  EXPECT_TRUE(c.apply_line("show", &answer));
  EXPECT_EQ(answer, "bandwidth 3072 B/s");
  EXPECT_TRUE(c.apply_line("bandwidth 0", &answer));
  EXPECT_EQ(answer, "bandwidth unlimited");
  EXPECT_FALSE(c.apply_line("bandwidth fast", &answer));
  EXPECT_FALSE(c.apply_line("reboot", &answer));
  EXPECT_EQ(c.bandwidth(), 0);
}

TEST(LoadRelayControl, SignalsHalveAndDoubleButLeaveUnlimitedAlone) {
  RelayControl c(1000, {});
  c.halve();
  EXPECT_EQ(c.bandwidth(), 500);
  c.double_rate();
  c.double_rate();
  EXPECT_EQ(c.bandwidth(), 2000);
  RelayControl one(1, {});
  one.halve();
  EXPECT_EQ(one.bandwidth(), 1);  // halving never reaches 0, which would mean unlimited
  RelayControl unlimited(0, {});
  unlimited.halve();
  unlimited.double_rate();
  EXPECT_EQ(unlimited.bandwidth(), 0);
  c.install_signals();
  ::raise(SIGUSR1);
  EXPECT_EQ(c.bandwidth(), 1000);
  ::raise(SIGUSR2);
  EXPECT_EQ(c.bandwidth(), 2000);
}

TEST(LoadRelayControl, ScheduleStepsApplyOnceTheirTimeHasCome) {
  std::vector<BandwidthStep> steps;
  std::string e;
  ASSERT_TRUE(parse_bandwidth_schedule("0s:1000,2s:0,3500ms:3000", &steps, &e)) << e;
  RelayControl c(50, steps);
  EXPECT_TRUE(c.apply_schedule(0));
  EXPECT_EQ(c.bandwidth(), 1000);
  EXPECT_FALSE(c.apply_schedule(1999));
  EXPECT_TRUE(c.apply_schedule(5000));  // late: both due steps, the last one wins
  EXPECT_EQ(c.bandwidth(), 3000);
  EXPECT_FALSE(parse_bandwidth_schedule("2s:10,1s:20", &steps, &e));
  EXPECT_FALSE(parse_bandwidth_schedule("2s", &steps, &e));
  EXPECT_FALSE(parse_bandwidth_schedule("", &steps, &e));
}

// ---------------------------------------------------------------- relay on real sockets

int blocking_connect(const net::SocketAddress& to) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd, to.sockaddr(), to.length()) != 0) {
    ::close(fd);
    return -1;
  }
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

std::string read_exactly(int fd, size_t n) {
  std::string out;
  char buf[4096];
  while (out.size() < n) {
    ssize_t got = ::recv(fd, buf, std::min(sizeof buf, n - out.size()), 0);
    if (got <= 0) break;
    out.append(buf, static_cast<size_t>(got));
  }
  return out;
}

TEST(LoadRelay, ForwardsBothWaysAndPassesOnTheClientsFin) {
  std::string e;
  net::SocketAddress any;
  ASSERT_TRUE(net::SocketAddress::parse("127.0.0.1:0", &any, &e));
  int target_listen = net::create_listen_socket(any, false, 4, &e);
  ASSERT_GE(target_listen, 0) << e;
  int flags = ::fcntl(target_listen, F_GETFL);
  ::fcntl(target_listen, F_SETFL, flags & ~O_NONBLOCK);
  RelayControl control(0, {});
  ErrorLog errors;
  WorkerThreads threads(1);
  RelayWorker* relay = nullptr;
  threads.start([&](core::Reactor& reactor, int) {
    auto w = std::make_unique<RelayWorker>(reactor, any, net::local_address(target_listen),
                                           &control, &errors);
    relay = w.get();
    return w;
  });
  ASSERT_NE(relay->port(), 0) << relay->listen_error();
  net::SocketAddress relay_addr;
  ASSERT_TRUE(
      net::SocketAddress::parse("127.0.0.1:" + std::to_string(relay->port()), &relay_addr, &e));
  int client = blocking_connect(relay_addr);
  ASSERT_GE(client, 0);
  int server = ::accept(target_listen, nullptr, nullptr);
  ASSERT_GE(server, 0);
  timeval tv{5, 0};
  ::setsockopt(server, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string up(100000, 'u'), down(70000, 'd');
  std::thread writer([&] { ::send(client, up.data(), up.size(), MSG_NOSIGNAL); });
  EXPECT_EQ(read_exactly(server, up.size()), up);
  writer.join();
  ASSERT_EQ(::send(server, down.data(), down.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(down.size()));
  EXPECT_EQ(read_exactly(client, down.size()), down);
  ::shutdown(client, SHUT_WR);
  char c;
  EXPECT_EQ(::recv(server, &c, 1, 0), 0);  // the FIN arrived through the relay
  ::send(server, "bye", 3, MSG_NOSIGNAL);  // the other direction still works
  EXPECT_EQ(read_exactly(client, 3), "bye");
  ::close(server);
  EXPECT_EQ(::recv(client, &c, 1, 0), 0);
  Sample s = threads.sample();
  EXPECT_EQ(s.counters.bytes_sent, up.size());
  EXPECT_EQ(s.counters.bytes_received, down.size() + 3);
  EXPECT_EQ(s.counters.connections_opened, 1u);
  threads.stop();
  ::close(client);
  ::close(target_listen);
}

TEST(LoadRelay, ThrottlesToItsBandwidthAndFollowsAChange) {
  std::string e;
  net::SocketAddress any;
  ASSERT_TRUE(net::SocketAddress::parse("127.0.0.1:0", &any, &e));
  int target_listen = net::create_listen_socket(any, false, 4, &e);
  ::fcntl(target_listen, F_SETFL, ::fcntl(target_listen, F_GETFL) & ~O_NONBLOCK);
  RelayControl control(100000, {});  // 100 kB/s
  ErrorLog errors;
  WorkerThreads threads(1);
  RelayWorker* relay = nullptr;
  threads.start([&](core::Reactor& reactor, int) {
    auto w = std::make_unique<RelayWorker>(reactor, any, net::local_address(target_listen),
                                           &control, &errors);
    relay = w.get();
    return w;
  });
  net::SocketAddress relay_addr;
  net::SocketAddress::parse("127.0.0.1:" + std::to_string(relay->port()), &relay_addr, &e);
  int client = blocking_connect(relay_addr);
  ASSERT_GE(client, 0);
  int server = ::accept(target_listen, nullptr, nullptr);
  std::atomic<bool> stop{false};
  std::thread flood([&] {
    std::string chunk(16384, 'x');
    while (!stop.load()) ::send(server, chunk.data(), chunk.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  });
  auto measure = [&](int64_t ms) {
    uint64_t bytes = 0;
    char buf[65536];
    int64_t start = core::monotonic_ms();
    while (core::monotonic_ms() - start < ms) {
      ssize_t n = ::recv(client, buf, sizeof buf, 0);
      if (n > 0) bytes += static_cast<uint64_t>(n);
    }
    return bytes * 1000.0 / static_cast<double>(ms);
  };
  EXPECT_NEAR(measure(1500), 100000, 10000);
  control.set(300000);
  measure(200);  // the change reaches the relay within its 20 ms poll
  EXPECT_NEAR(measure(1500), 300000, 30000);
  stop = true;
  flood.join();
  threads.stop();
  ::close(client);
  ::close(server);
  ::close(target_listen);
}

// ---------------------------------------------------------------- fanout, slow, relay options

TEST(LoadOptions, FanoutTakesRoomsMembersPublishersAndAZeroRate) {
  Options o;
  std::string e;
  ASSERT_EQ(parse({"fanout", "--url", "ws://127.0.0.1:8080/ws", "--rooms", "100", "--members", "10",
                   "--publishers", "4", "--rate", "0", "--depth", "8", "--size", "64"},
                  &o, &e),
            ParseStatus::kOk)
      << e;
  EXPECT_EQ(o.rooms, 100);
  EXPECT_EQ(o.members, 10);
  EXPECT_EQ(o.publishers, 4);
  EXPECT_EQ(o.publish_rate, 0);
  ASSERT_EQ(parse({"fanout", "--url", "ws://127.0.0.1:8080/ws", "--rate", "2000/s"}, &o, &e),
            ParseStatus::kOk);
  EXPECT_EQ(o.publish_rate, 2000);
  EXPECT_EQ(parse({"hold", "--url", "ws://127.0.0.1:1/e", "--rate", "0"}, &o, &e),
            ParseStatus::kError);  // hold's --rate is still connections/s, never 0
}

TEST(LoadOptions, SlowTakesTheSeedsScenariosAndDerivesTheMetricsUrl) {
  Options o;
  std::string e;
  ASSERT_EQ(parse({"slow", "--url", "ws://127.0.0.1:8080/stream?rate=40&size=5000", "--clients",
                   "10", "--delay-base-ms", "50", "--delay-range-ms", "100", "--fast-clients", "2",
                   "--rcvbuf", "64KiB"},
                  &o, &e),
            ParseStatus::kOk)
      << e;
  EXPECT_EQ(o.clients, 10);
  EXPECT_EQ(o.delay_base_ms, 50);
  EXPECT_EQ(o.delay_range_ms, 100);
  EXPECT_EQ(o.receive_buffer, 65536u);
  EXPECT_EQ(o.metrics_url.to_string(), "http://127.0.0.1:8080/metrics");
  EXPECT_EQ(o.size, 1000u);  // slow's own default (room content)
  ASSERT_EQ(parse({"slow", "--url", "ws://127.0.0.1:8080/ws", "--room", "r", "--delay-ms", "250ms",
                   "--metrics-url", "http://127.0.0.1:9/m", "--via-relay", "1000/s",
                   "--bandwidth-schedule", "0s:1000,10s:0"},
                  &o, &e),
            ParseStatus::kOk)
      << e;
  EXPECT_EQ(o.delay_ms, 250);
  EXPECT_EQ(o.room, "r");
  EXPECT_EQ(o.publish_rate, 100);
  EXPECT_EQ(o.metrics_url.port, 9);
  EXPECT_EQ(o.via_relay, 1000);
  EXPECT_EQ(o.bandwidth_schedule.size(), 2u);
}

TEST(LoadOptions, RelayListensOnAPortAndForwardsToATarget) {
  Options o;
  std::string e;
  ASSERT_EQ(
      parse({"relay", "--listen", "9002", "--target", "127.0.0.1:9001", "--bandwidth", "1000"}, &o,
            &e),
      ParseStatus::kOk)
      << e;
  EXPECT_EQ(o.listen.to_string(), "127.0.0.1:9002");
  EXPECT_EQ(o.addr.port(), 9001);
  EXPECT_EQ(o.bandwidth, 1000);
  double bw = 0;
  EXPECT_TRUE(parse_bandwidth("2KiB/s", &bw, &e));
  EXPECT_EQ(bw, 2048);
  EXPECT_FALSE(parse_bandwidth("-5", &bw, &e));
  EXPECT_FALSE(parse_bandwidth("fast", &bw, &e));
}

TEST(LoadOptions, BadFanoutSlowAndRelayArgumentsAreErrors) {
  struct Case {
    std::vector<const char*> args;
    const char* reason;
  };
  std::vector<Case> cases = {
      {{"fanout"}, "--url is required"},
      {{"fanout", "--url", "ws://127.0.0.1:1/ws", "--rooms", "0"}, "--rooms"},
      {{"fanout", "--url", "ws://127.0.0.1:1/ws", "--clients", "3"}, "unknown flag --clients"},
      {{"fanout", "--url", "ws://127.0.0.1:1/ws", "--rooms", "10000", "--members", "1000"},
       "1,000,000"},
      {{"slow", "--url", "ws://127.0.0.1:1/stream", "--delay-range-ms", "100"}, "--delay-base-ms"},
      {{"slow", "--url", "ws://127.0.0.1:1/stream", "--clients", "0"}, "nobody"},
      {{"slow", "--url", "ws://127.0.0.1:1/stream", "--clients", "0", "--fast-clients", "1",
        "--via-relay", "100"},
       "--clients is 0"},
      {{"slow", "--url", "ws://127.0.0.1:1/stream", "--bandwidth-schedule", "0s:5"},
       "needs --via-relay"},
      {{"slow", "--url", "ws://127.0.0.1:1/stream", "--delay-ms", "-1"}, "milliseconds"},
      {{"slow", "--url", "ws://127.0.0.1:1/stream", "--metrics-url", "ftp://x"}, "http://"},
      {{"slow", "--url", "ws://127.0.0.1:1/ws", "--room", ""}, "room id"},
      {{"relay", "--listen", "9002"}, "--target is required"},
      {{"relay", "--target", "127.0.0.1:1"}, "--listen is required"},
      {{"relay", "--listen", "9002", "--target", "127.0.0.1:1", "--bandwidth", "lots"},
       "bytes per second"},
      {{"relay", "--listen", "9002", "--target", "127.0.0.1:1", "--url", "ws://x:1/"},
       "unknown flag --url"},
  };
  for (const Case& c : cases) {
    Options o;
    std::string e;
    EXPECT_EQ(parse(c.args, &o, &e), ParseStatus::kError) << c.reason;
    EXPECT_NE(e.find(c.reason), std::string::npos) << "wanted '" << c.reason << "', got: " << e;
  }
}

// ---------------------------------------------------------------- the slow run's rules

TEST(LoadSlowPlan, SeededDelaysAreRepeatableAndWithinBasePlusRange) {
  Options o;
  o.clients = 10;
  o.fast_clients = 2;
  o.delay_base_ms = 50;
  o.delay_range_ms = 100;
  o.seed = 7;
  std::vector<SlowClientSpec> a = make_slow_specs(o), b = make_slow_specs(o);
  ASSERT_EQ(a.size(), 12u);
  std::set<int64_t> distinct;
  for (int i = 0; i < 10; ++i) {
    EXPECT_TRUE(a[i].slow);
    EXPECT_EQ(a[i].name, "slow" + std::to_string(i + 1));
    EXPECT_GE(a[i].delay_ms, 50);
    EXPECT_LE(a[i].delay_ms, 150);
    EXPECT_EQ(a[i].delay_ms, b[i].delay_ms);
    distinct.insert(a[i].delay_ms);
  }
  EXPECT_GE(distinct.size(), 5u);  // random, not one value
  EXPECT_FALSE(a[10].slow);
  EXPECT_EQ(a[11].name, "fast2");
  EXPECT_EQ(a[11].delay_ms, 0);
  EXPECT_EQ(a[11].index, 11);
  o.seed = 8;
  std::vector<SlowClientSpec> c = make_slow_specs(o);
  bool differs = false;
  for (int i = 0; i < 10; ++i) differs |= c[i].delay_ms != a[i].delay_ms;
  EXPECT_TRUE(differs);
  o.delay_base_ms = -1;
  o.delay_ms = 50;
  for (const SlowClientSpec& s : make_slow_specs(o)) EXPECT_EQ(s.delay_ms, s.slow ? 50 : 0);
}

TEST(LoadSlowPlan, ReadsTheStreamsRateAndSizeFromTheQuery) {
  EXPECT_EQ(query_number("/stream?rate=40&size=5000", "rate", 1), 40u);
  EXPECT_EQ(query_number("/stream?rate=40&size=5000", "size", 1), 5000u);
  EXPECT_EQ(query_number("/stream?xrate=4", "rate", 10), 10u);
  EXPECT_EQ(query_number("/stream?rate=4x", "rate", 10), 10u);
  EXPECT_EQ(query_number("/stream", "rate", 10), 10u);
}

TEST(LoadSlowPlan, SendTimeBinsGiveARatePerInterval) {
  std::vector<uint32_t> bins(1000, 0);             // 10 s of 10 ms bins
  for (size_t i = 100; i < 300; ++i) bins[i] = 1;  // 100 messages/s from 1 s to 3 s
  EXPECT_DOUBLE_EQ(bins_rate(bins, 1.0, 2.0), 100.0);
  EXPECT_DOUBLE_EQ(bins_rate(bins, 0.0, 4.0), 50.0);
  EXPECT_DOUBLE_EQ(bins_rate(bins, 3.0, 4.0), 0.0);
  EXPECT_TRUE(std::isnan(bins_rate(bins, 9.5, 11.0)));  // past the bins
  EXPECT_TRUE(std::isnan(bins_rate(bins, 2.0, 2.0)));
}

TEST(LoadSlowPlan, FlaggedIntervalsJoinIntoShadedSpans) {
  std::vector<double> t = {1, 2, 3, 4, 5, 6};
  auto spans = flagged_spans(t, {false, true, true, false, true, true});
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0], std::make_pair(1.0, 3.0));
  EXPECT_EQ(spans[1], std::make_pair(4.0, 6.0));
  EXPECT_EQ(flagged_spans(t, {true})[0], std::make_pair(0.0, 1.0));
  EXPECT_TRUE(flagged_spans(t, {}).empty());
}

TEST(LoadJsonWriter, ArraysHoldValuesAndObjects) {
  JsonWriter j;
  j.begin_object().begin_array("a").field({}, 1).begin_object().field("x", true).end_object();
  j.end_array().field("b", 2).end_object();
  EXPECT_EQ(j.str(), R"({"a":[1,{"x":true}],"b":2})");
}

}  // namespace
}  // namespace weir::load

// ---------------------------------------------------------------- echo --rate: the schedule

namespace weir::load {
namespace {

constexpr int64_t kMs = 1'000'000;

TEST(LoadEchoPacer, MessageIIsDueAtStartPlusIOverTheRate) {
  EchoPacer pacer(20000, 5 * kMs);  // one message every 50 us
  int64_t at = 0;
  EXPECT_FALSE(pacer.take_due(5 * kMs - 1, &at));  // nothing before the start
  ASSERT_TRUE(pacer.take_due(5 * kMs, &at));
  EXPECT_EQ(at, 5 * kMs);
  EXPECT_EQ(pacer.next_due_ns(), 5 * kMs + 50'000);
  EXPECT_FALSE(pacer.take_due(5 * kMs + 49'999, &at));
  ASSERT_TRUE(pacer.take_due(5 * kMs + 50'000, &at));
  EXPECT_EQ(at, 5 * kMs + 50'000);
  EXPECT_EQ(pacer.taken(), 2u);
}

TEST(LoadEchoPacer, ALateWakeUpHandsOutEveryMissedMessageWithItsOwnScheduledTime) {
  // The loop stalled for 10 ms: the 11 messages due meanwhile go out now, each stamped with
  // the time it should have left, so the stall shows in their round trips.
  EchoPacer pacer(1000, 0);
  std::vector<int64_t> times;
  for (int64_t at = 0; pacer.take_due(10 * kMs, &at);) times.push_back(at);
  ASSERT_EQ(times.size(), 11u);
  for (size_t i = 0; i < times.size(); ++i) EXPECT_EQ(times[i], static_cast<int64_t>(i) * kMs);
  EXPECT_EQ(pacer.next_due_ns(), 11 * kMs);
}

TEST(LoadEchoPacer, MessagesNotTakenAreNotMadeUpTwice) {
  // Held-back messages are taken (and dropped) like sent ones: a connection that was full for
  // a while does not get a burst of old messages later.
  EchoPacer pacer(100, 0);
  int64_t at = 0;
  int taken = 0;
  while (pacer.take_due(1000 * kMs, &at)) taken++;
  EXPECT_EQ(taken, 101);
  EXPECT_FALSE(pacer.take_due(1000 * kMs, &at));
  EXPECT_FALSE(pacer.take_due(1009 * kMs, &at));
  EXPECT_TRUE(pacer.take_due(1010 * kMs, &at));
}

TEST(LoadEchoPacer, AFractionalIntervalDoesNotDriftOverAnHour) {
  EchoPacer pacer(3, 0);  // 333,333,333.3 ns apart
  int64_t at = 0;
  uint64_t n = 0;
  while (pacer.take_due(3600LL * 1000 * kMs, &at)) n++;
  EXPECT_EQ(n, 3u * 3600 + 1);
  EXPECT_EQ(at, 3600LL * 1000 * kMs);  // message 10800 lands on the hour exactly
}

TEST(LoadEchoPacer, ThreadSharesAddUpToTheRate) {
  double sum = 0;
  for (int share : {22, 21, 21}) sum += EchoPacer::thread_rate(20000, share, 64);
  EXPECT_NEAR(sum, 20000, 1e-9);
  EXPECT_EQ(EchoPacer::thread_rate(20000, 0, 0), 0);
}

TEST(LoadOptions, EchoRateIsMessagesPerSecondAndZeroMeansByDepth) {
  Options o;
  std::string e;
  ASSERT_EQ(parse({"echo", "--url", "ws://127.0.0.1:9000/echo", "--rate", "20000/s"}, &o, &e),
            ParseStatus::kOk)
      << e;
  EXPECT_EQ(o.message_rate, 20000.0);
  EXPECT_EQ(o.rate, Options().rate);  // hold's --rate is another field
  ASSERT_EQ(parse({"echo", "--url", "ws://127.0.0.1:9000/echo"}, &o, &e), ParseStatus::kOk) << e;
  EXPECT_EQ(o.message_rate, 0.0);
  ASSERT_EQ(parse({"echo", "--url", "ws://127.0.0.1:9000/echo", "--rate=0"}, &o, &e),
            ParseStatus::kOk)
      << e;
  EXPECT_EQ(parse({"echo", "--url", "ws://127.0.0.1:9000/echo", "--rate", "-5"}, &o, &e),
            ParseStatus::kError);
  EXPECT_NE(e.find("--rate"), std::string::npos);
  EXPECT_EQ(parse({"tcp-echo", "--addr", "127.0.0.1:7000", "--rate", "100"}, &o, &e),
            ParseStatus::kError);
  EXPECT_NE(usage(Command::kEcho).find("--rate R/s"), std::string::npos);
}

}  // namespace
}  // namespace weir::load

namespace weir::load {
namespace {

TEST(LoadRoomProtocol, ResumeEnvelopeNamesTheTokenRoomOffsetAndEpoch) {
  EXPECT_EQ(resume_envelope("m1.5.ab", "lobby", 12, 34),
            R"({"resume":{"token":"m1.5.ab","rooms":{"lobby":{"offset":12,"epoch":34}}}})");
}

// A resumed member's tracker spans the reconnect: a replay of what it already had is a
// duplicate, the next offset is in order.
TEST(LoadOffsetTracker, ReplayedOffsetsAlreadySeenCountAsDuplicates) {
  OffsetTracker t;
  t.joined(0, 7);
  for (uint64_t o = 1; o <= 5; ++o) EXPECT_EQ(t.on_message(o, 7), OffsetTracker::Arrival::kInOrder);
  EXPECT_EQ(t.on_message(5, 7), OffsetTracker::Arrival::kBackwards);
  EXPECT_EQ(t.on_message(4, 7), OffsetTracker::Arrival::kBackwards);
  EXPECT_EQ(t.duplicates(), 2u);
  EXPECT_EQ(t.on_message(6, 7), OffsetTracker::Arrival::kInOrder);
  EXPECT_EQ(t.received(), 6u);
  EXPECT_EQ(t.lost(6), 0u);
}

}  // namespace
}  // namespace weir::load
