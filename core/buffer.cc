// core/buffer.cc — SharedBuffer pooling, BufferChain and ByteBuffer.
#include "core/buffer.h"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <new>
#include <vector>

namespace weir::core {
namespace {

// Block sizes (header included) served from per-thread free lists. Larger blocks go to malloc.
constexpr size_t kClassBytes[] = {256, 1024, 4096, 16384 + 64, 65536 + 64};
constexpr uint32_t kNumClasses = sizeof(kClassBytes) / sizeof(kClassBytes[0]);
constexpr uint32_t kUnpooled = kNumClasses;
constexpr size_t kMaxPooledBytesPerClass = 2 * 1024 * 1024;

std::atomic<size_t> g_bytes_in_use{0};

// Set when this thread's pool is destroyed. Handles released later in the thread's teardown
// (held by other thread_local objects, or by statics on the main thread at exit) must not
// touch the destroyed free lists; their blocks go straight back to malloc.
thread_local bool t_pool_gone = false;

// A per-thread free list per size class: no locks, no sharing. A block freed on another
// thread than the one that allocated it simply joins that thread's list (as tcache does).
struct ThreadPool {
  std::vector<void*> free[kNumClasses];
  ~ThreadPool() {
    t_pool_gone = true;
    for (auto& list : free)
      for (void* p : list) std::free(p);
  }
};
thread_local ThreadPool t_pool;

// The calling thread's free list for `cls`, or nullptr (unpooled size, pool torn down).
std::vector<void*>* free_list(uint32_t cls) {
  if (cls == kUnpooled || t_pool_gone) return nullptr;
  return &t_pool.free[cls];
}

uint32_t class_for(size_t total) {
  for (uint32_t i = 0; i < kNumClasses; ++i)
    if (total <= kClassBytes[i]) return i;
  return kUnpooled;
}

}  // namespace

SharedBuffer SharedBuffer::allocate(size_t capacity) {
  size_t total = sizeof(Block) + capacity;
  uint32_t cls = class_for(total);
  void* mem = nullptr;
  if (cls != kUnpooled) total = kClassBytes[cls];
  if (auto* list = free_list(cls); list && !list->empty()) {
    mem = list->back();
    list->pop_back();
  }
  if (!mem) mem = std::malloc(total);
  if (!mem) throw std::bad_alloc();
  g_bytes_in_use.fetch_add(total, std::memory_order_relaxed);
  SharedBuffer buffer;
  buffer.block_ = new (mem) Block{{1}, 0, static_cast<uint32_t>(total - sizeof(Block)), cls};
  return buffer;
}

SharedBuffer SharedBuffer::copy_of(std::string_view bytes) {
  SharedBuffer buffer = allocate(bytes.size());
  buffer.append(bytes.data(), bytes.size());
  return buffer;
}

SharedBuffer& SharedBuffer::operator=(const SharedBuffer& other) noexcept {
  if (block_ != other.block_) {
    release();
    block_ = other.block_;
    retain();
  }
  return *this;
}

SharedBuffer& SharedBuffer::operator=(SharedBuffer&& other) noexcept {
  if (this != &other) {
    release();
    block_ = other.block_;
    other.block_ = nullptr;
  }
  return *this;
}

void SharedBuffer::append(const char* bytes, size_t len) {
  assert(block_ && block_->size + len <= block_->capacity);
  std::memcpy(block_->bytes + block_->size, bytes, len);
  block_->size += static_cast<uint32_t>(len);
}

void SharedBuffer::release() {
  if (block_ && block_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) free_block(block_);
  block_ = nullptr;
}

void SharedBuffer::free_block(Block* block) {
  size_t total = sizeof(Block) + block->capacity;
  uint32_t cls = block->size_class;
  block->~Block();
  g_bytes_in_use.fetch_sub(total, std::memory_order_relaxed);
  if (auto* list = free_list(cls);
      list && list->size() * kClassBytes[cls] < kMaxPooledBytesPerClass) {
    list->push_back(block);
    return;
  }
  std::free(block);
}

size_t shared_buffer_bytes_in_use() {
  return g_bytes_in_use.load(std::memory_order_relaxed);
}

// ---- BufferChain ----

bool BufferChain::tail_has_room(size_t len) const {
  if (slices_.empty()) return false;
  const Slice& tail = slices_.back();
  // Only a private block whose end is the slice's end can grow in place.
  return tail.buffer.unique() && tail.offset + tail.length == tail.buffer.size() &&
         tail.buffer.capacity() - tail.buffer.size() >= len;
}

void BufferChain::append_copy(const char* bytes, size_t len) {
  if (len == 0) return;
  if (!tail_has_room(len)) {
    SharedBuffer block = SharedBuffer::allocate(std::max(len, kTailBlockSize));
    slices_.push_back(Slice{std::move(block), 0, 0});
  }
  Slice& tail = slices_.back();
  tail.buffer.append(bytes, len);
  tail.length += static_cast<uint32_t>(len);
  bytes_ += len;
}

void BufferChain::append_shared(const SharedBuffer& buffer, size_t offset, size_t len) {
  if (len == 0) return;
  assert(offset + len <= buffer.size());
  if (len <= kCopyThreshold && tail_has_room(len)) {
    append_copy(buffer.data() + offset, len);
    return;
  }
  slices_.push_back(Slice{buffer, static_cast<uint32_t>(offset), static_cast<uint32_t>(len)});
  bytes_ += len;
}

int BufferChain::fill_iovecs(struct iovec* iov, int max) const {
  int n = 0;
  for (auto it = slices_.begin(); it != slices_.end() && n < max; ++it, ++n) {
    iov[n].iov_base = const_cast<char*>(it->buffer.data() + it->offset);
    iov[n].iov_len = it->length;
  }
  return n;
}

void BufferChain::consume(size_t len) {
  assert(len <= bytes_);
  bytes_ -= len;
  while (len > 0) {
    Slice& head = slices_.front();
    if (len < head.length) {
      head.offset += static_cast<uint32_t>(len);
      head.length -= static_cast<uint32_t>(len);
      return;
    }
    len -= head.length;
    slices_.pop_front();
  }
}

void BufferChain::clear() {
  slices_.clear();
  bytes_ = 0;
}

// ---- ByteBuffer ----

char* ByteBuffer::prepare(size_t len) {
  if (capacity_ - write_index_ >= len) return data_ + write_index_;
  size_t live = readable();
  if (read_index_ > 0 && capacity_ - live >= len) {
    std::memmove(data_, data_ + read_index_, live);  // compact: reuse consumed space
  } else {
    size_t cap = std::max({capacity_ * 2, live + len, size_t{1024}});
    char* bigger = new char[cap];
    if (live) std::memcpy(bigger, data_ + read_index_, live);
    delete[] data_;
    data_ = bigger;
    capacity_ = cap;
  }
  read_index_ = 0;
  write_index_ = live;
  return data_ + write_index_;
}

void ByteBuffer::append(const char* bytes, size_t len) {
  if (len == 0) return;
  std::memcpy(prepare(len), bytes, len);
  commit(len);
}

void ByteBuffer::retrieve(size_t len) {
  assert(len <= readable());
  read_index_ += len;
  if (read_index_ == write_index_) read_index_ = write_index_ = 0;
}

void ByteBuffer::shrink_if_empty() {
  if (!empty() || !data_) return;
  delete[] data_;
  data_ = nullptr;
  capacity_ = read_index_ = write_index_ = 0;
}

}  // namespace weir::core
