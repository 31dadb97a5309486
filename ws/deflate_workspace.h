// Per-thread zlib resources for permessage-deflate (RFC 7692): a byte-counting allocator for
// zlib, the pooled z_streams that messages without context takeover borrow, and the scratch
// buffer the inflater writes into before appending to a message.
//
// Why a pool: without context takeover no state survives a message, so a connection needs a
// z_stream only while one of its messages is in flight. Borrowing one from a per-thread pool
// makes an idle connection cost no zlib memory at all (`--deflate shared`); the streams a
// connection owns for context takeover (`--deflate dedicated`) are created by the workspace
// too, so one counter sees every byte zlib holds on this thread.
//
// Memory per stream (zlib 1.2.13, bytes requested from zalloc, z_stream struct included):
//   deflater: 2^(window_bits+2) + 2^(mem_level+9) + ~5.9 KiB state, all at init
//             (window/memLevel 15/8: 262 KiB, 15/4: 142 KiB, 12/4: 30 KiB, 9/1: 9 KiB)
//   inflater: ~7.1 KiB state at init + the 2^window_bits window on first output
//             (15: 39 KiB, 12: 11 KiB)
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <memory>
#include <vector>

struct z_stream_s;  // zlib's z_stream; kept out of this header so users need not include zlib.h

namespace weir::ws {

// Counts what zlib allocates through it. Counters are relaxed atomics so a metrics scrape may
// read them from another thread while the owning thread allocates.
// Thread-safety: allocate/release from one thread at a time; the getters from any thread.
class ZlibMemoryCounter {
 public:
  // zlib's alloc_func / free_func; `opaque` is the ZlibMemoryCounter*.
  static void* zalloc(void* opaque, unsigned items, unsigned size);
  static void zfree(void* opaque, void* address);

  // Points the stream's zalloc/zfree/opaque at this counter; call before deflateInit2/inflateInit2.
  void install(z_stream_s* stream);
  void* allocate(std::size_t bytes);  // nullptr on failure, like malloc
  void release(void* address);

  std::size_t live_bytes() const { return live_bytes_.load(std::memory_order_relaxed); }
  std::size_t peak_bytes() const { return peak_bytes_.load(std::memory_order_relaxed); }
  std::size_t live_blocks() const { return live_blocks_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::size_t> live_bytes_{0};
  std::atomic<std::size_t> peak_bytes_{0};
  std::atomic<std::size_t> live_blocks_{0};
};

struct DeflateWorkspaceOptions {
  // zlib level for every compressor on this thread. On chat-like 4 KiB JSON, level 1 runs
  // 1.4-2.5x faster than 6 (bench/deflate_bench.cc) for 12% (no context takeover) to 26%
  // (takeover) more output.
  int level = 1;
  // memLevel of every deflater. 4 rather than zlib's 8: a dedicated connection's deflater
  // shrinks from 262 to 142 KiB, and deflateReset (once per message without context takeover)
  // clears a 4 KiB hash table instead of 64 KiB; output grows by ~1% on 4 KiB messages.
  int mem_level = 4;
  // Idle pooled inflaters kept (~39 KiB each); more are created while many connections are in
  // the middle of a message and freed when they finish.
  std::size_t max_idle_inflaters = 4;
};

// Thread-safety: none; one workspace per reactor thread, outliving every MessageCompressor and
// MessageDecompressor created with it (they keep a pointer). memory() may be read anywhere.
class DeflateWorkspace {
 public:
  static constexpr std::size_t kScratchBytes = 32 * 1024;  // also holds a 32 KiB LZ77 window
  static constexpr int kPooledInflaterWindowBits = 15;     // inflates any peer window

  explicit DeflateWorkspace(const DeflateWorkspaceOptions& options = {});
  ~DeflateWorkspace();
  DeflateWorkspace(const DeflateWorkspace&) = delete;
  DeflateWorkspace& operator=(const DeflateWorkspace&) = delete;

  const DeflateWorkspaceOptions& options() const { return options_; }
  const ZlibMemoryCounter& memory() const { return memory_; }
  std::size_t idle_inflaters() const { return idle_inflaters_.size(); }

  // The rest is the codec's plumbing (ws/deflate_codec.cc); each returns nullptr when zlib
  // cannot allocate.

  // A freshly reset raw deflater with this window (9..15), owned by the workspace. The caller
  // uses it for one whole message and deflateReset()s it before returning to the event loop.
  z_stream_s* shared_deflater(int window_bits);
  // A reset raw inflater with a 15-bit window, lent until release_inflater().
  z_stream_s* acquire_inflater();
  void release_inflater(z_stream_s* stream);

  // Streams a connection owns (context takeover); counted by memory() like the pooled ones.
  z_stream_s* new_deflater(int window_bits);
  z_stream_s* new_inflater(int window_bits);
  void delete_deflater(z_stream_s* stream);
  void delete_inflater(z_stream_s* stream);

  unsigned char* scratch() { return scratch_.get(); }

 private:
  DeflateWorkspaceOptions options_;
  ZlibMemoryCounter memory_;
  std::array<z_stream_s*, 16> shared_deflaters_{};  // indexed by window bits
  std::vector<z_stream_s*> idle_inflaters_;
  std::size_t lent_inflaters_ = 0;
  std::unique_ptr<unsigned char[]> scratch_;
};

}  // namespace weir::ws
