// server/pages.cc — serving the embedded web pages and the dashboard's stats.
#include "server/pages.h"

#include <string>

#include "core/metrics.h"
#include "server/web_assets.h"

namespace weir::server {
namespace {

// The pages load nothing from elsewhere: scripts, styles and the WebSocket stay on this origin.
constexpr std::string_view kPageHeaders =
    "Content-Security-Policy: default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' "
    "data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'\r\n"
    "X-Content-Type-Options: nosniff\r\n"
    "Referrer-Policy: no-referrer\r\n";

// What /api/stats reports: its JSON key, the metric's name and labels.
struct StatSource {
  const char* key;
  const char* metric;
  const char* labels;
};
constexpr StatSource kStats[] = {
    {"connections_open", "weir_connections_open", ""},
    {"connections_handshaking", "weir_connections", "state=\"handshaking\""},
    {"connections_websocket_open", "weir_connections", "state=\"open\""},
    {"connections_closing", "weir_connections", "state=\"closing\""},
    {"connections_above_high_watermark", "weir_connections_above_high_watermark", ""},
    {"ws_sessions_open", "weir_ws_sessions_open", ""},
    {"members", "weir_members", ""},
    {"rooms", "weir_rooms", ""},
    {"room_memberships", "weir_room_memberships", ""},
    {"ws_messages_received_total", "weir_ws_messages_received_total", ""},
    {"ws_messages_sent_total", "weir_ws_messages_sent_total", ""},
    {"ws_messages_in_text_total", "weir_ws_messages_total", "direction=\"in\",type=\"text\""},
    {"ws_messages_in_binary_total", "weir_ws_messages_total", "direction=\"in\",type=\"binary\""},
    {"ws_messages_in_ping_total", "weir_ws_messages_total", "direction=\"in\",type=\"ping\""},
    {"ws_messages_in_pong_total", "weir_ws_messages_total", "direction=\"in\",type=\"pong\""},
    {"ws_messages_in_close_total", "weir_ws_messages_total", "direction=\"in\",type=\"close\""},
    {"ws_messages_out_text_total", "weir_ws_messages_total", "direction=\"out\",type=\"text\""},
    {"ws_messages_out_binary_total", "weir_ws_messages_total", "direction=\"out\",type=\"binary\""},
    {"ws_messages_out_ping_total", "weir_ws_messages_total", "direction=\"out\",type=\"ping\""},
    {"ws_messages_out_pong_total", "weir_ws_messages_total", "direction=\"out\",type=\"pong\""},
    {"ws_messages_out_close_total", "weir_ws_messages_total", "direction=\"out\",type=\"close\""},
    {"ws_payload_bytes_in_text_total", "weir_ws_payload_bytes_total",
     "direction=\"in\",type=\"text\""},
    {"ws_payload_bytes_in_binary_total", "weir_ws_payload_bytes_total",
     "direction=\"in\",type=\"binary\""},
    {"ws_payload_bytes_in_ping_total", "weir_ws_payload_bytes_total",
     "direction=\"in\",type=\"ping\""},
    {"ws_payload_bytes_in_pong_total", "weir_ws_payload_bytes_total",
     "direction=\"in\",type=\"pong\""},
    {"ws_payload_bytes_in_close_total", "weir_ws_payload_bytes_total",
     "direction=\"in\",type=\"close\""},
    {"ws_payload_bytes_out_text_total", "weir_ws_payload_bytes_total",
     "direction=\"out\",type=\"text\""},
    {"ws_payload_bytes_out_binary_total", "weir_ws_payload_bytes_total",
     "direction=\"out\",type=\"binary\""},
    {"ws_payload_bytes_out_ping_total", "weir_ws_payload_bytes_total",
     "direction=\"out\",type=\"ping\""},
    {"ws_payload_bytes_out_pong_total", "weir_ws_payload_bytes_total",
     "direction=\"out\",type=\"pong\""},
    {"ws_payload_bytes_out_close_total", "weir_ws_payload_bytes_total",
     "direction=\"out\",type=\"close\""},
    {"room_messages_total", "weir_room_messages_total", ""},
    {"room_deliveries_total", "weir_room_deliveries_total", ""},
    {"high_watermark_crossings_total", "weir_high_watermark_crossings_total", ""},
    {"buffer_overruns_total", "weir_buffer_overruns_total", ""},
    {"slow_consumer_disconnect_total", "weir_slow_consumer_actions_total", "action=\"disconnect\""},
    {"slow_consumer_skip_total", "weir_slow_consumer_actions_total", "action=\"skip\""},
    {"slow_consumer_lagged_notice_total", "weir_slow_consumer_actions_total",
     "action=\"lagged_notice\""},
    {"slow_consumer_pause_publisher_total", "weir_slow_consumer_actions_total",
     "action=\"pause_publisher\""},
    {"store_up", "weir_store_up", ""},
};

const WebAsset* find_asset(std::string_view name) {
  for (size_t i = 0; i < kWebAssetCount; ++i)
    if (kWebAssets[i].name == name) return &kWebAssets[i];
  return nullptr;
}

// The file a page route names: "/" and "/dashboard" are pages, /static/NAME the other files.
const WebAsset* asset_for_path(std::string_view path) {
  if (path == "/") return find_asset("index.html");
  if (path == "/dashboard") return find_asset("dashboard.html");
  constexpr std::string_view kStatic = "/static/";
  if (path.substr(0, kStatic.size()) == kStatic) return find_asset(path.substr(kStatic.size()));
  return nullptr;
}

// If-None-Match holds our ETag (or "*"): the browser's copy is current. A list of tags and
// W/ prefixes are matched by looking for the quoted tag, which cannot occur by accident.
bool browser_copy_current(const ws::HttpRequest& request, const WebAsset& asset) {
  std::string_view tags = request.header("If-None-Match");
  return tags == "*" || tags.find(asset.etag) != std::string_view::npos;
}

// no-cache: the browser may keep a copy but asks each time (a 304 when unchanged), so a new
// binary's pages show at once.
void serve_asset(const ws::HttpRequest& request, ws::HttpReply& reply, const WebAsset& asset) {
  std::string headers = "ETag: ";
  headers += asset.etag;
  headers += "\r\nCache-Control: no-cache\r\n";
  headers += kPageHeaders;
  if (browser_copy_current(request, asset)) return reply.respond(304, {}, {}, headers);
  reply.respond(200, asset.content_type, asset.body, headers);
}

}  // namespace

std::string render_stats_json() {
  std::string json = "{";
  for (const StatSource& s : kStats) {
    if (json.size() > 1) json += ',';
    json += '"';
    json += s.key;
    json += "\":";
    double value = 0;
    json += core::find_metric_value(s.metric, s.labels, &value)
                ? std::to_string(static_cast<int64_t>(value))
                : "null";
  }
  json += "}\n";
  return json;
}

bool serve_page(const ws::HttpRequest& request, ws::HttpReply& reply) {
  std::string_view path = request.path();
  const WebAsset* asset = asset_for_path(path);
  if (!asset && path != "/api/stats") return false;
  if (request.method() != ws::HttpMethod::kGet && request.method() != ws::HttpMethod::kHead) {
    reply.respond(405, "text/plain", "method not allowed\n", "Allow: GET, HEAD\r\n");
    return true;
  }
  if (asset)
    serve_asset(request, reply, *asset);
  else
    reply.respond(200, "application/json", render_stats_json(), "Cache-Control: no-store\r\n");
  return true;
}

}  // namespace weir::server
