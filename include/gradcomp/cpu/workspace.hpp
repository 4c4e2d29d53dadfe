#pragma once
// cpu::workspace: the scratch memory of exec::par, owned by whoever wants to own it.
//
// The compaction kernels gather each thread's output in a private buffer of a few MB, Top-k
// keeps a sample and its candidates, random-k a membership bitmap. Fresh memory of that size
// comes from mmap, and the kernel zero-fills every page on first touch: on a 1e8-element
// Top-k, page faults took longer than the compaction itself. A workspace keeps the blocks a
// call gave back (up to a byte limit) and lends them to the next call, so repeated calls of
// the same size touch no new pages.
//
// By default every call uses default_workspace(), one per process (256 MiB at most kept).
// A caller that wants to own the memory passes its own:
//
//   gc::cpu::workspace ws;                                  // empty: allocates on first use
//   const auto par = gc::exec::par.with_workspace(ws);
//   gc::compress(par, gc::top_k{.k = k}, g, msg);           // takes and gives back blocks of ws
//   std::size_t need = ws.high_water_bytes();               // what one call held at most
//   ws.release();                                           // frees everything it keeps
//
// This is the CPU side of CUB's two-phase temporary storage: the sizes a call needs depend
// on the data (how many entries a threshold keeps), so instead of a size query up front the
// workspace reports its high-water mark after a call, reserve() pre-sizes it, and a limit
// bounds what it keeps. A workspace is thread-safe (one call spreads over the worker
// threads, and several calls may share one); blocks are plain malloc memory.
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <mutex>
#include <new>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "policy.hpp"
#include "tuning.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI {

class workspace {
 public:
  /// A block of memory lent to a kernel.
  struct block {
    void* data = nullptr;
    std::size_t bytes = 0;
  };

  /// A workspace that keeps at most max_cached_bytes between calls (0: keeps nothing, every
  /// call allocates and frees).
  explicit workspace(std::size_t max_cached_bytes = tuning::workspace::max_cached_bytes)
      : max_cached_(max_cached_bytes) {
    cached_.reserve(tuning::workspace::max_blocks);
  }
  workspace(const workspace&) = delete;
  workspace& operator=(const workspace&) = delete;
  /// Frees what it keeps. Every block it lent must have been given back (kernels give back
  /// everything before they return).
  ~workspace() { release(); }

  /// Bytes held now and free for the next call.
  std::size_t cached_bytes() const {
    const std::lock_guard lock(mutex_);
    return cached_bytes_;
  }
  /// Bytes lent out now (non-zero only while a call runs).
  std::size_t lent_bytes() const {
    const std::lock_guard lock(mutex_);
    return lent_bytes_;
  }
  /// The most bytes lent out at once since construction or the last reset_high_water().
  std::size_t high_water_bytes() const {
    const std::lock_guard lock(mutex_);
    return high_water_;
  }
  void reset_high_water() {
    const std::lock_guard lock(mutex_);
    high_water_ = lent_bytes_;
  }
  std::size_t max_cached_bytes() const {
    const std::lock_guard lock(mutex_);
    return max_cached_;
  }
  /// Changes the limit, freeing cached blocks (largest first) until they fit under it.
  void set_max_cached_bytes(std::size_t bytes) {
    std::vector<block> freed;
    {
      const std::lock_guard lock(mutex_);
      max_cached_ = bytes;
      std::sort(cached_.begin(), cached_.end(), [](const block& x, const block& y) { return x.bytes < y.bytes; });
      while (cached_bytes_ > max_cached_) {
        cached_bytes_ -= cached_.back().bytes;
        freed.push_back(cached_.back());
        cached_.pop_back();
      }
    }
    for (const block& b : freed) std::free(b.data);
  }

  /// Allocates a block of `bytes` now and keeps it (if the limit allows), so that a call
  /// needing that much finds it ready. Throws std::bad_alloc if the allocation fails.
  void reserve(std::size_t bytes) { give_back(take(bytes, false)); }

  /// Frees every block it keeps (blocks lent out are freed when given back).
  void release() noexcept {
    std::vector<block> freed;
    {
      const std::lock_guard lock(mutex_);
      freed.swap(cached_);
      cached_.reserve(tuning::workspace::max_blocks);  // may throw: then nothing is kept
      cached_bytes_ = 0;
    }
    for (const block& b : freed) std::free(b.data);
  }

  /// For kernels: a block of at least `bytes`, the smallest cached one that is big enough,
  /// else a new one. With largest = true, the largest cached one instead: for buffers that
  /// grow (one that grew to some size in a call will grow to about it in the next).
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
        lend(b.bytes);
        return b;
      }
    }
    void* p = std::malloc(std::max<std::size_t>(bytes, 1));
    if (p == nullptr) throw std::bad_alloc();
    const std::lock_guard lock(mutex_);
    lend(bytes);
    return block{p, bytes};
  }

  /// For kernels: gives a block back; cached if there is room (evicting smaller ones), else
  /// freed.
  void give_back(block b) noexcept {
    if (b.data == nullptr) return;
    std::vector<block> evicted;  // freed outside the lock
    {
      const std::lock_guard lock(mutex_);
      lent_bytes_ -= b.bytes;
      if (b.bytes >= tuning::workspace::min_kept_bytes && b.bytes <= max_cached_) {
        std::sort(cached_.begin(), cached_.end(), [](const block& x, const block& y) { return x.bytes < y.bytes; });
        std::size_t n = 0;
        std::size_t room = cached_bytes_;
        while (room + b.bytes > max_cached_ && n < cached_.size() && cached_[n].bytes <= b.bytes) room -= cached_[n++].bytes;
        if (room + b.bytes <= max_cached_ && cached_.size() - n < cached_.capacity()) {
          // Within the reserved capacity, so nothing below throws.
          for (std::size_t j = 0; j < n; ++j) std::free(cached_[j].data);
          cached_.erase(cached_.begin(), cached_.begin() + static_cast<std::ptrdiff_t>(n));
          cached_.push_back(b);
          cached_bytes_ = room + b.bytes;
          return;
        }
      }
    }
    std::free(b.data);
  }

 private:
  void lend(std::size_t bytes) noexcept {
    lent_bytes_ += bytes;
    high_water_ = std::max(high_water_, lent_bytes_);
  }

  mutable std::mutex mutex_;
  std::vector<block> cached_;
  std::size_t cached_bytes_ = 0;
  std::size_t lent_bytes_ = 0;
  std::size_t high_water_ = 0;
  std::size_t max_cached_;
};

/// The workspace of calls that name none: one per process, keeping up to 256 MiB
/// (tuning::workspace::max_cached_bytes). release() it to give the memory back.
inline workspace& default_workspace() {
  static workspace ws;
  return ws;
}

namespace detail {

/// The workspace a call on `policy` takes its scratch from.
inline workspace& workspace_of(const exec::par_t& policy) noexcept {
  return policy.scratch != nullptr ? *policy.scratch : default_workspace();
}

/// A fixed-size array of a trivially copyable type lent by a workspace, uninitialised.
template <class V>
class pooled_array {
  static_assert(std::is_trivially_copyable_v<V>);

 public:
  pooled_array(workspace& ws, std::size_t n)
      : ws_(&ws), block_(ws.take(std::max<std::size_t>(n, 1) * sizeof(V), false)), size_(n) {}
  pooled_array(pooled_array&& other) noexcept
      : ws_(other.ws_), block_(std::exchange(other.block_, {})), size_(std::exchange(other.size_, 0)) {}
  pooled_array& operator=(pooled_array&&) = delete;
  ~pooled_array() { ws_->give_back(block_); }

  V* data() noexcept { return static_cast<V*>(block_.data); }
  const V* data() const noexcept { return static_cast<const V*>(block_.data); }
  std::size_t size() const noexcept { return size_; }
  /// Shortens the array (its storage stays).
  void shrink(std::size_t n) noexcept { size_ = std::min(size_, n); }
  std::span<V> span() noexcept { return {data(), size_}; }
  std::span<const V> span() const noexcept { return {data(), size_}; }
  V& operator[](std::size_t i) noexcept { return data()[i]; }
  const V& operator[](std::size_t i) const noexcept { return data()[i]; }

 private:
  workspace* ws_;
  workspace::block block_;
  std::size_t size_;
};

/// A growable array of a trivially copyable type that, unlike std::vector, never
/// value-initialises what it hands out (every slot is written right after), and takes its
/// memory from a workspace (so a call like the last one touches no new pages).
template <class V>
class growable_buffer {
  static_assert(std::is_trivially_copyable_v<V>);

 public:
  explicit growable_buffer(workspace& ws) noexcept : ws_(&ws) {}
  growable_buffer(const growable_buffer&) = delete;
  growable_buffer& operator=(const growable_buffer&) = delete;
  ~growable_buffer() { ws_->give_back(block_); }

  std::size_t size() const noexcept { return size_; }
  const V* data() const noexcept { return static_cast<const V*>(block_.data); }

  /// Room for n more elements, uninitialised; returns where they go.
  V* extend(std::size_t n) {
    if (n > block_.bytes / sizeof(V) - size_) grow(size_ + n);
    V* slot = static_cast<V*>(block_.data) + size_;
    size_ += n;
    return slot;
  }

 private:
  void grow(std::size_t needed) {
    const std::size_t capacity = std::max<std::size_t>({needed, 2 * (block_.bytes / sizeof(V)), 4096});
    if (capacity > std::numeric_limits<std::size_t>::max() / sizeof(V)) throw std::bad_alloc();
    const workspace::block bigger = ws_->take(capacity * sizeof(V), true);
    if (size_ > 0) std::memcpy(bigger.data, block_.data, size_ * sizeof(V));
    ws_->give_back(block_);
    block_ = bigger;
  }

  workspace* ws_;
  workspace::block block_{};
  std::size_t size_ = 0;
};

}  // namespace detail

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI
