// Test helpers for the frame layer: a FrameHandler that logs events in a canonical form (data
// chunks of one run are joined, so any way of splitting the input logs the same thing), a raw
// frame builder that can also produce invalid frames, and drivers that feed a stream whole, in
// two pieces or byte by byte.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ws/frame.h"
#include "ws/frame_parser.h"

namespace weir::ws::testing {

class FrameRecorder : public FrameHandler {
 public:
  std::vector<std::string> events;
  std::vector<std::span<const char>> data_spans;  // every span handed to on_message_data

  void on_message_begin(Opcode opcode, bool compressed) override {
    push("begin:" + std::to_string(static_cast<int>(opcode)) + (compressed ? ":z" : ""));
  }
  void on_message_data(std::span<const char> data, bool complete) override {
    data_spans.push_back(data);
    if (!open_data_) events.push_back("data:");
    events.back().append(data.data(), data.size());
    open_data_ = !complete;
    if (complete) events.back() += "|end";
  }
  void on_ping(std::span<const char> p) override {
    push("ping:" + std::string(p.begin(), p.end()));
  }
  void on_pong(std::span<const char> p) override {
    push("pong:" + std::string(p.begin(), p.end()));
  }
  void on_close(bool present, uint16_t code, std::string_view reason) override {
    push("close:" + std::string(present ? "" : "none:") + std::to_string(code) + ":" +
         std::string(reason));
  }

 private:
  void push(std::string e) {
    open_data_ = false;
    events.push_back(std::move(e));
  }
  bool open_data_ = false;
};

inline constexpr std::array<uint8_t, 4> kTestKey = {0x37, 0xfa, 0x21, 0x3d};

// Raw frame: first byte as given, payload masked with `key` when `masked`. `length_form` forces
// the 7 (0), 16 (126) or 64 (127) bit length encoding; -1 picks the minimal one.
inline std::string raw_frame(uint8_t b0, std::string_view payload, bool masked = true,
                             int length_form = -1, std::array<uint8_t, 4> key = kTestKey) {
  const uint64_t len = payload.size();
  if (length_form < 0) length_form = len < 126 ? 0 : len <= 0xFFFF ? 126 : 127;
  std::string out(1, static_cast<char>(b0));
  const uint8_t mask_bit = masked ? 0x80 : 0;
  if (length_form == 0) {
    out += static_cast<char>(mask_bit | len);
  } else {
    out += static_cast<char>(mask_bit | length_form);
    const int bytes = length_form == 126 ? 2 : 8;
    for (int i = bytes - 1; i >= 0; --i) out += static_cast<char>((len >> (8 * i)) & 0xFF);
  }
  if (masked) out.append(reinterpret_cast<const char*>(key.data()), 4);
  for (size_t i = 0; i < payload.size(); ++i) {
    out += static_cast<char>(payload[i] ^ (masked ? key[i % 4] : 0));
  }
  return out;
}

inline uint8_t b0(Opcode op, bool fin = true, uint8_t extra_bits = 0) {
  return static_cast<uint8_t>((fin ? 0x80 : 0) | extra_bits | static_cast<uint8_t>(op));
}

// A masked (client-to-server) frame, the common case for server-role tests.
inline std::string frame(Opcode op, std::string_view payload, bool fin = true) {
  return raw_frame(b0(op, fin), payload, true);
}

struct ParseRun {
  std::vector<std::string> events;
  ParseResult result;
  size_t error_at = SIZE_MAX;  // end offset of the chunk whose consume() failed
};

// Feeds `stream` cut at the given ascending offsets; stops at the first error.
inline ParseRun parse_cut(std::string stream, const std::vector<size_t>& cuts,
                          FrameParserConfig config = {}) {
  FrameRecorder rec;
  FrameParser parser(config, &rec);
  ParseRun run;
  size_t start = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(stream.size());
  for (size_t end : ends) {
    run.result = parser.consume(stream.data() + start, end - start);
    if (!run.result.ok()) {
      run.error_at = end;
      break;
    }
    start = end;
  }
  run.events = rec.events;
  return run;
}

inline ParseRun parse_whole(const std::string& stream, FrameParserConfig config = {}) {
  return parse_cut(stream, {}, config);
}

inline ParseRun parse_bytewise(const std::string& stream, FrameParserConfig config = {}) {
  std::vector<size_t> cuts;
  for (size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
  return parse_cut(stream, cuts, config);
}

}  // namespace weir::ws::testing
