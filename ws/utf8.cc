// The automaton is specified like Bjoern Hoehrmann's decoder (classify each byte, then one
// transition), with its own classes and states and no code point assembly. It is executed as
// a "shift DFA": each byte maps to one 64-bit row holding the next state for every current
// state in 6-bit fields, so a step is `state = row[byte] >> state` -- one load that does not
// depend on the state and one shift on the critical path (~1 cycle/byte instead of the ~5 of
// a dependent table load). ASCII runs, the common case in chat traffic, are skipped 16 (SSE2)
// or 8 bytes at a time and never touch the table.
#include "ws/utf8.h"

#include <array>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace weir::ws {
namespace {

// Byte classes: what a byte may be, given the UTF-8 ranges of RFC 3629 section 4.
enum ByteClass : uint8_t {
  kAscii,   // 00..7F
  kCont80,  // 80..8F continuation
  kCont90,  // 90..9F continuation
  kContA0,  // A0..BF continuation
  kBad,     // C0, C1 (always overlong), F5..FF (beyond U+10FFFF)
  kLead2,   // C2..DF
  kLeadE0,  // E0: second byte A0..BF, else overlong
  kLead3,   // E1..EC, EE..EF
  kLeadED,  // ED: second byte 80..9F, else surrogate
  kLeadF0,  // F0: second byte 90..BF, else overlong
  kLead4,   // F1..F3
  kLeadF4,  // F4: second byte 80..8F, else above U+10FFFF
  kNumClasses
};

// States: what the rest of the current sequence must look like.
enum State : uint8_t {
  kSAccept,
  kSReject,
  kSNeed1,    // one continuation byte of any kind
  kSNeed2,    // two continuation bytes
  kSNeed2E0,  // A0..BF then one
  kSNeed2ED,  // 80..9F then one
  kSNeed3,    // three continuation bytes
  kSNeed3F0,  // 90..BF then two
  kSNeed3F4,  // 80..8F then two
  kNumStates
};

constexpr int kStateBits = 6;  // 9 states * 6 bits = 54 bits of a row
static_assert(kNumStates * kStateBits <= 64);
static_assert(Utf8Validator::kAccept == kSAccept * kStateBits);
static_assert(Utf8Validator::kReject == kSReject * kStateBits);

constexpr ByteClass classify(int b) {
  if (b < 0x80) return kAscii;
  if (b < 0x90) return kCont80;
  if (b < 0xA0) return kCont90;
  if (b < 0xC0) return kContA0;
  if (b < 0xC2) return kBad;
  if (b < 0xE0) return kLead2;
  if (b == 0xE0) return kLeadE0;
  if (b == 0xED) return kLeadED;
  if (b < 0xF0) return kLead3;
  if (b == 0xF0) return kLeadF0;
  if (b < 0xF4) return kLead4;
  if (b == 0xF4) return kLeadF4;
  return kBad;
}

using Transitions = std::array<std::array<State, kNumClasses>, kNumStates>;

constexpr Transitions make_transitions() {
  Transitions t{};
  for (auto& row : t) row.fill(kSReject);  // anything not listed below is an error
  t[kSAccept][kAscii] = kSAccept;
  t[kSAccept][kLead2] = kSNeed1;
  t[kSAccept][kLeadE0] = kSNeed2E0;
  t[kSAccept][kLead3] = kSNeed2;
  t[kSAccept][kLeadED] = kSNeed2ED;
  t[kSAccept][kLeadF0] = kSNeed3F0;
  t[kSAccept][kLead4] = kSNeed3;
  t[kSAccept][kLeadF4] = kSNeed3F4;
  for (ByteClass any : {kCont80, kCont90, kContA0}) {
    t[kSNeed1][any] = kSAccept;
    t[kSNeed2][any] = kSNeed1;
    t[kSNeed3][any] = kSNeed2;
  }
  t[kSNeed2E0][kContA0] = kSNeed1;
  t[kSNeed2ED][kCont80] = kSNeed1;
  t[kSNeed2ED][kCont90] = kSNeed1;
  t[kSNeed3F0][kCont90] = kSNeed2;
  t[kSNeed3F0][kContA0] = kSNeed2;
  t[kSNeed3F4][kCont80] = kSNeed2;
  return t;
}

// Row for byte b: bits [6s, 6s+6) hold 6 * next_state(s, b).
constexpr std::array<uint64_t, 256> make_rows() {
  constexpr Transitions t = make_transitions();
  std::array<uint64_t, 256> rows{};
  for (int b = 0; b < 256; ++b) {
    for (int s = 0; s < kNumStates; ++s) {
      const uint64_t next = t[s][classify(b)] * kStateBits;
      rows[b] |= next << (s * kStateBits);
    }
  }
  return rows;
}

constexpr std::array<uint64_t, 256> kRows = make_rows();

// Only the low 6 bits of a shifted row are the state; the rest is ignored, which lets the
// step skip masking (x86 shifts use the count modulo 64).
inline uint64_t step(uint64_t state, unsigned char byte) {
  return kRows[byte] >> (state & 63);
}

// Returns the first byte in [p, end) with the high bit set, or end.
const unsigned char* skip_ascii(const unsigned char* p, const unsigned char* end) {
#if defined(__SSE2__)
  for (; end - p >= 16; p += 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    unsigned high = static_cast<unsigned>(_mm_movemask_epi8(v));
    if (high != 0) return p + __builtin_ctz(high);
  }
#endif
  for (; end - p >= 8; p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if ((w & 0x8080808080808080ull) != 0) break;  // find the exact byte below
  }
  while (p < end && *p < 0x80) ++p;
  return p;
}

}  // namespace

bool Utf8Validator::feed(const char* data, size_t len) {
  auto* p = reinterpret_cast<const unsigned char*>(data);
  const auto* end = p + len;
  uint64_t state = state_;
  while (p < end && state != kReject) {
    if (state == kAccept) {
      p = skip_ascii(p, end);
      if (p == end) break;
    }
    // Non-ASCII text (e.g. CJK) runs through the DFA in blocks with no per-byte branches;
    // the ASCII probe is tried again only when a block ends between code points.
    const size_t n = std::min<size_t>(16, static_cast<size_t>(end - p));
    for (size_t i = 0; i < n; ++i) state = step(state, p[i]);
    p += n;
    state &= 63;
  }
  state_ = static_cast<uint8_t>(state);
  return state != kReject;
}

bool is_valid_utf8(std::string_view s) {
  Utf8Validator v;
  return v.feed(s) && v.complete();
}

}  // namespace weir::ws
