// Fuzzes the permessage-deflate decompressor with peer bytes: arbitrary payloads, split into
// messages and frames at fuzzer-chosen points, must inflate or fail cleanly, and never produce
// more than the size limit. Also checks compress -> inflate round trips, and (selector 3) the
// Sec-WebSocket-Extensions negotiation, the other thing here that parses peer bytes.
//
// Input: byte 0 selects the mode and configuration, byte 1 the piece size, the rest is data.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ws/deflate_codec.h"
#include "ws/deflate_negotiation.h"
#include "ws/deflate_workspace.h"

namespace {

using namespace weir::ws;

constexpr size_t kLimit = 64 * 1024;

void check(bool ok) {
  if (!ok) std::abort();
}

DeflateWorkspace& workspace() {
  static DeflateWorkspace ws;  // lives across inputs like a reactor thread's
  return ws;
}

// The data as up to four messages (0xff 0xfe separates them), each fed in `piece`-sized frames.
void inflate_messages(std::string_view data, const DecompressorConfig& config, size_t piece) {
  MessageDecompressor d(&workspace(), config);
  std::string out;
  while (true) {
    const size_t sep = data.find("\xff\xfe");
    const std::string_view message = data.substr(0, sep);
    out.clear();
    ParseResult r;
    size_t done = 0;
    do {
      const size_t n = std::min(piece, message.size() - done);
      r = d.feed({message.data() + done, n}, done + n == message.size(), &out);
      done += n;
    } while (r.ok() && done < message.size());
    check(out.size() <= config.max_message_size);
    check(r.ok() || r.close_code == 1007 || r.close_code == 1009);
    check(!d.in_message() || !r.ok());
    if (!r.ok() || sep == std::string_view::npos) break;
    data.remove_prefix(sep + 2);
  }
}

void round_trip(std::string_view data, int window_bits, bool takeover) {
  MessageCompressor c(&workspace(), {window_bits, takeover});
  MessageDecompressor d(&workspace(), {window_bits, takeover, data.size()});
  std::string payload, out;
  for (int i = 0; i < 2; ++i) {
    payload.clear();
    out.clear();
    check(c.compress(data, &payload).ok());
    check(d.feed({payload.data(), payload.size()}, true, &out).ok());
    check(out == data);
  }
}

void negotiate(std::string_view header, DeflateMode mode) {
  const DeflateServerPolicy policy{mode, 12, 13};
  const DeflateAgreement a = negotiate_deflate(header, policy);
  if (a.accepted) {
    // Our response, read back as an offer, must agree on the same parameters.
    const DeflateAgreement again = negotiate_deflate(a.response, policy);
    check(again.accepted && again.params == a.params);
  }
  const DeflateClientResult r = accept_deflate_response(header, {});
  check(r.outcome != DeflateResponseOutcome::kAccepted || r.params.client_max_window_bits >= 9);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  if (size < 2) return 0;
  const uint8_t selector = bytes[0];
  const size_t piece = bytes[1] == 0 ? size : bytes[1];
  const std::string_view data(reinterpret_cast<const char*>(bytes) + 2, size - 2);
  const int window_bits = 9 + (selector >> 3) % 7;
  const bool takeover = (selector & 4) != 0;
  switch (selector & 3) {
    case 0:
    case 1:
      inflate_messages(data, {window_bits, takeover, (selector & 1) ? kLimit : 1024}, piece);
      break;
    case 2:
      round_trip(data, window_bits, takeover);
      break;
    default:
      negotiate(data, takeover ? DeflateMode::kDedicated : DeflateMode::kShared);
      break;
  }
  return 0;
}
