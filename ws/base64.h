// Base64 (RFC 4648 section 4, standard alphabet, padded): encoding for Sec-WebSocket-Accept
// and a strict decoder for checking Sec-WebSocket-Key.
#pragma once

#include <string>
#include <string_view>

namespace weir::ws {

std::string base64_encode(std::string_view data);

// Strict: length a multiple of 4, '=' only as trailing padding, no whitespace. Appends the
// decoded bytes to `out` and returns true, or returns false (out then holds partial output).
bool base64_decode(std::string_view text, std::string* out);

}  // namespace weir::ws
