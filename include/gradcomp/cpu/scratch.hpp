#pragma once
// Scratch memory kept between calls.
//
// The compaction kernels gather each thread's output in a private buffer of a few MB. Fresh
// memory of that size comes from mmap, and the kernel zero-fills every page on first touch:
// on a 1e8-element Top-k, page faults took longer than the compaction itself. The pool keeps
// released blocks (up to a byte limit) and hands them out again, so repeated calls of the same
// size touch no new pages. Blocks are plain malloc memory; the pool is shared by all threads
// behind one mutex, taken only when a buffer is created, grows or dies.
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <mutex>
#include <new>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

namespace gradcomp::cpu::detail {

class scratch_pool {
 public:
  /// Blocks below this size are not worth keeping (malloc recycles them well).
  static constexpr std::size_t min_kept_bytes = std::size_t{1} << 16;
  /// At most this many bytes stay cached (a 1e9-element Top-k at 1% needs about 100 MB).
  static constexpr std::size_t max_cached_bytes = std::size_t{1} << 28;

  struct block {
    void* data = nullptr;
    std::size_t bytes = 0;
  };

  static scratch_pool& instance() {
    static scratch_pool pool;
    return pool;
  }

  /// A block of at least `bytes`: the smallest cached one that is big enough, else a new one.
  block acquire(std::size_t bytes) { return take(bytes, false); }

  /// A block of at least `bytes`, preferring the largest cached one: for buffers that grow
  /// (one that grew to some size in a call will grow to about it in the next).
  block acquire_largest(std::size_t bytes) { return take(bytes, true); }

  /// Gives a block back: cached if there is room (evicting smaller ones), else freed.
  void release(block b) noexcept {
    if (b.data == nullptr) return;
    if (b.bytes >= min_kept_bytes && b.bytes <= max_cached_bytes) {
      const std::lock_guard lock(mutex_);
      // Evict the smallest blocks while that makes room and they are smaller than b.
      std::sort(cached_.begin(), cached_.end(), [](const block& x, const block& y) { return x.bytes < y.bytes; });
      std::size_t evicted = 0;
      while (cached_bytes_ + b.bytes > max_cached_bytes && evicted < cached_.size() && cached_[evicted].bytes <= b.bytes) {
        cached_bytes_ -= cached_[evicted].bytes;
        std::free(cached_[evicted++].data);
      }
      cached_.erase(cached_.begin(), cached_.begin() + static_cast<std::ptrdiff_t>(evicted));
      if (cached_bytes_ + b.bytes <= max_cached_bytes && cached_.size() < max_blocks) {
        cached_.push_back(b);  // within the reserved capacity: cannot throw
        cached_bytes_ += b.bytes;
        return;
      }
    }
    std::free(b.data);
  }

  scratch_pool(const scratch_pool&) = delete;
  scratch_pool& operator=(const scratch_pool&) = delete;
  ~scratch_pool() {
    for (const block& b : cached_) std::free(b.data);
  }

 private:
  static constexpr std::size_t max_blocks = 256;

  block take(std::size_t bytes, bool largest) {
    {
      const std::lock_guard lock(mutex_);
      auto pick = cached_.end();
      for (auto it = cached_.begin(); it != cached_.end(); ++it) {
        if (it->bytes < bytes) continue;
        if (pick == cached_.end() || (largest ? it->bytes > pick->bytes : it->bytes < pick->bytes)) pick = it;
      }
      if (pick != cached_.end()) {
        const block b = *pick;
        *pick = cached_.back();
        cached_.pop_back();
        cached_bytes_ -= b.bytes;
        return b;
      }
    }
    void* p = std::malloc(bytes);
    if (p == nullptr) throw std::bad_alloc();
    return block{p, bytes};
  }
  scratch_pool() { cached_.reserve(max_blocks); }

  std::mutex mutex_;
  std::vector<block> cached_;
  std::size_t cached_bytes_ = 0;
};

/// A fixed-size array of a trivially copyable type from the scratch pool, uninitialised.
template <class V>
class pooled_array {
  static_assert(std::is_trivially_copyable_v<V>);

 public:
  explicit pooled_array(std::size_t n) : block_(scratch_pool::instance().acquire(std::max<std::size_t>(n, 1) * sizeof(V))), size_(n) {}
  pooled_array(pooled_array&& other) noexcept : block_(std::exchange(other.block_, {})), size_(std::exchange(other.size_, 0)) {}
  pooled_array& operator=(pooled_array&&) = delete;
  ~pooled_array() { scratch_pool::instance().release(block_); }

  V* data() noexcept { return static_cast<V*>(block_.data); }
  const V* data() const noexcept { return static_cast<const V*>(block_.data); }
  std::size_t size() const noexcept { return size_; }
  /// Shortens the array (its storage stays).
  void shrink(std::size_t n) noexcept { size_ = std::min(size_, n); }
  std::span<V> span() noexcept { return {data(), size_}; }
  std::span<const V> span() const noexcept { return {data(), size_}; }

 private:
  scratch_pool::block block_;
  std::size_t size_;
};

}  // namespace gradcomp::cpu::detail
