// server/web_assets.h — the web pages' files, compiled into the binary.
//
// The table is generated at build time (tools/embed_assets.py, run by the Makefile) from
// server/web/*; nothing is read from disk at run time.
//
// Thread-safety: immutable after static initialisation; read from any thread.
#pragma once

#include <cstddef>
#include <string_view>

namespace weir::server {

struct WebAsset {
  std::string_view name;          // the file's base name in server/web/ ("chat.js")
  std::string_view content_type;  // by extension ("text/javascript; charset=utf-8")
  std::string_view body;
  std::string_view etag;  // strong, quoted: a hash of the body
};

extern const WebAsset kWebAssets[];
extern const size_t kWebAssetCount;

}  // namespace weir::server
