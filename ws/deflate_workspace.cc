// Per-thread zlib resources: counting allocator, pooled streams, scratch buffer.
#include "ws/deflate_workspace.h"

#include <zlib.h>

#include <cassert>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace weir::ws {
namespace {

// zfree() gets no size, so every block carries its size in front; one max_align_t keeps the
// address handed to zlib aligned like malloc's.
constexpr std::size_t kHeaderBytes = alignof(std::max_align_t);

}  // namespace

void* ZlibMemoryCounter::zalloc(void* opaque, unsigned items, unsigned size) {
  if (size != 0 && items > SIZE_MAX / size) return nullptr;
  return static_cast<ZlibMemoryCounter*>(opaque)->allocate(std::size_t{items} * size);
}

void ZlibMemoryCounter::zfree(void* opaque, void* address) {
  static_cast<ZlibMemoryCounter*>(opaque)->release(address);
}

void ZlibMemoryCounter::install(z_stream_s* stream) {
  stream->zalloc = &ZlibMemoryCounter::zalloc;
  stream->zfree = &ZlibMemoryCounter::zfree;
  stream->opaque = this;
}

void* ZlibMemoryCounter::allocate(std::size_t bytes) {
  if (bytes > SIZE_MAX - kHeaderBytes) return nullptr;
  auto* block = static_cast<unsigned char*>(std::malloc(bytes + kHeaderBytes));
  if (block == nullptr) return nullptr;
  std::memcpy(block, &bytes, sizeof bytes);
  const std::size_t live = live_bytes_.fetch_add(bytes, std::memory_order_relaxed) + bytes;
  std::size_t peak = peak_bytes_.load(std::memory_order_relaxed);
  while (live > peak && !peak_bytes_.compare_exchange_weak(peak, live, std::memory_order_relaxed)) {
  }
  live_blocks_.fetch_add(1, std::memory_order_relaxed);
  return block + kHeaderBytes;
}

void ZlibMemoryCounter::release(void* address) {
  if (address == nullptr) return;
  auto* block = static_cast<unsigned char*>(address) - kHeaderBytes;
  std::size_t bytes;
  std::memcpy(&bytes, block, sizeof bytes);
  live_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  live_blocks_.fetch_sub(1, std::memory_order_relaxed);
  std::free(block);
}

DeflateWorkspace::DeflateWorkspace(const DeflateWorkspaceOptions& options)
    : options_(options), scratch_(new unsigned char[kScratchBytes]) {
  // Reserved up front so returning an inflater to the pool never allocates.
  idle_inflaters_.reserve(options_.max_idle_inflaters);
}

DeflateWorkspace::~DeflateWorkspace() {
  assert(lent_inflaters_ == 0 && "a MessageDecompressor outlived its workspace");
  for (z_stream_s* stream : shared_deflaters_) {
    if (stream != nullptr) delete_deflater(stream);
  }
  for (z_stream_s* stream : idle_inflaters_) delete_inflater(stream);
}

z_stream_s* DeflateWorkspace::shared_deflater(int window_bits) {
  assert(window_bits >= 9 && window_bits <= 15);
  z_stream_s*& slot = shared_deflaters_[window_bits];
  if (slot == nullptr) slot = new_deflater(window_bits);
  return slot;
}

z_stream_s* DeflateWorkspace::acquire_inflater() {
  z_stream_s* stream;
  if (idle_inflaters_.empty()) {
    stream = new_inflater(kPooledInflaterWindowBits);
    if (stream == nullptr) return nullptr;
  } else {
    stream = idle_inflaters_.back();
    idle_inflaters_.pop_back();
  }
  ++lent_inflaters_;
  return stream;
}

void DeflateWorkspace::release_inflater(z_stream_s* stream) {
  assert(lent_inflaters_ > 0);
  --lent_inflaters_;
  if (idle_inflaters_.size() < options_.max_idle_inflaters) {
    inflateReset(stream);  // keeps the window allocation: the next message reuses it
    idle_inflaters_.push_back(stream);
  } else {
    delete_inflater(stream);
  }
}

z_stream_s* DeflateWorkspace::new_deflater(int window_bits) {
  void* memory = memory_.allocate(sizeof(z_stream));
  if (memory == nullptr) return nullptr;
  auto* stream = new (memory) z_stream{};
  memory_.install(stream);
  // Negative window bits select raw DEFLATE, the format RFC 7692 carries (no zlib header).
  if (deflateInit2(stream, options_.level, Z_DEFLATED, -window_bits, options_.mem_level,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    memory_.release(stream);
    return nullptr;
  }
  return stream;
}

z_stream_s* DeflateWorkspace::new_inflater(int window_bits) {
  void* memory = memory_.allocate(sizeof(z_stream));
  if (memory == nullptr) return nullptr;
  auto* stream = new (memory) z_stream{};
  memory_.install(stream);
  if (inflateInit2(stream, -window_bits) != Z_OK) {
    memory_.release(stream);
    return nullptr;
  }
  return stream;
}

void DeflateWorkspace::delete_deflater(z_stream_s* stream) {
  deflateEnd(stream);
  memory_.release(stream);
}

void DeflateWorkspace::delete_inflater(z_stream_s* stream) {
  inflateEnd(stream);
  memory_.release(stream);
}

}  // namespace weir::ws
