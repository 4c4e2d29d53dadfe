#pragma once
// Ordered stream compaction on exec::par: what hard-threshold, the fused error-feedback
// threshold step and Top-k's candidate pass are built on. The per-block kernel (one template
// with the fused operation as a parameter) is in simd/compact-inl.hpp; this file cuts the
// input into chunks, runs them on the worker threads, and puts their outputs in order.
//
// Each chunk compacts into a buffer of its thread, and the buffers are concatenated in
// chunk order, so the output indices ascend exactly as in the sequential loop, whatever the
// thread count. Top-k needs the chunks' outputs before they are concatenated (it filters
// them on the way out), so the gather is split from the concatenation: chunked_sparse holds
// what each chunk produced, collect_sparse gathers and concatenates.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <span>
#include <vector>

#include <tbb/blocked_range.h>
#include <tbb/enumerable_thread_specific.h>
#include <tbb/parallel_for.h>

#include "../detail/bits.hpp"
#include "../payload/sparse.hpp"
#include "kernel_types.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "segmented.hpp"
#include "simd.hpp"
#include "tuning.hpp"
#include "workspace.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

inline constexpr std::size_t compact_block = tuning::compact::block;
inline constexpr std::size_t compact_chunk = tuning::compact::chunk;

using gradcomp::detail::threshold_key;

/// Gives out dimension d for a kernel that then sizes out's entries and writes every one.
/// Unlike out.reset(d) it leaves the entry vectors at their old size, so the kernel's resize
/// to the new count value-initialises only what they grow by: a repeated call with the same
/// k (every training step) writes no zeros at all, where after reset() one thread zeroed
/// 8 bytes per entry (8 MB at k = 10^6) before the parallel copy overwrote them.
template <class T, class Index>
void prepare_for_overwrite(sparse_vector<T, Index>& out, std::size_t d) noexcept {
  out.dim = d;
}

/// What one thread's chunks compacted into.
template <class T, class Index>
struct sparse_arena {
  explicit sparse_arena(workspace* ws) : indices(*ws), values(*ws) {}
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

  explicit chunked_sparse(workspace& ws) : arenas_(&ws) {}

  /// Runs kernel(c, sink) for every chunk c in [0, chunks), on the worker threads when
  /// `work` (the input elements) reaches the policy's min_parallel_size. A kernel appends
  /// its chunk's entries to the sink in index order.
  template <class Kernel>
  void gather(const exec::par_t& policy, std::size_t work, std::size_t chunks, Kernel&& kernel) {
    records_.assign(chunks, record{});
    const auto run_chunks = [&](std::size_t first, std::size_t last) {
      sparse_arena<T, Index>& mine = arenas_.local();
      const sparse_sink<T, Index> sink(mine);
      for (std::size_t c = first; c < last; ++c) {
        const std::size_t before = mine.indices.size();
        kernel(c, sink);
        records_[c] = record{&mine, before, mine.indices.size() - before};
      }
    };
    if (chunks <= 1 || work < policy.min_parallel_size)
      run_chunks(0, chunks);
    else
      tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks),
                        [&](const tbb::blocked_range<std::size_t>& r) { run_chunks(r.begin(), r.end()); });
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
  if (chunks <= 1 || work < policy.min_parallel_size) {
    indices.clear();  // the sink appends
    values.clear();
    const sparse_sink<T, Index> sink(indices, values);
    for (std::size_t c = 0; c < chunks; ++c) kernel(c, sink);
    return;
  }
  chunked_sparse<T, Index> gathered(workspace_of(policy));
  gathered.gather(policy, work, chunks, kernel);
  gathered.concatenate(policy, indices, values);
}

/// Compacts x[0, n) block by block: calls on_block(offset of the block in x, entries) after
/// each block's entries with key >= bound are in buffer.
template <class T, class OnBlock>
void compact_blocks(const T* x, std::size_t n, uint_of<T> bound, compact_buffer<T>& buffer, OnBlock&& on_block) {
  simd::dispatch([&](auto tag) {
    for (std::size_t begin = 0; begin < n; begin += compact_block) {
      const std::size_t m = std::min(compact_block, n - begin);
      on_block(begin, compact_at_least(tag, x + begin, m, bound, buffer));
    }
  });
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

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail
