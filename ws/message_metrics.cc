// ws/message_metrics.cc — the by-type message and payload-byte counters and their totals.
#include "ws/message_metrics.h"

namespace weir::ws::metrics {

namespace {
constexpr char kMessagesHelp[] =
    "WebSocket messages (text, binary) and control frames (ping, pong, close), by direction and "
    "type";
constexpr char kBytesHelp[] =
    "WebSocket payload bytes without frame headers (messages after inflating, before "
    "compressing), by direction and type";
}  // namespace

core::Counter messages[2][kMessageTypes] = {
    {
        {"weir_ws_messages_total", kMessagesHelp, "direction=\"in\",type=\"text\""},
        {"weir_ws_messages_total", kMessagesHelp, "direction=\"in\",type=\"binary\""},
        {"weir_ws_messages_total", kMessagesHelp, "direction=\"in\",type=\"ping\""},
        {"weir_ws_messages_total", kMessagesHelp, "direction=\"in\",type=\"pong\""},
        {"weir_ws_messages_total", kMessagesHelp, "direction=\"in\",type=\"close\""},
    },
    {
        {"weir_ws_messages_total", kMessagesHelp, "direction=\"out\",type=\"text\""},
        {"weir_ws_messages_total", kMessagesHelp, "direction=\"out\",type=\"binary\""},
        {"weir_ws_messages_total", kMessagesHelp, "direction=\"out\",type=\"ping\""},
        {"weir_ws_messages_total", kMessagesHelp, "direction=\"out\",type=\"pong\""},
        {"weir_ws_messages_total", kMessagesHelp, "direction=\"out\",type=\"close\""},
    },
};

core::Counter payload_bytes[2][kMessageTypes] = {
    {
        {"weir_ws_payload_bytes_total", kBytesHelp, "direction=\"in\",type=\"text\""},
        {"weir_ws_payload_bytes_total", kBytesHelp, "direction=\"in\",type=\"binary\""},
        {"weir_ws_payload_bytes_total", kBytesHelp, "direction=\"in\",type=\"ping\""},
        {"weir_ws_payload_bytes_total", kBytesHelp, "direction=\"in\",type=\"pong\""},
        {"weir_ws_payload_bytes_total", kBytesHelp, "direction=\"in\",type=\"close\""},
    },
    {
        {"weir_ws_payload_bytes_total", kBytesHelp, "direction=\"out\",type=\"text\""},
        {"weir_ws_payload_bytes_total", kBytesHelp, "direction=\"out\",type=\"binary\""},
        {"weir_ws_payload_bytes_total", kBytesHelp, "direction=\"out\",type=\"ping\""},
        {"weir_ws_payload_bytes_total", kBytesHelp, "direction=\"out\",type=\"pong\""},
        {"weir_ws_payload_bytes_total", kBytesHelp, "direction=\"out\",type=\"close\""},
    },
};

namespace {

constexpr int kText = message_type(Opcode::kText);
constexpr int kBinary = message_type(Opcode::kBinary);

// The totals from before the by-type series: text plus binary, summed when scraped.
core::Counter g_messages_received("weir_ws_messages_received_total",
                                  "WebSocket messages received (text and binary)", "", [] {
                                    return messages[kIn][kText].value() +
                                           messages[kIn][kBinary].value();
                                  });
core::Counter g_messages_sent("weir_ws_messages_sent_total",
                              "WebSocket messages sent (text and binary)", "", [] {
                                return messages[kOut][kText].value() +
                                       messages[kOut][kBinary].value();
                              });
core::Counter g_bytes_received("weir_ws_payload_bytes_received_total",
                               "WebSocket message payload bytes received (after inflating)", "",
                               [] {
                                 return payload_bytes[kIn][kText].value() +
                                        payload_bytes[kIn][kBinary].value();
                               });
core::Counter g_bytes_sent("weir_ws_payload_bytes_sent_total",
                           "WebSocket message payload bytes sent (before compressing)", "", [] {
                             return payload_bytes[kOut][kText].value() +
                                    payload_bytes[kOut][kBinary].value();
                           });

}  // namespace

// A shared slice is usually one frame; a batch is a room's frames of one loop iteration. The
// walk reads each header's two to ten bytes (already in cache: they were just encoded or are
// about to be written) and adds per type once for the whole slice.
void count_shared_frames_sent(const char* frames, size_t length, uint32_t count) {
  uint64_t n[kMessageTypes] = {}, bytes[kMessageTypes] = {};
  const auto* p = reinterpret_cast<const unsigned char*>(frames);
  const auto* end = p + length;
  for (uint32_t i = 0; i < count && end - p >= 2; ++i) {
    uint64_t len = p[1] & 0x7f;
    size_t header = 2;
    if (len == 126 && end - p >= 4) {
      len = (uint64_t{p[2]} << 8) | p[3];
      header = 4;
    } else if (len == 127 && end - p >= 10) {
      len = 0;
      for (int b = 2; b < 10; ++b) len = (len << 8) | p[b];
      header = 10;
    }
    int type = message_type(static_cast<Opcode>(p[0] & 0x0f));
    n[type]++;
    bytes[type] += len;
    if (static_cast<uint64_t>(end - p) < header + len) break;
    p += header + len;
  }
  for (int type = 0; type < kMessageTypes; ++type) {
    if (n[type] == 0) continue;
    messages[kOut][type].inc(n[type]);
    payload_bytes[kOut][type].inc(bytes[type]);
  }
}

}  // namespace weir::ws::metrics
