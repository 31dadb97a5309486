// permessage-deflate negotiation (RFC 7692 section 7.1) over Sec-WebSocket-Extensions values,
// for both ends: the server picks an offer and writes its response; the client writes an offer
// and validates the server's response. Pure functions over strings; no zlib, no sockets.
//
// Header syntax (RFC 6455 9.1): comma-separated extensions, each `name *(; param[=value])`,
// values tokens or quoted strings, optional whitespace around separators. Names are matched
// case-insensitively. Several Sec-WebSocket-Extensions header lines must be joined with ", "
// by the caller (RFC 7230 3.2.2) before calling in.
//
// Window bits of 8: zlib refuses an 8-bit window for raw deflate (it silently used 9 before
// 1.2.9), so we cannot honour a peer that limits *our* compressor to 8. The server declines
// such an offer and moves on to the next one: answering 9 would break the "same or smaller
// value" rule of 7.1.2.1 and the client would have to fail the connection. A client-side 8
// (the peer's compressor) is fine: we inflate with 9, which accepts everything 8 produces.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace weir::ws {

// The `--deflate` flag. off: never negotiate (the default; compression costs throughput).
// shared: force no context takeover both ways so zlib state exists only while a message is
// being (de)compressed, borrowed from a per-thread pool. dedicated: per-connection streams
// with context takeover where negotiated (~180 KiB per busy connection at 15 window bits).
enum class DeflateMode : uint8_t { kOff, kShared, kDedicated };

// Parses "off" | "shared" | "dedicated". Thread-safe: pure function.
bool parse_deflate_mode(std::string_view text, DeflateMode* mode);
std::string_view to_string(DeflateMode mode);

// What both ends agreed (RFC 7692 7.1). Window bits are 8..15; an absent parameter means 15.
struct DeflateParams {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  uint8_t server_max_window_bits = 15;
  uint8_t client_max_window_bits = 15;

  bool operator==(const DeflateParams&) const = default;
};

struct DeflateServerPolicy {
  DeflateMode mode = DeflateMode::kOff;
  // Our compressor's window (9..15). Below 15 it is announced even when not asked for
  // (allowed by 7.1.2.1); this is the knob that bounds a dedicated connection's deflater.
  uint8_t server_max_window_bits = 15;
  // The window we ask of the client (9..15) when its offer carries client_max_window_bits;
  // bounds our inflater. Offers without that parameter leave the client free to use 15.
  uint8_t client_max_window_bits = 15;
};

struct DeflateAgreement {
  bool accepted = false;
  DeflateParams params;
  std::string response;  // the Sec-WebSocket-Extensions value to send back; empty if declined
};

// Picks the first acceptable permessage-deflate offer in `offers` (a Sec-WebSocket-Extensions
// value). An offer with an unknown, duplicated or invalid parameter, or a malformed one, is
// declined and the next is tried (7.1: "MUST decline"). Other extensions are ignored.
// Thread-safe: pure function.
DeflateAgreement negotiate_deflate(std::string_view offers, const DeflateServerPolicy& policy);

// What a client offers. Window bits are 9..15, or 0 for "not offered"/"offered without value".
struct DeflateClientOffer {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  uint8_t server_max_window_bits = 0;  // 0: parameter not sent
  bool offer_client_max_window_bits = true;
  uint8_t client_max_window_bits = 0;  // 0: sent without a value ("the server may choose")
};

// The Sec-WebSocket-Extensions value for `offer`, e.g.
// "permessage-deflate; client_max_window_bits". Thread-safe: pure function.
std::string make_deflate_offer(const DeflateClientOffer& offer);

enum class DeflateResponseOutcome : uint8_t {
  kNotNegotiated,  // no extension in the response: talk uncompressed
  kAccepted,
  kInvalid,  // the client must _Fail the WebSocket Connection_ (RFC 7692 7.1, RFC 6455 9.1)
};

struct DeflateClientResult {
  DeflateResponseOutcome outcome = DeflateResponseOutcome::kNotNegotiated;
  DeflateParams params;
  const char* error = "";  // static text when kInvalid
};

// Validates the server's Sec-WebSocket-Extensions value against what we offered: exactly one
// permessage-deflate element, known parameters once each, windows no larger than offered,
// client_max_window_bits only if offered (and not 8: zlib cannot compress with it), and every
// server_* parameter we asked for present. Thread-safe: pure function.
DeflateClientResult accept_deflate_response(std::string_view response,
                                            const DeflateClientOffer& offer);

}  // namespace weir::ws
