// server/pages.h — the web pages weir serves itself: the chat page at /, the live dashboard at
// /dashboard, their scripts and style under /static/, and the JSON the dashboard polls at
// /api/stats. The files are compiled into the binary (server/web_assets.h).
//
// Thread-safety: serve_page runs on any reactor thread at once; it reads only immutable assets
// and the metrics registry (which locks itself).
#pragma once

#include "ws/http_connection.h"

namespace weir::server {

// Answers the request when its path is one of the pages' routes; false (nothing answered)
// otherwise.
bool serve_page(const ws::HttpRequest& request, ws::HttpReply& reply);

// The /api/stats body: the dashboard's current counters and gauges, summed over threads.
std::string render_stats_json();

}  // namespace weir::server
