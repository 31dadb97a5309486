// permessage-deflate negotiation: Sec-WebSocket-Extensions tokenizer, offer selection on the
// server, offer building and response validation on the client.
#include "ws/deflate_negotiation.h"

#include <algorithm>
#include <array>

namespace weir::ws {
namespace {

constexpr std::string_view kExtensionName = "permessage-deflate";

// ---- Sec-WebSocket-Extensions tokenizer (RFC 6455 9.1, RFC 7230 3.2.6) ----

bool is_ows(char c) {
  return c == ' ' || c == '\t';
}

bool is_tchar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Returns the list element starting at *pos and moves *pos past its comma. Commas inside
// quoted strings do not split; an unterminated quote swallows the rest of the header, which
// then fails to parse as one bad element.
std::string_view next_element(std::string_view header, size_t* pos) {
  const size_t begin = *pos;
  bool quoted = false;
  size_t i = begin;
  for (; i < header.size(); ++i) {
    const char c = header[i];
    if (quoted && c == '\\') {
      ++i;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && c == ',') {
      break;
    }
  }
  const size_t end = std::min(i, header.size());
  *pos = end + 1;
  return header.substr(begin, end - begin);
}

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return is_ows(c); });
}

struct ExtensionParam {
  std::string_view name;
  std::string_view value;  // a token, or the inside of a quoted string with escapes intact
  bool has_value = false;
};

// permessage-deflate has four parameters and rejects repeats, so more than this many can
// never be acceptable; other extensions only need their name parsed.
constexpr int kMaxParams = 8;

struct Extension {
  std::string_view name;
  std::array<ExtensionParam, kMaxParams> params;
  int param_count = 0;
};

class Cursor {
 public:
  explicit Cursor(std::string_view text) : text_(text) {}
  void skip_ows() {
    while (pos_ < text_.size() && is_ows(text_[pos_])) ++pos_;
  }
  bool at_end() const { return pos_ == text_.size(); }
  bool consume(char c) {
    if (pos_ == text_.size() || text_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  std::string_view token() {
    const size_t begin = pos_;
    while (pos_ < text_.size() && is_tchar(text_[pos_])) ++pos_;
    return text_.substr(begin, pos_ - begin);
  }
  // A quoted string after its opening quote; returns false if unterminated or holding
  // control characters. The result keeps backslash escapes (see window_bits_value).
  bool quoted_rest(std::string_view* inside) {
    const size_t begin = pos_;
    for (; pos_ < text_.size(); ++pos_) {
      auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') {
        *inside = text_.substr(begin, pos_++ - begin);
        return true;
      }
      if (c == '\\') {
        if (++pos_ == text_.size()) return false;
        c = static_cast<unsigned char>(text_[pos_]);
      }
      if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
    }
    return false;
  }

 private:
  std::string_view text_;
  size_t pos_ = 0;
};

bool parse_param(Cursor& in, ExtensionParam* param) {
  in.skip_ows();
  param->name = in.token();
  if (param->name.empty()) return false;
  in.skip_ows();
  if (!in.consume('=')) return true;
  in.skip_ows();
  param->has_value = true;
  if (in.consume('"')) return in.quoted_rest(&param->value);
  param->value = in.token();
  return !param->value.empty();
}

// Parses one list element; false if it is not `token *( OWS ";" OWS param )`.
bool parse_extension(std::string_view element, Extension* ext) {
  Cursor in(element);
  in.skip_ows();
  ext->name = in.token();
  if (ext->name.empty()) return false;
  for (;;) {
    in.skip_ows();
    if (in.at_end()) return true;
    if (!in.consume(';') || ext->param_count == kMaxParams) return false;
    if (!parse_param(in, &ext->params[ext->param_count++])) return false;
  }
}

// ---- permessage-deflate parameters (RFC 7692 7.1) ----

struct DeflateParamSet {
  bool server_no_context_takeover = false;
  bool client_no_context_takeover = false;
  int server_max_window_bits = 0;  // 0: absent
  bool has_client_max_window_bits = false;
  int client_max_window_bits = 0;  // 0: present without a value
};

// "a decimal integer value without leading zeroes between 8 to 15" (7.1.2.1); a quoted value
// must be the same token after unescaping (RFC 6455 9.1). Returns 0 when invalid.
int window_bits_value(std::string_view raw) {
  int value = 0, digits = 0;
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '\\' && i + 1 < raw.size()) c = raw[++i];
    if (c < '0' || c > '9' || (digits == 0 && c == '0') || ++digits > 2) return 0;
    value = value * 10 + (c - '0');
  }
  return value >= 8 && value <= 15 ? value : 0;
}

enum ParamBit : unsigned {
  kServerNoContextTakeover = 1,
  kClientNoContextTakeover = 2,
  kServerMaxWindowBits = 4,
  kClientMaxWindowBits = 8,
};

unsigned param_bit(std::string_view name) {
  if (iequals(name, "server_no_context_takeover")) return kServerNoContextTakeover;
  if (iequals(name, "client_no_context_takeover")) return kClientNoContextTakeover;
  if (iequals(name, "server_max_window_bits")) return kServerMaxWindowBits;
  if (iequals(name, "client_max_window_bits")) return kClientMaxWindowBits;
  return 0;
}

const char* apply_param(unsigned bit, const ExtensionParam& p, DeflateParamSet* out) {
  switch (bit) {
    case kServerNoContextTakeover:
      out->server_no_context_takeover = true;
      return p.has_value ? "server_no_context_takeover takes no value" : nullptr;
    case kClientNoContextTakeover:
      out->client_no_context_takeover = true;
      return p.has_value ? "client_no_context_takeover takes no value" : nullptr;
    case kServerMaxWindowBits:
      out->server_max_window_bits = window_bits_value(p.value);
      return out->server_max_window_bits == 0 ? "server_max_window_bits must be 8..15" : nullptr;
    default:
      out->has_client_max_window_bits = true;
      if (!p.has_value) return nullptr;
      out->client_max_window_bits = window_bits_value(p.value);
      return out->client_max_window_bits == 0 ? "client_max_window_bits must be 8..15" : nullptr;
  }
}

// Fills `out` from the element's parameters; returns nullptr or why they are unacceptable.
const char* read_deflate_params(const Extension& ext, DeflateParamSet* out) {
  unsigned seen = 0;
  for (int i = 0; i < ext.param_count; ++i) {
    const unsigned bit = param_bit(ext.params[i].name);
    if (bit == 0) return "unknown permessage-deflate parameter";
    if ((seen & bit) != 0) return "duplicate permessage-deflate parameter";
    seen |= bit;
    if (const char* why = apply_param(bit, ext.params[i], out)) return why;
  }
  return nullptr;
}

uint8_t clamp_window_bits(uint8_t bits) {
  return std::clamp<uint8_t>(bits, 9, 15);
}

DeflateParams agree(const DeflateParamSet& offer, const DeflateServerPolicy& policy) {
  const bool shared = policy.mode == DeflateMode::kShared;
  DeflateParams p;
  p.server_no_context_takeover = offer.server_no_context_takeover || shared;
  p.client_no_context_takeover = offer.client_no_context_takeover || shared;
  const int server_cap = clamp_window_bits(policy.server_max_window_bits);
  const int server_asked = offer.server_max_window_bits ? offer.server_max_window_bits : 15;
  p.server_max_window_bits = static_cast<uint8_t>(std::min(server_asked, server_cap));
  if (offer.has_client_max_window_bits) {
    const int client_cap = clamp_window_bits(policy.client_max_window_bits);
    const int client_said = offer.client_max_window_bits ? offer.client_max_window_bits : 15;
    p.client_max_window_bits = static_cast<uint8_t>(std::min(client_said, client_cap));
  }
  return p;
}

std::string format_response(const DeflateParamSet& offer, const DeflateParams& p) {
  std::string out(kExtensionName);
  if (p.server_no_context_takeover) out += "; server_no_context_takeover";
  if (p.client_no_context_takeover) out += "; client_no_context_takeover";
  // Required when offered (7.1.2.1 "accepts ... by including"), optional otherwise.
  if (offer.server_max_window_bits != 0 || p.server_max_window_bits < 15) {
    out += "; server_max_window_bits=" + std::to_string(p.server_max_window_bits);
  }
  // Only when offered (7.1.2.2 "MUST NOT include" otherwise); always with a value.
  if (offer.has_client_max_window_bits) {
    out += "; client_max_window_bits=" + std::to_string(p.client_max_window_bits);
  }
  return out;
}

DeflateClientResult invalid(const char* why) {
  DeflateClientResult result;
  result.outcome = DeflateResponseOutcome::kInvalid;
  result.error = why;
  return result;
}

// 7.1: the client fails the connection when the response breaks what it offered.
const char* check_response(const DeflateParamSet& r, const DeflateClientOffer& offer) {
  if (offer.server_no_context_takeover && !r.server_no_context_takeover) {
    return "server ignored server_no_context_takeover";
  }
  if (offer.server_max_window_bits != 0) {
    if (r.server_max_window_bits == 0) return "server ignored server_max_window_bits";
    if (r.server_max_window_bits > offer.server_max_window_bits) {
      return "server_max_window_bits above the offered value";
    }
  }
  if (r.has_client_max_window_bits) {
    if (!offer.offer_client_max_window_bits) return "client_max_window_bits was not offered";
    if (r.client_max_window_bits == 0) return "client_max_window_bits without a value";
    if (offer.client_max_window_bits != 0 &&
        r.client_max_window_bits > offer.client_max_window_bits) {
      return "client_max_window_bits above the offered value";
    }
    if (r.client_max_window_bits == 8) return "client_max_window_bits=8: zlib cannot deflate";
  }
  return nullptr;
}

}  // namespace

bool parse_deflate_mode(std::string_view text, DeflateMode* mode) {
  for (DeflateMode m : {DeflateMode::kOff, DeflateMode::kShared, DeflateMode::kDedicated}) {
    if (text == to_string(m)) {
      *mode = m;
      return true;
    }
  }
  return false;
}

std::string_view to_string(DeflateMode mode) {
  switch (mode) {
    case DeflateMode::kOff:
      return "off";
    case DeflateMode::kShared:
      return "shared";
    case DeflateMode::kDedicated:
      return "dedicated";
  }
  return "?";
}

DeflateAgreement negotiate_deflate(std::string_view offers, const DeflateServerPolicy& policy) {
  DeflateAgreement result;
  if (policy.mode == DeflateMode::kOff) return result;
  for (size_t pos = 0; pos <= offers.size();) {
    Extension ext;
    if (!parse_extension(next_element(offers, &pos), &ext)) continue;
    if (!iequals(ext.name, kExtensionName)) continue;
    DeflateParamSet offer;
    if (read_deflate_params(ext, &offer) != nullptr) continue;
    if (offer.server_max_window_bits == 8) continue;  // see the header comment
    result.accepted = true;
    result.params = agree(offer, policy);
    result.response = format_response(offer, result.params);
    break;
  }
  return result;
}

std::string make_deflate_offer(const DeflateClientOffer& offer) {
  std::string out(kExtensionName);
  if (offer.server_no_context_takeover) out += "; server_no_context_takeover";
  if (offer.client_no_context_takeover) out += "; client_no_context_takeover";
  if (offer.server_max_window_bits != 0) {
    out += "; server_max_window_bits=" + std::to_string(offer.server_max_window_bits);
  }
  if (offer.offer_client_max_window_bits) {
    out += "; client_max_window_bits";
    if (offer.client_max_window_bits != 0) {
      out += "=" + std::to_string(offer.client_max_window_bits);
    }
  }
  return out;
}

DeflateClientResult accept_deflate_response(std::string_view response,
                                            const DeflateClientOffer& offer) {
  std::string_view element;
  for (size_t pos = 0; pos <= response.size();) {
    const std::string_view next = next_element(response, &pos);
    if (is_blank(next)) continue;  // empty list elements are allowed (RFC 7230 7)
    if (!element.empty()) return invalid("server accepted more than one extension");
    element = next;
  }
  if (element.empty()) return {};
  Extension ext;
  if (!parse_extension(element, &ext)) return invalid("malformed Sec-WebSocket-Extensions");
  if (!iequals(ext.name, kExtensionName)) return invalid("server accepted an unoffered extension");
  DeflateParamSet r;
  if (const char* why = read_deflate_params(ext, &r)) return invalid(why);
  if (const char* why = check_response(r, offer)) return invalid(why);

  DeflateClientResult result;
  result.outcome = DeflateResponseOutcome::kAccepted;
  DeflateParams& p = result.params;
  p.server_no_context_takeover = r.server_no_context_takeover;
  // Offering client_no_context_takeover is a promise the server may rely on without echoing.
  p.client_no_context_takeover = r.client_no_context_takeover || offer.client_no_context_takeover;
  if (r.server_max_window_bits != 0) p.server_max_window_bits = r.server_max_window_bits;
  if (r.has_client_max_window_bits) {
    p.client_max_window_bits = static_cast<uint8_t>(r.client_max_window_bits);
  } else if (offer.offer_client_max_window_bits && offer.client_max_window_bits != 0) {
    p.client_max_window_bits = offer.client_max_window_bits;  // our own promise still holds
  }
  return result;
}

}  // namespace weir::ws
