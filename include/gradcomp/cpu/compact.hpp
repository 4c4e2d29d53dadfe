#pragma once
// Ordered stream compaction: the kernels behind hard-threshold, the fused error-feedback
// threshold step and Top-k's candidate pass.
//
// Selection works on detail::magnitude_key (the bit pattern without the sign bit), so one
// integer comparison key >= bound decides, NaN included (its key is above every finite and
// infinite key). Each chunk of the input compacts into a buffer of its thread, and the
// buffers are concatenated in chunk order, so the output indices ascend exactly as in the
// sequential loop, whatever the thread count.
//
// Top-k needs the chunks' outputs before they are concatenated (it filters them on the way
// out), so the gather is split from the concatenation: chunked_sparse holds what each chunk
// produced, collect_sparse gathers and concatenates.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <span>
#include <type_traits>
#include <vector>

#include <tbb/enumerable_thread_specific.h>

#include "../detail/bits.hpp"
#include "../detail/strict_fp.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "scratch.hpp"
#include "segmented.hpp"
#include "simd.hpp"

namespace gradcomp::cpu::detail {

using gradcomp::detail::magnitude_key;
using gradcomp::detail::uint_of;

/// Elements a compaction kernel handles per call; its output buffers hold this many plus
/// one vector of slack (a compress-store writes whole vectors).
inline constexpr std::size_t compact_block = 4096;
inline constexpr std::size_t compact_slack = 64;

/// Compaction output for one block: offsets within the block and values.
template <class T>
struct compact_buffer {
  std::array<uint_of<T>, compact_block + compact_slack> offsets;
  std::array<T, compact_block + compact_slack> values;
};

/// The magnitude-key bound equivalent to !(fabs(double(x)) < lambda) for x of type T:
/// x is kept iff magnitude_key(x) >= bound. For float, this is the key of the smallest float
/// >= lambda (no float lies strictly between a float below lambda and that one).
template <class T>
uint_of<T> threshold_key(double lambda) {
  if constexpr (sizeof(T) == 8) {
    return magnitude_key(lambda);
  } else {
    float t = static_cast<float>(lambda);
    if (static_cast<double>(t) < lambda) t = std::nextafter(t, std::numeric_limits<float>::infinity());
    return magnitude_key(t);
  }
}

/// Writes the offsets and values of the elements of x[0, n) (n <= compact_block) whose
/// magnitude key is >= bound, in order; returns how many.
template <class T>
std::size_t compact_at_least(const T* x, std::size_t n, uint_of<T> bound, compact_buffer<T>& out) {
  std::size_t count = 0;
  std::size_t i = 0;
#if GRADCOMP_CPU_SIMD
  namespace hn = simd::hn;
  const hn::ScalableTag<T> d;
  const hn::RebindToSigned<decltype(d)> di;  // keys < 2^(bits-1): signed compares are exact
  const hn::RebindToUnsigned<decltype(d)> du;
  using S = hn::TFromD<decltype(di)>;
  constexpr std::size_t L = hn::MaxLanes(d);
  const auto magnitude = hn::Set(di, static_cast<S>(~uint_of<T>{0} >> 1));
  const auto below = hn::Set(di, static_cast<S>(bound));
  const auto step = hn::Set(du, static_cast<uint_of<T>>(L));
  auto offset = hn::Iota(du, 0);
  for (; i + L <= n; i += L, offset = hn::Add(offset, step)) {
    const auto v = hn::LoadU(d, x + i);
    const auto key = hn::And(hn::BitCast(di, v), magnitude);
    const auto keep = hn::Not(hn::Lt(key, below));
    if (hn::AllFalse(di, keep)) continue;
    // Compress into a register, then store: compress-to-memory is microcoded on AMD Zen 4/5.
    hn::StoreU(hn::Compress(v, hn::RebindMask(d, keep)), d, out.values.data() + count);
    hn::StoreU(hn::Compress(offset, hn::RebindMask(du, keep)), du, out.offsets.data() + count);
    count += hn::CountTrue(di, keep);
  }
#endif
  for (; i < n; ++i) {
    if (magnitude_key(x[i]) >= bound) {
      out.offsets[count] = static_cast<uint_of<T>>(i);
      out.values[count] = x[i];
      ++count;
    }
  }
  return count;
}

/// The fused error-feedback threshold step on one block (n <= compact_block):
///   p = e + scale * g (two roundings; e + g when unit_scale);
///   p is kept iff magnitude_key(p) >= bound, and its offset and value are written to out;
///   e_new = kept ? p + (-1) * p : p, exactly what the reference's decompress_add(-1) leaves.
/// Returns the number kept. With Final = false the kept entries are only candidates (Top-k
/// decides later which of them are sent), and e_new = p everywhere.
template <class T, bool Final = true>
GRADCOMP_NO_FP_CONTRACT std::size_t feedback_compact_at_least(const T* e, const T* g, T scale, bool unit_scale,
                                                              std::size_t n, uint_of<T> bound, T* e_new,
                                                              compact_buffer<T>& out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t count = 0;
  std::size_t i = 0;
#if GRADCOMP_CPU_SIMD
  namespace hn = simd::hn;
  const hn::ScalableTag<T> d;
  const hn::RebindToSigned<decltype(d)> di;
  const hn::RebindToUnsigned<decltype(d)> du;
  using S = hn::TFromD<decltype(di)>;
  constexpr std::size_t L = hn::MaxLanes(d);
  const auto magnitude = hn::Set(di, static_cast<S>(~uint_of<T>{0} >> 1));
  const auto below = hn::Set(di, static_cast<S>(bound));
  const auto step = hn::Set(du, static_cast<uint_of<T>>(L));
  const auto vscale = hn::Set(d, scale);
  [[maybe_unused]] const auto minus_one = hn::Set(d, T(-1));
  auto offset = hn::Iota(du, 0);
  for (; i + L <= n; i += L, offset = hn::Add(offset, step)) {
    const auto gv = hn::LoadU(d, g + i);
    const auto p = hn::Add(hn::LoadU(d, e + i), unit_scale ? gv : hn::Mul(vscale, gv));
    const auto key = hn::And(hn::BitCast(di, p), magnitude);
    const auto keep = hn::Not(hn::Lt(key, below));
    if (hn::AllFalse(di, keep)) {
      hn::StoreU(p, d, e_new + i);
      continue;
    }
    const auto keep_d = hn::RebindMask(d, keep);
    if constexpr (Final)
      hn::StoreU(hn::IfThenElse(keep_d, hn::Add(p, hn::Mul(minus_one, p)), p), d, e_new + i);
    else
      hn::StoreU(p, d, e_new + i);
    hn::StoreU(hn::Compress(p, keep_d), d, out.values.data() + count);
    hn::StoreU(hn::Compress(offset, hn::RebindMask(du, keep)), du, out.offsets.data() + count);
    count += hn::CountTrue(di, keep);
  }
#endif
  for (; i < n; ++i) {
    const T p = unit_scale ? e[i] + g[i] : e[i] + scale * g[i];
    if (magnitude_key(p) >= bound) {
      out.offsets[count] = static_cast<uint_of<T>>(i);
      out.values[count] = p;
      ++count;
      e_new[i] = Final ? p + T(-1) * p : p;
    } else {
      e_new[i] = p;
    }
  }
  return count;
}

/// A growable array of a trivially copyable type that, unlike std::vector, never
/// value-initialises what it hands out (every slot is written right after), and takes its
/// memory from the scratch pool (so a call like the last one touches no new pages).
template <class V>
class growable_buffer {
  static_assert(std::is_trivially_copyable_v<V>);

 public:
  growable_buffer() = default;
  growable_buffer(const growable_buffer&) = delete;
  growable_buffer& operator=(const growable_buffer&) = delete;
  ~growable_buffer() { scratch_pool::instance().release(block_); }

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
    const scratch_pool::block bigger = scratch_pool::instance().acquire_largest(capacity * sizeof(V));
    if (size_ > 0) std::memcpy(bigger.data, block_.data, size_ * sizeof(V));
    scratch_pool::instance().release(block_);
    block_ = bigger;
  }

  scratch_pool::block block_{};
  std::size_t size_ = 0;
};

/// What one thread's chunks compacted into.
template <class T, class Index>
struct sparse_arena {
  growable_buffer<Index> indices;
  growable_buffer<T> values;
};

/// Where compacted entries go: appends (base + offset, value) pairs to a thread's arena, or
/// (on the calling thread) straight to the output vectors.
template <class T, class Index>
class sparse_sink {
 public:
  explicit sparse_sink(sparse_arena<T, Index>& arena) : arena_(&arena) {}
  sparse_sink(std::vector<Index>& indices, std::vector<T>& values) : indices_(&indices), values_(&values) {}

  void append(std::size_t base, const compact_buffer<T>& buffer, std::size_t count) const {
    if (count == 0) return;
    Index* idx;
    T* val;
    if (arena_ != nullptr) {
      idx = arena_->indices.extend(count);
      val = arena_->values.extend(count);
    } else {
      const std::size_t old = indices_->size();
      indices_->resize(old + count);
      values_->resize(old + count);
      idx = indices_->data() + old;
      val = values_->data() + old;
    }
    for (std::size_t j = 0; j < count; ++j) idx[j] = static_cast<Index>(base + buffer.offsets[j]);
    std::copy_n(buffer.values.data(), count, val);
  }

  /// The last n values appended (n at most what this sink appended so far).
  const T* last_values(std::size_t n) const noexcept {
    return arena_ != nullptr ? arena_->values.data() + (arena_->values.size() - n)
                             : values_->data() + (values_->size() - n);
  }

 private:
  sparse_arena<T, Index>* arena_ = nullptr;
  std::vector<Index>* indices_ = nullptr;
  std::vector<T>* values_ = nullptr;
};

/// The entries each chunk of a compaction produced, kept apart until the caller has seen
/// them: chunk(c) is chunk c's run of (index, value) pairs, in index order.
template <class T, class Index>
class chunked_sparse {
 public:
  struct run {
    const Index* indices;
    const T* values;
    std::size_t count;
  };

  /// Runs kernel(c, sink) for every chunk c in [0, chunks), on the worker threads when
  /// `work` (the input elements) reaches the policy's min_parallel_size. A kernel appends
  /// its chunk's entries to the sink in index order.
  template <class Kernel>
  void gather(const exec::par_t& policy, std::size_t work, std::size_t chunks, Kernel&& kernel) {
    records_.assign(chunks, record{});
    if (chunks <= 1 || work < policy.min_parallel_size) {
      sparse_arena<T, Index>& mine = arenas_.local();
      const sparse_sink<T, Index> sink(mine);
      for (std::size_t c = 0; c < chunks; ++c) {
        const std::size_t before = mine.indices.size();
        kernel(c, sink);
        records_[c] = record{&mine, before, mine.indices.size() - before};
      }
    } else {
      tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks), [&](const tbb::blocked_range<std::size_t>& r) {
        sparse_arena<T, Index>& mine = arenas_.local();
        const sparse_sink<T, Index> sink(mine);
        for (std::size_t c = r.begin(); c < r.end(); ++c) {
          const std::size_t before = mine.indices.size();
          kernel(c, sink);
          records_[c] = record{&mine, before, mine.indices.size() - before};
        }
      });
    }
    total_ = 0;
    for (const record& r : records_) total_ += r.count;
  }

  std::size_t chunks() const noexcept { return records_.size(); }
  /// Entries over all chunks.
  std::size_t size() const noexcept { return total_; }

  run chunk(std::size_t c) const noexcept {
    const record& r = records_[c];
    if (r.count == 0) return run{nullptr, nullptr, 0};
    return run{r.from->indices.data() + r.offset, r.from->values.data() + r.offset, r.count};
  }

  /// Replaces (indices, values) by the chunks' entries in chunk order.
  void concatenate(const exec::par_t& policy, std::vector<Index>& indices, std::vector<T>& values) const {
    const std::size_t chunks = records_.size();
    std::vector<std::size_t> start(chunks + 1, 0);
    for (std::size_t c = 0; c < chunks; ++c) start[c + 1] = start[c] + records_[c].count;
    indices.resize(total_);
    values.resize(total_);
    const auto copy = [&](std::size_t first, std::size_t last) {
      for (std::size_t c = first; c < last; ++c) {
        const run r = chunk(c);
        std::copy_n(r.indices, r.count, indices.data() + start[c]);
        std::copy_n(r.values, r.count, values.data() + start[c]);
      }
    };
    if (chunks <= 1 || total_ < policy.min_parallel_size / 8) {
      copy(0, chunks);
      return;
    }
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks),
                      [&](const tbb::blocked_range<std::size_t>& r) { copy(r.begin(), r.end()); });
  }

 private:
  struct record {
    const sparse_arena<T, Index>* from = nullptr;
    std::size_t offset = 0, count = 0;
  };
  tbb::enumerable_thread_specific<sparse_arena<T, Index>> arenas_;
  std::vector<record> records_;
  std::size_t total_ = 0;
};

/// Runs kernel(c, sink) for chunks c in [0, chunks) and leaves in (indices, values) the
/// concatenation, in chunk order, of what each chunk appended to its sink. `work` (the
/// number of input elements) decides whether to use the worker threads.
template <class T, class Index, class Kernel>
void collect_sparse(const exec::par_t& policy, std::size_t work, std::size_t chunks, Kernel&& kernel,
                    std::vector<Index>& indices, std::vector<T>& values) {
  indices.clear();
  values.clear();
  if (chunks <= 1 || work < policy.min_parallel_size) {
    const sparse_sink<T, Index> sink(indices, values);
    for (std::size_t c = 0; c < chunks; ++c) kernel(c, sink);
    return;
  }
  chunked_sparse<T, Index> gathered;
  gathered.gather(policy, work, chunks, kernel);
  gathered.concatenate(policy, indices, values);
}

/// Chunk size of the compaction loops: big enough to amortise scheduling, small enough to
/// balance two to a few dozen threads on 1e6+ elements.
inline constexpr std::size_t compact_chunk = 16 * compact_block;

/// Compacts x[0, n) block by block: calls on_block(offset of the block in x, entries) after
/// each block's entries with key >= bound are in buffer.
template <class T, class OnBlock>
void compact_blocks(const T* x, std::size_t n, uint_of<T> bound, compact_buffer<T>& buffer, OnBlock&& on_block) {
  for (std::size_t begin = 0; begin < n; begin += compact_block) {
    const std::size_t m = std::min(compact_block, n - begin);
    on_block(begin, compact_at_least(x + begin, m, bound, buffer));
  }
}

/// Every element of x whose magnitude key is >= bound, in index order (indices over the
/// concatenation when x is a list of tensors).
template <class T, class Index>
void compact_at_least(const exec::par_t& policy, const segmented_input<T>& x, uint_of<T> bound,
                      std::vector<Index>& indices, std::vector<T>& values) {
  collect_sparse<T, Index>(
      policy, x.size(), chunk_count(x.size(), compact_chunk),
      [&](std::size_t c, const sparse_sink<T, Index>& sink) {
        compact_buffer<T> buffer;
        x.for_each_piece(c * compact_chunk, std::min(x.size(), (c + 1) * compact_chunk),
                         [&](const T* data, std::size_t n, std::size_t global) {
                           compact_blocks(data, n, bound, buffer, [&](std::size_t offset, std::size_t count) {
                             sink.append(global + offset, buffer, count);
                           });
                         });
      },
      indices, values);
}

/// Every element of x whose magnitude key is >= bound, in index order.
template <class T, class Index>
void compact_at_least(const exec::par_t& policy, std::span<const T> x, uint_of<T> bound, std::vector<Index>& indices,
                      std::vector<T>& values) {
  collect_sparse<T, Index>(
      policy, x.size(), chunk_count(x.size(), compact_chunk),
      [&](std::size_t c, const sparse_sink<T, Index>& sink) {
        compact_buffer<T> buffer;
        const std::size_t begin = c * compact_chunk;
        compact_blocks(x.data() + begin, std::min(compact_chunk, x.size() - begin), bound, buffer,
                       [&](std::size_t offset, std::size_t count) { sink.append(begin + offset, buffer, count); });
      },
      indices, values);
}

}  // namespace gradcomp::cpu::detail
