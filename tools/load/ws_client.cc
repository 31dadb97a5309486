// tools/load/ws_client.cc — upgrade, framing, deflate and close handshake of a load client.
#include "tools/load/ws_client.h"

#include <charconv>
#include <cstring>

#include "ws/base64.h"
#include "ws/frame_encoder.h"
#include "ws/handshake.h"
#include "ws/http_request.h"
#include "ws/mask.h"

namespace weir::load {
namespace {

constexpr size_t kMaxResponseHead = 16 * 1024;

// Splits the head into lines; the first is the status line.
struct ResponseHead {
  int status = 0;
  std::string upgrade, connection, accept, extensions;
  int accept_count = 0;
};

void append_list(std::string* list, std::string_view value) {
  if (!list->empty()) *list += ", ";
  *list += value;
}

bool parse_head(std::string_view head, ResponseHead* out, std::string* error) {
  size_t eol = head.find("\r\n");
  std::string_view status_line = head.substr(0, eol);
  if (status_line.substr(0, 7) != "HTTP/1." || status_line.size() < 12 || status_line[8] != ' ') {
    *error = "not an HTTP/1.x response: '" + std::string(status_line.substr(0, 60)) + "'";
    return false;
  }
  std::from_chars(status_line.data() + 9, status_line.data() + 12, out->status);
  while (eol != std::string_view::npos) {
    size_t start = eol + 2;
    eol = head.find("\r\n", start);
    std::string_view line = head.substr(start, eol == std::string_view::npos ? eol : eol - start);
    if (line.empty()) continue;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string_view name = line.substr(0, colon);
    std::string_view value = ws::trim_ows(line.substr(colon + 1));
    if (ws::ascii_iequals(name, "upgrade"))
      append_list(&out->upgrade, value);
    else if (ws::ascii_iequals(name, "connection"))
      append_list(&out->connection, value);
    else if (ws::ascii_iequals(name, "sec-websocket-extensions"))
      append_list(&out->extensions, value);
    else if (ws::ascii_iequals(name, "sec-websocket-accept")) {
      out->accept = std::string(value);
      out->accept_count++;
    }
  }
  return true;
}

}  // namespace

// ---------------------------------------------------------------- ClientContext

ClientContext::ClientContext(uint64_t seed) : state_(seed ? seed : 0x2545F4914F6CDD1Dull) {}

uint64_t ClientContext::next_random() {
  state_ ^= state_ >> 12;
  state_ ^= state_ << 25;
  state_ ^= state_ >> 27;
  return state_ * 0x2545F4914F6CDD1Dull;
}

char* ClientContext::scratch(size_t len) {
  if (len > scratch_size_) {
    size_t size = scratch_size_ ? scratch_size_ : 4096;
    while (size < len) size *= 2;
    scratch_ = std::make_unique<char[]>(size);
    scratch_size_ = size;
  }
  return scratch_.get();
}

ws::DeflateWorkspace& ClientContext::workspace() {
  if (!workspace_) workspace_ = std::make_unique<ws::DeflateWorkspace>();
  return *workspace_;
}

// ---------------------------------------------------------------- handshake

std::string build_upgrade_request(const WsClientConfig& config, std::string_view key,
                                  const ws::DeflateClientOffer* offer) {
  std::string out = "GET " + config.target + " HTTP/1.1\r\nHost: " + config.host_header +
                    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ";
  out += key;
  out += "\r\nSec-WebSocket-Version: 13\r\n";
  if (offer) out += "Sec-WebSocket-Extensions: " + ws::make_deflate_offer(*offer) + "\r\n";
  out += "User-Agent: weir-load\r\n\r\n";
  return out;
}

UpgradeCheck check_upgrade_response(std::string_view head, std::string_view key,
                                    const ws::DeflateClientOffer* offer) {
  UpgradeCheck check;
  ResponseHead h;
  if (!parse_head(head, &h, &check.error)) return check;
  if (h.status != 101) {
    check.error = "upgrade refused: HTTP " + std::to_string(h.status);
    return check;
  }
  if (!ws::token_list_contains(h.upgrade, "websocket")) {
    check.error = "101 without Upgrade: websocket";
  } else if (!ws::token_list_contains(h.connection, "upgrade")) {
    check.error = "101 without Connection: upgrade";
  } else if (h.accept_count != 1 || h.accept != ws::compute_accept_key(key)) {
    check.error = "Sec-WebSocket-Accept does not match the key sent";
  } else if (!h.extensions.empty() && offer == nullptr) {
    check.error = "server chose an extension that was not offered: " + h.extensions;
  } else if (offer != nullptr) {
    ws::DeflateClientResult r = ws::accept_deflate_response(h.extensions, *offer);
    if (r.outcome == ws::DeflateResponseOutcome::kInvalid) {
      check.error = std::string("bad permessage-deflate response: ") + r.error;
      return check;
    }
    check.deflate = r.outcome == ws::DeflateResponseOutcome::kAccepted;
    check.params = r.params;
  }
  check.ok = check.error.empty();
  return check;
}

// ---------------------------------------------------------------- WsClient

WsClient::WsClient(net::Connection& conn, const WsClientConfig& config, ClientContext* context,
                   WsClientListener* listener)
    : conn_(conn),
      config_(config),
      context_(context),
      listener_(listener),
      parser_(ws::FrameParserConfig{ws::Role::kClient, config.max_message_size, false}, this) {
  char raw[16];
  for (int i = 0; i < 2; ++i) {
    uint64_t r = context_->next_random();
    std::memcpy(raw + 8 * i, &r, 8);
  }
  key_ = ws::base64_encode(std::string_view(raw, sizeof raw));
  conn_.write(build_upgrade_request(config_, key_, config_.offer_deflate ? &offer_ : nullptr));
}

WsClient::~WsClient() = default;

void WsClient::on_data(net::Connection&, char* data, size_t len) {
  if (state_ == State::kUpgrading)
    read_upgrade_response(data, len);
  else
    consume_frames(data, len);
}

void WsClient::read_upgrade_response(char* data, size_t len) {
  response_.append(data, len);
  size_t end = response_.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (response_.size() > kMaxResponseHead) abort("upgrade response head too large");
    return;
  }
  UpgradeCheck check = check_upgrade_response(std::string_view(response_).substr(0, end + 2), key_,
                                              config_.offer_deflate ? &offer_ : nullptr);
  if (!check.ok) {
    abort(check.error);
    return;
  }
  if (check.deflate)
    deflate_ = std::make_unique<ws::PerMessageDeflate>(&context_->workspace(), check.params,
                                                       ws::Role::kClient, config_.max_message_size);
  parser_.reset(ws::FrameParserConfig{ws::Role::kClient, config_.max_message_size, check.deflate});
  std::string rest = response_.substr(end + 4);
  std::string().swap(response_);
  state_ = State::kOpen;
  end_.opened = true;
  listener_->on_open(*this);
  if (!rest.empty()) consume_frames(rest.data(), rest.size());
}

void WsClient::consume_frames(char* data, size_t len) {
  if (state_ == State::kClosed) return;
  ws::ParseResult r = parser_.consume(data, len);
  if (!r.ok()) fail(r.close_code, r.reason);
}

bool WsClient::send_prepared(ws::Opcode opcode, size_t len) {
  if (state_ != State::kOpen) return false;
  return send_frame(opcode, context_->scratch(len), len, deflate_ != nullptr);
}

bool WsClient::send(ws::Opcode opcode, std::string_view payload) {
  if (state_ != State::kOpen) return false;
  char* p = context_->scratch(payload.size());
  std::memcpy(p, payload.data(), payload.size());
  return send_frame(opcode, p, payload.size(), deflate_ != nullptr);
}

// Header in a small array, payload masked in place: two parts copied into the queue.
bool WsClient::send_frame(ws::Opcode opcode, char* payload, size_t len, bool compress) {
  if (compress) {
    std::string& out = context_->compressed();
    out.clear();
    ws::ParseResult r = deflate_->compressor().compress(std::string_view(payload, len), &out);
    if (!r.ok()) {
      fail(r.close_code, r.reason);
      return false;
    }
    payload = out.data();
    len = out.size();
  }
  uint32_t key = context_->mask_key();
  char header[ws::kMaxFrameHeaderSize];
  size_t header_len = ws::encode_frame_header(header, opcode, true, compress, len, &key);
  ws::apply_mask(payload, len, key, 0);
  net::WritePart parts[2] = {net::WritePart::copy(std::string_view(header, header_len)),
                             net::WritePart::copy(std::string_view(payload, len))};
  return conn_.write(std::span<const net::WritePart>(parts, 2)) == net::WriteResult::kAccepted;
}

void WsClient::send_control(ws::Opcode opcode, std::string_view payload) {
  uint32_t key = context_->mask_key();
  char frame[ws::kMaxControlFrameSize];
  size_t n = ws::encode_control_frame(frame, opcode, payload, &key);
  conn_.write(std::string_view(frame, n));
}

bool WsClient::ping(std::string_view payload) {
  if (state_ != State::kOpen) return false;
  send_control(ws::Opcode::kPing, payload);
  return true;
}

void WsClient::close(uint16_t code, std::string_view reason) {
  if (state_ == State::kUpgrading) {
    abort("closed before the upgrade completed");
    return;
  }
  if (state_ != State::kOpen) return;
  uint32_t key = context_->mask_key();
  char frame[ws::kMaxControlFrameSize];
  conn_.write(std::string_view(frame, ws::encode_close_frame(frame, code, reason, &key)));
  state_ = State::kClosing;
}

void WsClient::abort(std::string_view why) {
  if (state_ == State::kClosed) return;
  record_end(false, ws::kCloseAbnormal, why);
  state_ = State::kClosed;
  conn_.abort();
}

// A protocol error from the server: tell it why (RFC 6455 7.1.7) and close.
void WsClient::fail(uint16_t code, std::string_view reason) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kOpen) {
    uint32_t key = context_->mask_key();
    char frame[ws::kMaxControlFrameSize];
    conn_.write(std::string_view(frame, ws::encode_close_frame(frame, code, reason, &key)));
  }
  record_end(false, code, reason);
  state_ = State::kClosed;
  conn_.close();
}

void WsClient::record_end(bool clean, uint16_t code, std::string_view reason) {
  if (end_recorded_) return;
  end_recorded_ = true;
  end_.clean = clean;
  end_.code = code;
  end_.reason = std::string(reason);
}

void WsClient::on_closed(net::Connection&, net::CloseReason, std::string_view detail) {
  state_ = State::kClosed;
  record_end(false, ws::kCloseAbnormal, detail.empty() ? "connection lost" : detail);
  if (deflate_) deflate_->decompressor().abandon_message();
  listener_->on_closed(*this, end_);
}

// ---------------------------------------------------------------- frames from the server

void WsClient::on_message_begin(ws::Opcode opcode, bool compressed) {
  message_compressed_ = compressed;
  listener_->on_message_begin(*this, opcode);
}

void WsClient::on_message_data(std::span<const char> data, bool message_complete) {
  if (!message_compressed_) {
    listener_->on_message_data(*this, data, message_complete);
    return;
  }
  std::string& out = context_->inflated();
  out.clear();
  ws::ParseResult r = deflate_->decompressor().feed(data, message_complete, &out);
  if (!r.ok()) {
    parser_.fail(r.close_code, r.reason);
    return;
  }
  if (!out.empty() || message_complete)
    listener_->on_message_data(*this, std::span<const char>(out.data(), out.size()),
                               message_complete);
}

void WsClient::on_ping(std::span<const char> payload) {
  if (state_ == State::kOpen)
    send_control(ws::Opcode::kPong, std::string_view(payload.data(), payload.size()));
}

void WsClient::on_pong(std::span<const char> payload) {
  listener_->on_pong(*this, payload);
}

void WsClient::on_close(bool code_present, uint16_t code, std::string_view reason) {
  if (state_ == State::kOpen) {  // the server started it: answer with its code (RFC 6455 5.5.1)
    uint32_t key = context_->mask_key();
    char frame[ws::kMaxControlFrameSize];
    uint16_t reply = code_present ? code : ws::kCloseNoStatus;
    conn_.write(std::string_view(frame, ws::encode_close_frame(frame, reply, {}, &key)));
  }
  record_end(true, code_present ? code : ws::kCloseNoStatus, reason);
  state_ = State::kClosed;
  conn_.close();
}

}  // namespace weir::load
