// tests/buffer_test.cc — SharedBuffer refcounting and pooling, BufferChain coalescing and
// partial consumption, ByteBuffer regions.
#include "core/buffer.h"

#include <gtest/gtest.h>
#include <sys/uio.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace weir::core {
namespace {

std::string pattern(size_t len, char seed) {
  std::string s(len, '\0');
  for (size_t i = 0; i < len; ++i) s[i] = static_cast<char>(seed + i % 23);
  return s;
}

// Concatenates what writev() would send for the whole chain.
std::string gather(const BufferChain& chain) {
  std::vector<struct iovec> iov(chain.slices() + 1);
  int n = chain.fill_iovecs(iov.data(), static_cast<int>(iov.size()));
  std::string out;
  for (int i = 0; i < n; ++i) out.append(static_cast<const char*>(iov[i].iov_base), iov[i].iov_len);
  return out;
}

// ---- SharedBuffer ----

TEST(SharedBuffer, CopyOfHoldsTheBytes) {
  SharedBuffer b = SharedBuffer::copy_of("hello");
  EXPECT_EQ(b.view(), "hello");
  EXPECT_EQ(b.size(), 5u);
  EXPECT_GE(b.capacity(), 5u);
  EXPECT_TRUE(b.unique());
}

TEST(SharedBuffer, DefaultHandleIsEmpty) {
  SharedBuffer b;
  EXPECT_FALSE(b);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_EQ(b.capacity(), 0u);
  EXPECT_EQ(b.use_count(), 0u);
  EXPECT_FALSE(b.unique());
}

TEST(SharedBuffer, CopiesShareOneBlockAndCountReferences) {
  SharedBuffer a = SharedBuffer::copy_of("abc");
  {
    SharedBuffer b = a;
    SharedBuffer c(b);
    EXPECT_EQ(a.use_count(), 3u);
    EXPECT_EQ(b.data(), a.data());
    EXPECT_EQ(c.data(), a.data());
    EXPECT_FALSE(a.unique());
  }
  EXPECT_EQ(a.use_count(), 1u);
  EXPECT_TRUE(a.unique());
}

TEST(SharedBuffer, MoveTransfersTheReferenceWithoutCounting) {
  SharedBuffer a = SharedBuffer::copy_of("abc");
  const char* data = a.data();
  SharedBuffer b = std::move(a);
  EXPECT_FALSE(a);  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_EQ(b.use_count(), 1u);
  EXPECT_EQ(b.data(), data);
  SharedBuffer c;
  c = std::move(b);
  EXPECT_FALSE(b);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(c.use_count(), 1u);
  EXPECT_EQ(c.view(), "abc");
}

TEST(SharedBuffer, AssignmentReleasesThePreviousBlock) {
  size_t start = shared_buffer_bytes_in_use();
  SharedBuffer a = SharedBuffer::copy_of("first");
  SharedBuffer b = SharedBuffer::copy_of("second");
  size_t both = shared_buffer_bytes_in_use();
  a = b;  // a's block is freed
  EXPECT_LT(shared_buffer_bytes_in_use(), both);
  EXPECT_EQ(b.use_count(), 2u);
  SharedBuffer& alias = a;
  a = alias;  // self-assignment keeps the count
  EXPECT_EQ(b.use_count(), 2u);
  SharedBuffer c = b;
  a = std::move(c);  // same block moved over a handle to it: one reference dropped
  EXPECT_EQ(b.use_count(), 2u);
  a = SharedBuffer();
  b = SharedBuffer();
  EXPECT_EQ(shared_buffer_bytes_in_use(), start);
}

TEST(SharedBuffer, BytesInUseReturnsToStartWhenLastHandleDrops) {
  size_t start = shared_buffer_bytes_in_use();
  {
    SharedBuffer a = SharedBuffer::allocate(1000);
    EXPECT_GE(shared_buffer_bytes_in_use(), start + 1000);
    SharedBuffer b = a;
    a = SharedBuffer();
    EXPECT_GE(shared_buffer_bytes_in_use(), start + 1000);  // b still holds it
  }
  EXPECT_EQ(shared_buffer_bytes_in_use(), start);
}

TEST(SharedBuffer, LargeUnpooledBlockIsCountedAndFreed) {
  size_t start = shared_buffer_bytes_in_use();
  {
    SharedBuffer big = SharedBuffer::allocate(1 << 20);
    EXPECT_GE(big.capacity(), size_t{1} << 20);
    EXPECT_GE(shared_buffer_bytes_in_use(), start + (1 << 20));
  }
  EXPECT_EQ(shared_buffer_bytes_in_use(), start);
}

TEST(SharedBuffer, AppendWritesAfterTheCurrentSize) {
  SharedBuffer b = SharedBuffer::allocate(16);
  b.append("ab", 2);
  b.append("cd", 2);
  EXPECT_EQ(b.view(), "abcd");
  std::memcpy(b.mutable_data() + 4, "ef", 2);
  b.set_size(6);
  EXPECT_EQ(b.view(), "abcdef");
}

TEST(SharedBuffer, FreedBlockIsReusedFromThePoolOfItsSizeClass) {
  const void* first;
  {
    SharedBuffer a = SharedBuffer::allocate(100);
    first = a.data();
  }
  SharedBuffer b = SharedBuffer::allocate(120);  // same size class
  EXPECT_EQ(static_cast<const void*>(b.data()), first);
  EXPECT_EQ(b.size(), 0u);
  EXPECT_TRUE(b.unique());
}

TEST(SharedBuffer, BlockFreedOnAnotherThreadJoinsThatThreadsPool) {
  SharedBuffer a = SharedBuffer::allocate(3000);
  const void* block = a.data();
  bool reused = false;
  std::thread t([&] {
    a = SharedBuffer();  // last reference dropped here
    SharedBuffer b = SharedBuffer::allocate(3000);
    reused = static_cast<const void*>(b.data()) == block;
  });
  t.join();
  EXPECT_TRUE(reused);
}

TEST(SharedBuffer, ConcurrentCopiesAndDropsFreeTheBlockExactlyOnce) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 20000;
  size_t start = shared_buffer_bytes_in_use();
  std::string payload = pattern(700, 'a');
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<int> corrupt{0};
  std::vector<std::thread> threads;
  {
    SharedBuffer origin = SharedBuffer::copy_of(payload);
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, mine = origin] {  // each thread owns one reference
        ready++;
        while (!go.load()) std::this_thread::yield();
        std::vector<SharedBuffer> held;
        for (int i = 0; i < kRounds; ++i) {
          held.push_back(mine);
          if (held.size() == 8) {
            if (held.back().view() != payload) corrupt++;
            held.clear();
          }
        }
      });
    }
    while (ready.load() < kThreads) std::this_thread::yield();
    EXPECT_EQ(origin.use_count(), static_cast<uint32_t>(kThreads + 1));
  }  // the main thread's reference goes first; whichever worker finishes last frees the block
  go = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(corrupt.load(), 0);
  EXPECT_EQ(shared_buffer_bytes_in_use(), start);
}

// A handle released while a thread's thread_local objects are being destroyed (a cached frame,
// a thread-owned server object) must not touch the thread's already-destroyed block pool.
// The failure mode is a use-after-free, visible under -fsanitize=address.
TEST(SharedBuffer, HandleReleasedDuringThreadTeardownIsFreedSafely) {
  struct Holder {
    SharedBuffer buffer;
  };
  size_t start = shared_buffer_bytes_in_use();
  std::thread t([] {
    static thread_local Holder holder;  // constructed before this thread's pool...
    holder.buffer = SharedBuffer();
    { SharedBuffer warm = SharedBuffer::allocate(100); }  // ...which now owns a free list
    holder.buffer = SharedBuffer::allocate(100);          // released after the pool is gone
  });
  t.join();
  EXPECT_EQ(shared_buffer_bytes_in_use(), start);
}

// ---- BufferChain ----

TEST(BufferChain, AppendCopyCoalescesSmallWritesIntoOneSlice) {
  BufferChain chain;
  std::string expected;
  for (int i = 0; i < 16; ++i) {
    std::string frame = pattern(34, static_cast<char>('A' + i));
    chain.append_copy(frame.data(), frame.size());
    expected += frame;
  }
  EXPECT_EQ(chain.slices(), 1u);
  EXPECT_EQ(chain.bytes(), 16u * 34);
  struct iovec iov[4];
  ASSERT_EQ(chain.fill_iovecs(iov, 4), 1);
  EXPECT_EQ(iov[0].iov_len, 16u * 34);
  EXPECT_EQ(std::string(static_cast<char*>(iov[0].iov_base), iov[0].iov_len), expected);
}

TEST(BufferChain, AppendCopyOfZeroBytesAddsNothing) {
  BufferChain chain;
  chain.append_copy("x", 0);
  EXPECT_TRUE(chain.empty());
  EXPECT_EQ(chain.slices(), 0u);
}

TEST(BufferChain, AppendCopyStartsANewBlockWhenTheTailIsFull) {
  BufferChain chain;
  std::string expected;
  std::string chunk = pattern(1000, 'a');
  while (chain.slices() < 2) {
    chain.append_copy(chunk.data(), chunk.size());
    expected += chunk;
  }
  EXPECT_GE(chain.bytes(), BufferChain::kTailBlockSize);
  EXPECT_EQ(gather(chain), expected);
}

TEST(BufferChain, AppendCopyLargerThanATailBlockKeepsItWhole) {
  BufferChain chain;
  std::string big = pattern(BufferChain::kTailBlockSize * 3 + 5, 'q');
  chain.append_copy(big.data(), big.size());
  EXPECT_EQ(chain.slices(), 1u);
  EXPECT_EQ(gather(chain), big);
}

TEST(BufferChain, AppendSharedQueuesTheBlockByReference) {
  SharedBuffer block = SharedBuffer::copy_of(pattern(4000, 'm'));
  BufferChain a, b, c;
  a.append_shared(block);
  b.append_shared(block);
  c.append_shared(block, 100, 2000);
  EXPECT_EQ(block.use_count(), 4u);
  struct iovec iov[2];
  ASSERT_EQ(c.fill_iovecs(iov, 2), 1);
  EXPECT_EQ(iov[0].iov_base, block.data() + 100);  // no copy: points into the shared block
  EXPECT_EQ(iov[0].iov_len, 2000u);
  a.consume(a.bytes());
  EXPECT_EQ(block.use_count(), 3u);
  b.clear();
  EXPECT_EQ(block.use_count(), 2u);
  c.consume(1999);
  EXPECT_EQ(block.use_count(), 2u);  // one byte still queued
  c.consume(1);
  EXPECT_EQ(block.use_count(), 1u);
}

TEST(BufferChain, AppendSharedCopiesASmallSliceIntoThePrivateTail) {
  BufferChain chain;
  chain.append_copy("head", 4);
  SharedBuffer small = SharedBuffer::copy_of(pattern(34, 's'));
  chain.append_shared(small);
  EXPECT_EQ(chain.slices(), 1u);     // coalesced, one iovec
  EXPECT_EQ(small.use_count(), 1u);  // not referenced
  EXPECT_EQ(gather(chain), "head" + pattern(34, 's'));
}

TEST(BufferChain, AppendSharedWithoutAPrivateTailReferencesEvenSmallSlices) {
  BufferChain chain;
  SharedBuffer small = SharedBuffer::copy_of("tiny");
  SharedBuffer other = small;
  chain.append_shared(small);
  EXPECT_EQ(chain.slices(), 1u);
  EXPECT_EQ(small.use_count(), 3u);
}

TEST(BufferChain, NeverWritesIntoABlockSharedWithAnotherChain) {
  SharedBuffer block = SharedBuffer::allocate(4000);
  std::string body = pattern(1000, 'x');
  block.append(body.data(), body.size());
  BufferChain a, b;
  a.append_shared(block);
  b.append_shared(block);
  block = SharedBuffer();  // only the two chains hold it now
  a.append_copy("tail-a", 6);
  b.append_copy("tail-b", 6);
  EXPECT_EQ(gather(a), body + "tail-a");
  EXPECT_EQ(gather(b), body + "tail-b");
  EXPECT_EQ(a.slices(), 2u);
}

TEST(BufferChain, BlockSharedAmongManyChainsIsFreedWhenTheLastDrains) {
  size_t start = shared_buffer_bytes_in_use();
  std::vector<BufferChain> chains(100);
  {
    SharedBuffer block = SharedBuffer::copy_of(pattern(2048, 'r'));
    for (auto& chain : chains) chain.append_shared(block);
    EXPECT_EQ(block.use_count(), 101u);
  }
  for (size_t i = 0; i + 1 < chains.size(); ++i) chains[i].consume(2048);
  EXPECT_GT(shared_buffer_bytes_in_use(), start);
  chains.back().consume(1000);
  EXPECT_EQ(gather(chains.back()), pattern(2048, 'r').substr(1000));
  chains.back().consume(1048);
  EXPECT_EQ(shared_buffer_bytes_in_use(), start);
}

// Several kinds of slices: coalesced copies, a shared block, a copy after it, a sub-slice.
BufferChain mixed_chain(std::string* expected, SharedBuffer* keep_a, SharedBuffer* keep_b) {
  BufferChain chain;
  for (int i = 0; i < 3; ++i) {
    std::string s = pattern(34, static_cast<char>('a' + i));
    chain.append_copy(s.data(), s.size());
    *expected += s;
  }
  *keep_a = SharedBuffer::copy_of(pattern(1000, 'K'));
  chain.append_shared(*keep_a);
  *expected += keep_a->view();
  chain.append_copy("0123456789", 10);
  *expected += "0123456789";
  *keep_b = SharedBuffer::copy_of(pattern(900, 'Z'));
  chain.append_shared(*keep_b, 100, 600);
  *expected += keep_b->view().substr(100, 600);
  return chain;
}

TEST(BufferChain, PartialConsumeAtEveryOffsetLeavesExactlyTheRest) {
  std::string expected;
  SharedBuffer a, b;
  const BufferChain original = mixed_chain(&expected, &a, &b);
  ASSERT_EQ(original.bytes(), expected.size());
  ASSERT_EQ(gather(original), expected);
  for (size_t offset = 0; offset <= expected.size(); ++offset) {
    BufferChain chain = original;
    chain.consume(offset);
    ASSERT_EQ(chain.bytes(), expected.size() - offset) << "offset " << offset;
    ASSERT_EQ(gather(chain), expected.substr(offset)) << "offset " << offset;
    ASSERT_EQ(chain.empty(), offset == expected.size());
  }
}

TEST(BufferChain, ConsumeInUnevenStepsLikeShortWrites) {
  std::string expected;
  SharedBuffer a, b;
  const BufferChain original = mixed_chain(&expected, &a, &b);
  for (size_t step : {1, 7, 33, 34, 35, 101, 999, 1000}) {
    BufferChain chain = original;
    size_t sent = 0;
    while (!chain.empty()) {
      size_t n = std::min(step, chain.bytes());
      struct iovec iov[2];
      ASSERT_GE(chain.fill_iovecs(iov, 2), 1);
      // The front iovec always starts at the first unsent byte.
      ASSERT_EQ(*static_cast<char*>(iov[0].iov_base), expected[sent]) << "step " << step;
      chain.consume(n);
      sent += n;
      ASSERT_EQ(gather(chain), expected.substr(sent));
    }
  }
}

TEST(BufferChain, FillIovecsStopsAtMax) {
  std::string expected;
  SharedBuffer a, b;
  BufferChain chain = mixed_chain(&expected, &a, &b);
  ASSERT_EQ(chain.slices(), 4u);
  struct iovec iov[2];
  EXPECT_EQ(chain.fill_iovecs(iov, 2), 2);
  EXPECT_EQ(iov[0].iov_len, 3u * 34);
  EXPECT_EQ(iov[1].iov_len, 1000u);
  EXPECT_EQ(chain.fill_iovecs(iov, 0), 0);
}

TEST(BufferChain, ClearAndConsumeReleaseAllBlocks) {
  size_t start = shared_buffer_bytes_in_use();
  {
    std::string expected;
    SharedBuffer a, b;
    BufferChain chain = mixed_chain(&expected, &a, &b);
    a = b = SharedBuffer();
    BufferChain copy = chain;
    chain.consume(chain.bytes());
    EXPECT_EQ(chain.slices(), 0u);
    EXPECT_GT(shared_buffer_bytes_in_use(), start);  // the copy still references them
    copy.clear();
    EXPECT_TRUE(copy.empty());
  }
  EXPECT_EQ(shared_buffer_bytes_in_use(), start);
}

// ---- ByteBuffer ----

TEST(ByteBuffer, PrepareCommitRetrieveTrackTheReadableRegion) {
  ByteBuffer buf;
  EXPECT_TRUE(buf.empty());
  char* w = buf.prepare(10);
  std::memcpy(w, "0123456789", 10);
  buf.commit(10);
  EXPECT_EQ(buf.readable(), 10u);
  EXPECT_EQ(std::string(buf.peek(), 4), "0123");
  buf.retrieve(4);
  EXPECT_EQ(buf.readable(), 6u);
  EXPECT_EQ(std::string(buf.peek(), buf.readable()), "456789");
  buf.append("ab", 2);
  EXPECT_EQ(std::string(buf.peek(), buf.readable()), "456789ab");
}

TEST(ByteBuffer, PrepareMayCommitLessThanItAskedFor) {
  ByteBuffer buf;
  char* w = buf.prepare(4096);
  std::memcpy(w, "abc", 3);
  buf.commit(3);
  EXPECT_EQ(buf.readable(), 3u);
  EXPECT_GE(buf.capacity(), 4096u);
}

TEST(ByteBuffer, RetrievingEverythingRewindsToTheStart) {
  ByteBuffer buf;
  buf.append("hello", 5);
  const char* start = buf.peek();
  buf.retrieve(5);
  EXPECT_TRUE(buf.empty());
  EXPECT_EQ(buf.peek(), start);
  buf.append("x", 1);
  buf.retrieve_all();
  EXPECT_TRUE(buf.empty());
  EXPECT_EQ(buf.peek(), start);
}

TEST(ByteBuffer, PrepareCompactsConsumedSpaceInsteadOfGrowing) {
  ByteBuffer buf;
  std::string first = pattern(1000, 'a');
  buf.append(first.data(), first.size());
  size_t cap = buf.capacity();
  const char* base = buf.peek();
  buf.retrieve(900);  // 100 live bytes at offset 900
  size_t room = cap - 100;
  char* w = buf.prepare(room);  // fits only once the consumed 900 bytes are reused
  EXPECT_EQ(buf.capacity(), cap);
  EXPECT_EQ(buf.peek(), base);  // moved to the front
  EXPECT_EQ(std::string(buf.peek(), buf.readable()), first.substr(900));
  EXPECT_EQ(w, base + 100);
}

TEST(ByteBuffer, GrowingKeepsTheUnreadBytes) {
  ByteBuffer buf;
  std::string all;
  for (int i = 0; i < 50; ++i) {
    std::string chunk = pattern(997, static_cast<char>('a' + i % 20));
    buf.append(chunk.data(), chunk.size());
    all += chunk;
    buf.retrieve(13);
    all.erase(0, 13);
    ASSERT_EQ(std::string(buf.peek(), buf.readable()), all);
  }
}

TEST(ByteBuffer, ShrinkIfEmptyFreesStorageOnlyWhenNothingIsBuffered) {
  ByteBuffer buf;
  buf.shrink_if_empty();  // no storage yet: harmless
  EXPECT_EQ(buf.capacity(), 0u);
  buf.append("abc", 3);
  buf.shrink_if_empty();
  EXPECT_GT(buf.capacity(), 0u);
  EXPECT_EQ(std::string(buf.peek(), 3), "abc");
  buf.retrieve(3);
  buf.shrink_if_empty();
  EXPECT_EQ(buf.capacity(), 0u);
  buf.append("again", 5);  // usable after shrinking
  EXPECT_EQ(std::string(buf.peek(), buf.readable()), "again");
}

}  // namespace
}  // namespace weir::core
