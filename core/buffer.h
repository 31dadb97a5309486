// core/buffer.h — reference-counted byte blocks and the chained output queue built from them.
//
// A SharedBuffer is a handle to an immutable (once shared) block of bytes with an atomic
// reference count, so one encoded room message can sit in the output queues of thousands
// of connections on several threads without a copy. A BufferChain is a connection's
// outbound queue: a list of (block, offset, length) slices that writev() sends directly.
//
//   BufferChain:  [slice][slice][slice] ...        bytes() = sum of slice lengths
//                   |      |
//                   v      v
//                 block  block (shared with other chains, freed when the last ref drops)
//
// Small writes are copied into the chain's tail block when that block is private to the
// chain (refcount 1) and has room — the "cork" buffer of uWebSockets — so 16 echo frames of
// 34 bytes become one iovec, not 16.
#pragma once

#include <sys/uio.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <string_view>

namespace weir::core {

// Handle to a refcounted block. Copying a handle is thread-safe (atomic refcount); the
// bytes must not be modified once the handle has been copied (shared).
class SharedBuffer {
 public:
  SharedBuffer() = default;
  // Allocates a writable block of at least `capacity` bytes (pooled per thread by size class).
  static SharedBuffer allocate(size_t capacity);
  static SharedBuffer copy_of(std::string_view bytes);

  SharedBuffer(const SharedBuffer& other) noexcept : block_(other.block_) { retain(); }
  SharedBuffer(SharedBuffer&& other) noexcept : block_(other.block_) { other.block_ = nullptr; }
  SharedBuffer& operator=(const SharedBuffer& other) noexcept;
  SharedBuffer& operator=(SharedBuffer&& other) noexcept;
  ~SharedBuffer() { release(); }

  explicit operator bool() const { return block_ != nullptr; }
  const char* data() const { return block_->bytes; }
  size_t size() const { return block_ ? block_->size : 0; }
  size_t capacity() const { return block_ ? block_->capacity : 0; }
  std::string_view view() const { return {data(), size()}; }
  bool unique() const { return block_ && block_->refs.load(std::memory_order_acquire) == 1; }

  // Writing is only legal while the handle is unique (not yet shared).
  char* mutable_data() { return block_->bytes; }
  void set_size(size_t size) { block_->size = static_cast<uint32_t>(size); }
  void append(const char* bytes, size_t len);  // requires size() + len <= capacity()

  uint32_t use_count() const { return block_ ? block_->refs.load(std::memory_order_relaxed) : 0; }

 private:
  struct Block {
    std::atomic<uint32_t> refs;
    uint32_t size;
    uint32_t capacity;
    uint32_t size_class;
    char bytes[];
  };
  void retain() {
    if (block_) block_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  void release();
  static void free_block(Block* block);

  Block* block_ = nullptr;
};

// Bytes allocated for SharedBuffer blocks that are alive (in use, not in a pool), all threads.
size_t shared_buffer_bytes_in_use();

// A connection's outbound byte queue. Not thread-safe: owned by one reactor thread.
class BufferChain {
 public:
  static constexpr size_t kTailBlockSize = 16 * 1024;
  static constexpr size_t kCopyThreshold = 512;  // smaller appends are copied into the tail

  // Copies `len` bytes into the tail block (allocating a new tail when needed).
  void append_copy(const char* bytes, size_t len);
  // Queues a slice of a shared block by reference; small slices are copied instead when that
  // saves an iovec and the bytes fit the private tail.
  void append_shared(const SharedBuffer& buffer, size_t offset, size_t len);
  void append_shared(const SharedBuffer& buffer) { append_shared(buffer, 0, buffer.size()); }

  // Fills up to `max` iovecs from the front; returns how many were filled.
  int fill_iovecs(struct iovec* iov, int max) const;
  // Drops `len` bytes from the front (after the kernel took them).
  void consume(size_t len);
  void clear();

  size_t bytes() const { return bytes_; }
  bool empty() const { return bytes_ == 0; }
  size_t slices() const { return slices_.size(); }

 private:
  struct Slice {
    SharedBuffer buffer;
    uint32_t offset;
    uint32_t length;
  };
  bool tail_has_room(size_t len) const;

  std::deque<Slice> slices_;
  size_t bytes_ = 0;
};

// A growable input buffer with a readable and a writable region (muduo's Buffer):
//
//   +-------------------+------------------+------------------+
//   |  consumed bytes   |  readable bytes  |  writable bytes  |
//   +-------------------+------------------+------------------+
//   0          <=   read_index   <=   write_index   <=   capacity
//
// Used for the bytes of an incomplete frame or request left over after a read; empty
// buffers release their storage so idle connections stay small.
class ByteBuffer {
 public:
  ByteBuffer() = default;
  ByteBuffer(const ByteBuffer&) = delete;
  ByteBuffer& operator=(const ByteBuffer&) = delete;
  ~ByteBuffer() { delete[] data_; }

  char* peek() { return data_ + read_index_; }
  const char* peek() const { return data_ + read_index_; }
  size_t readable() const { return write_index_ - read_index_; }
  bool empty() const { return readable() == 0; }
  size_t capacity() const { return capacity_; }

  void append(const char* bytes, size_t len);
  // Ensures `len` writable bytes at the end; returns where to write them.
  char* prepare(size_t len);
  void commit(size_t len) { write_index_ += len; }
  void retrieve(size_t len);
  void retrieve_all() { read_index_ = write_index_ = 0; }
  // Frees the storage when nothing is buffered.
  void shrink_if_empty();

 private:
  char* data_ = nullptr;
  size_t capacity_ = 0;
  size_t read_index_ = 0;
  size_t write_index_ = 0;
};

}  // namespace weir::core
