// Client-to-server payload masking (RFC 6455 5.3): XOR with a 4-byte key, word-at-a-time.
#pragma once

#include <cstddef>
#include <cstdint>

namespace weir::ws {

// XORs `data` in place with the mask key. `mask_key` holds the four key bytes in wire order
// (memcpy'd straight from the frame header). `phase` is how many payload bytes of this frame
// were already unmasked, so a payload split across reads keeps the key aligned: byte i of
// `data` is XORed with key byte (phase + i) % 4. Masking and unmasking are the same operation.
// Thread-safe: pure function on caller memory.
void apply_mask(char* data, size_t len, uint32_t mask_key, size_t phase);

}  // namespace weir::ws
