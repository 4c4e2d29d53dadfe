#pragma once
// top_k on exec::par: exact, and bit-identical to the exec::seq reference.
//
// The usual path costs about one pass over the input:
//   1. a deterministic sample (sample.hpp) bounds the k-th largest magnitude key from below;
//   2. one parallel ordered compaction keeps every element whose key reaches the bound (the
//      candidates: a little more than k), and counts their keys in a histogram of fine
//      buckets just above the bound;
//   3. the histogram names the bucket of the k-th largest key; only that bucket's keys are
//      selected exactly (radix_select.hpp), giving T and how many are above it;
//   4. the candidates are written out in index order: key > T, and ties == T while the
//      quota lasts (lowest indices first, as the reference does).
// If the sample misled (fewer than k candidates, or so many that a cap stops the pass), or
// says up front that it cannot help (k close to d, heavy ties), a parallel radix select over
// the whole input finds T and the ties per chunk, and one ordered compaction with per-chunk
// tie quotas writes the result. Small inputs take a sequential path with no set-up cost.
//
// The error-feedback step fuses p = e + scale * g into the candidate pass (writing p to the
// new residual), then clears the sent entries and sums ||e_new||^2 in one more pass.
#include <algorithm>
#include <array>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include <tbb/enumerable_thread_specific.h>

#include "../compressors/top_k.hpp"
#include "../detail/bits.hpp"
#include "../detail/reduce.hpp"
#include "../detail/strict_fp.hpp"
#include "../payload/sparse.hpp"
#include "compact.hpp"
#include "feedback.hpp"
#include "keep_top.hpp"
#include "kernel_types.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "radix_select.hpp"
#include "reduce.hpp"
#include "sample.hpp"
#include "segmented.hpp"
#include "simd.hpp"
#include "tuning.hpp"
#include "workspace.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

/// How a Top-k call found its answer (tests check that every path is exercised).
enum class top_k_path {
  empty,            // d == 0
  keep_all,         // k >= d
  small,            // d below top_k_sampling_from: sequential select
  sampled,          // sample, one candidate pass, exact selection among the candidates
  fallback_direct,  // the sample could not help (k near d, heavy ties): exact radix path
  fallback_few,     // the candidate pass found fewer than k candidates: exact radix path
  fallback_cap,     // the candidate pass found far too many: exact radix path
};

inline constexpr std::size_t top_k_sampling_from = tuning::top_k::sampling_from;

/// The sequential path: all keys, one select, one ordered filter into out.
template <class T, class Index>
void top_k_small(const exec::par_t& policy, std::span<const T> x, std::size_t k, sparse_vector<T, Index>& out) {
  using U = uint_of<T>;
  const std::size_t d = x.size();
  pooled_array<U> keys(workspace_of(policy), d);  // reused: small inputs must not pay an allocation
  for (std::size_t i = 0; i < d; ++i) keys[i] = magnitude_key(x[i]);
  const kth_largest<U> kth = select_kth_largest(keys.span(), k);
  std::size_t ties_left = k - kth.above;
  out.indices.resize(k);
  out.values.resize(k);
  keep_top_scalar(x.data(), d, kth.key, ties_left, [](std::size_t j) { return j; }, out.indices.data(),
                  out.values.data());
}

/// k >= d: every entry, in order.
template <class T, class Index>
void top_k_keep_all(const exec::par_t& policy, const segmented_input<T>& x, sparse_vector<T, Index>& out) {
  const std::size_t d = x.size();
  out.indices.resize(d);
  out.values.resize(d);
  for_each_chunk(policy, d, compact_chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) out.indices[i] = static_cast<Index>(i);
    x.for_each_piece(begin, end, [&](const T* p, std::size_t n, std::size_t global) {
      std::copy_n(p, n, out.values.data() + global);
    });
  });
}

/// Scalar compaction of x[0, n) (n <= compact_block) keeping key > threshold and the first
/// ties_left keys == threshold.
template <class T>
std::size_t compact_top(const T* x, std::size_t n, uint_of<T> threshold, std::size_t& ties_left,
                        compact_buffer<T>& out) {
  return keep_top_scalar(x, n, threshold, ties_left, [](std::size_t j) { return j; }, out.offsets.data(),
                         out.values.data());
}

/// The exact path: parallel radix select over the whole input, then one ordered compaction
/// in which chunk c keeps its keys > T and its share of the ties (the first k - above ties
/// overall, so the lowest indices).
template <class T, class Index>
void top_k_exact(const exec::par_t& policy, const segmented_input<T>& x, std::size_t k, sparse_vector<T, Index>& out) {
  using U = uint_of<T>;
  const std::size_t d = x.size();
  const std::size_t chunk = select_chunk(d, compact_block, compact_chunk);
  const std::size_t chunks = chunk_count(d, chunk);
  const exact_selection<U> sel = select_kth_largest(policy, x, k, chunk);
  const U threshold = sel.key;
  std::vector<std::size_t> quota(chunks);
  std::size_t ties_left = k - sel.above;
  for (std::size_t c = 0; c < chunks; ++c) {
    quota[c] = std::min(sel.ties[c], ties_left);
    ties_left -= quota[c];
  }
  constexpr U largest_key = static_cast<U>(~U{0} >> 1);
  collect_sparse<T, Index>(
      policy, d, chunks,
      [&](std::size_t c, const sparse_sink<T, Index>& sink) {
        const std::size_t begin = c * chunk, end = std::min(d, begin + chunk);
        const bool all_ties = quota[c] == sel.ties[c], no_ties = quota[c] == 0;
        if (no_ties && !all_ties && threshold == largest_key) return;  // nothing above the largest key
        // All of the chunk's ties, or none: a plain compaction at T or just above it.
        const U bound = all_ties ? threshold : static_cast<U>(threshold + 1);
        std::size_t left = quota[c];
        compact_buffer<T> buffer;
        x.for_each_piece(begin, end, [&](const T* p, std::size_t n, std::size_t global) {
          if (all_ties || no_ties) {
            compact_blocks(p, n, bound, buffer,
                           [&](std::size_t offset, std::size_t count) { sink.append(global + offset, buffer, count); });
            return;
          }
          for (std::size_t b = 0; b < n; b += compact_block) {
            const std::size_t m = std::min(compact_block, n - b);
            sink.append(global + b, buffer, compact_top(p + b, m, threshold, left, buffer));
          }
        });
      },
      out.indices, out.values);
}

/// A plain input as the candidate pass sees it.
template <class T>
struct plain_source {
  const segmented_input<T>& x;

  std::size_t size() const noexcept { return x.size(); }

  /// Keys of elements [begin, begin + n).
  void keys(std::size_t begin, std::size_t n, uint_of<T>* out) const {
    x.for_each_piece(begin, begin + n, [&](const T* p, std::size_t m, std::size_t global) {
      for (std::size_t j = 0; j < m; ++j) out[global - begin + j] = magnitude_key(p[j]);
    });
  }

  /// Compacts [begin, end) at bound, calling on_block(global block start, count) per block.
  template <class OnBlock>
  void compact(std::size_t begin, std::size_t end, uint_of<T> bound, compact_buffer<T>& buffer,
               OnBlock&& on_block) const {
    x.for_each_piece(begin, end, [&](const T* p, std::size_t n, std::size_t global) {
      compact_blocks(p, n, bound, buffer, [&](std::size_t offset, std::size_t count) { on_block(global + offset, count); });
    });
  }

  /// What a chunk that is not compacted must still do: nothing.
  void skip(std::size_t, std::size_t) const noexcept {}
};

/// The error-feedback input p = e + scale * g as the candidate pass sees it: computed on the
/// fly, and written to e_new as the pass goes (every element, compacted or skipped).
template <class T>
struct feedback_source {
  std::span<const T> e, g;
  T scale;
  std::span<T> e_new;

  std::size_t size() const noexcept { return e.size(); }

  void keys(std::size_t begin, std::size_t n, uint_of<T>* out) const {
    std::array<T, tuning::top_k::sample_run> p;
    for (std::size_t done = 0; done < n; done += p.size()) {
      const std::size_t m = std::min(p.size(), n - done);
      feedback_input(e.data() + begin + done, g.data() + begin + done, scale, p.data(), m);
      for (std::size_t j = 0; j < m; ++j) out[done + j] = magnitude_key(p[j]);
    }
  }

  template <class OnBlock>
  void compact(std::size_t begin, std::size_t end, uint_of<T> bound, compact_buffer<T>& buffer,
               OnBlock&& on_block) const {
    simd::dispatch([&](auto tag) {
      for (std::size_t b = begin; b < end; b += compact_block) {
        const feedback_block<T> in{e.data() + b, g.data() + b, scale, e_new.data() + b};
        on_block(b, feedback_candidates(tag, in, std::min(compact_block, end - b), bound, buffer));
      }
    });
  }

  void skip(std::size_t begin, std::size_t end) const {
    feedback_input(e.data() + begin, g.data() + begin, scale, e_new.data() + begin, end - begin);
  }
};

/// The sample of src: the keys of its sample runs.
template <class T, class Source>
pooled_array<uint_of<T>> sample_keys(workspace& ws, const Source& src) {
  pooled_array<uint_of<T>> keys(ws, sample_size(src.size()));
  std::size_t filled = 0;
  for_each_sample_run(src.size(), [&](std::size_t begin, std::size_t n) {
    src.keys(begin, n, keys.data() + filled);
    filled += n;
  });
  keys.shrink(filled);
  return keys;
}

/// Steps 1-4 of the header comment on src (k < d). Returns top_k_path::sampled with the
/// result in out, or the fallback the caller must take. Unless it returns fallback_direct,
/// the candidate pass ran over every element (a feedback_source has written all of e_new).
template <class T, class Index, class Source>
top_k_path top_k_by_sample(const exec::par_t& policy, const Source& src, std::size_t k,
                           sparse_vector<T, Index>& out) {
  using U = uint_of<T>;
  const std::size_t d = src.size();
  workspace& ws = workspace_of(policy);
  const auto bounds = estimate_candidate_bounds(ws, std::span<const U>(sample_keys<T>(ws, src).span()), k, d);
  if (!bounds) return top_k_path::fallback_direct;
  // Buckets about 1/1024 of the bound-to-upper band wide: the k-th key's bucket is small.
  unsigned shift = 0;
  constexpr std::size_t radix_buckets = candidate_digit<U>::buckets;
  while (((bounds->upper - bounds->bound) >> shift) >= radix_buckets / 2) ++shift;
  const candidate_digit<U> digit{bounds->bound, shift};
  // Far more candidates than the sample promised: it misled; stop and take the exact path.
  const std::size_t cap = 2 * bounds->expected + compact_chunk;

  using histogram = std::array<std::size_t, radix_buckets>;
  tbb::enumerable_thread_specific<histogram> histograms(histogram{});
  std::atomic<std::size_t> found{0};
  std::atomic<bool> over_cap{false};
  chunked_sparse<T, Index> candidates(ws);
  const std::size_t chunks = chunk_count(d, compact_chunk);
  candidates.gather(policy, d, chunks, [&](std::size_t c, const sparse_sink<T, Index>& sink) {
    const std::size_t begin = c * compact_chunk, end = std::min(d, begin + compact_chunk);
    if (over_cap.load(std::memory_order_relaxed)) {
      src.skip(begin, end);
      return;
    }
    compact_buffer<T> buffer;
    std::size_t here = 0;
    src.compact(begin, end, bounds->bound, buffer, [&](std::size_t block_begin, std::size_t count) {
      sink.append(block_begin, buffer, count);
      here += count;
    });
    // Counted once the chunk is done: histogram stores interleaved with the streaming
    // compaction slowed it by about 40% (measured on Zen 5); here they cost under 10%.
    histogram& hist = histograms.local();
    const T* found_here = sink.last_values(here);
    for (std::size_t j = 0; j < here; ++j) ++hist[digit(magnitude_key(found_here[j]))];
    // The flag is set iff the final total exceeds the cap (totals only grow), so the
    // decision does not depend on the scheduling.
    if (found.fetch_add(here, std::memory_order_relaxed) + here > cap) over_cap.store(true, std::memory_order_relaxed);
  });
  if (over_cap.load()) return top_k_path::fallback_cap;
  if (candidates.size() < k) return top_k_path::fallback_few;
  if (candidates.size() == k) {
    candidates.concatenate(policy, out.indices, out.values);
    return top_k_path::sampled;
  }

  // The bucket holding rank k, from the top.
  histogram total{};
  for (const histogram& h : histograms)
    for (std::size_t b = 0; b < radix_buckets; ++b) total[b] += h[b];
  std::size_t bucket = radix_buckets - 1, higher = 0;
  while (higher + total[bucket] < k) higher += total[bucket--];

  // Per chunk: candidates above the bucket, and the bucket's keys (with their chunk).
  std::vector<std::size_t> above(chunks, 0), ties(chunks, 0);
  tbb::enumerable_thread_specific<std::vector<std::pair<std::size_t, U>>> in_bucket;
  const auto scan = [&](std::size_t first, std::size_t last) {
    auto& mine = in_bucket.local();
    simd::dispatch([&](auto tag) {
      for (std::size_t c = first; c < last; ++c) {
        const auto run = candidates.chunk(c);
        above[c] = scan_bucket(tag, run.values, run.count, digit, bucket, c, mine);
      }
    });
  };
  const bool parallel = candidates.size() >= tuning::top_k::parallel_candidates && policy.min_parallel_size <= d;
  if (parallel)
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks),
                      [&](const tbb::blocked_range<std::size_t>& r) { scan(r.begin(), r.end()); });
  else
    scan(0, chunks);
  std::vector<U> bucket_keys;
  bucket_keys.reserve(total[bucket]);
  for (const auto& list : in_bucket)
    for (const auto& [c, key] : list) bucket_keys.push_back(key);
  const kth_largest<U> kth = select_kth_largest(std::span<U>(bucket_keys), k - higher);
  for (const auto& list : in_bucket) {
    for (const auto& [c, key] : list) {
      above[c] += key > kth.key;
      ties[c] += key == kth.key;
    }
  }

  // Chunk c writes its keys > T and its share of the ties at start[c].
  std::vector<std::size_t> start(chunks + 1, 0), quota(chunks);
  std::size_t ties_left = k - higher - kth.above;
  for (std::size_t c = 0; c < chunks; ++c) {
    quota[c] = std::min(ties[c], ties_left);
    ties_left -= quota[c];
    start[c + 1] = start[c] + above[c] + quota[c];
  }
  out.indices.resize(k);
  out.values.resize(k);
  const auto emit = [&](std::size_t first, std::size_t last) {
    simd::dispatch([&](auto tag) {
      for (std::size_t c = first; c < last; ++c) {
        const auto run = candidates.chunk(c);
        std::size_t left = quota[c];
        keep_top(tag, run.indices, run.values, run.count, kth.key, left, out.indices.data() + start[c],
                 out.values.data() + start[c]);
      }
    });
  };
  if (parallel)
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks),
                      [&](const tbb::blocked_range<std::size_t>& r) { emit(r.begin(), r.end()); });
  else
    emit(0, chunks);
  return top_k_path::sampled;
}

/// Top-k of x into out (already reset to dimension x.size()); k >= 1.
template <class T, class Index>
top_k_path top_k_into(const exec::par_t& policy, const segmented_input<T>& x, std::size_t k,
                      sparse_vector<T, Index>& out) {
  const std::size_t d = x.size();
  if (d == 0) {
    out.indices.clear();
    out.values.clear();
    return top_k_path::empty;
  }
  if (k >= d) {
    top_k_keep_all(policy, x, out);
    return top_k_path::keep_all;
  }
  if (d < top_k_sampling_from) {
    if (x.contiguous()) {
      top_k_small(policy, x.whole(), k, out);
    } else {
      std::vector<T> joined(d);
      x.for_each_piece(0, d, [&](const T* p, std::size_t n, std::size_t global) { std::copy_n(p, n, joined.data() + global); });
      top_k_small(policy, std::span<const T>(joined), k, out);
    }
    return top_k_path::small;
  }
  const top_k_path path = top_k_by_sample(policy, plain_source<T>{x}, k, out);
  if (path != top_k_path::sampled) top_k_exact(policy, x, k, out);
  return path;
}

/// e_new[i] = p + (-1) * p at the sent indices (p = the sent value), exactly as the
/// reference's decompress_add(-1) leaves them.
template <class T, class Index>
GRADCOMP_NO_FP_CONTRACT void clear_sent(const Index* indices, const T* values, std::size_t n, T* e_new) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  for (std::size_t j = 0; j < n; ++j) e_new[indices[j]] = values[j] + T(-1) * values[j];
}

/// Clears the sent entries of e_new (which holds p) and returns ||e_new||^2 in the reference
/// order, chunk by chunk while the chunk is in cache.
template <class T, class Index>
double clear_sent_and_sum_squares(const exec::par_t& policy, const sparse_vector<T, Index>& sent, std::span<T> e_new) {
  constexpr std::size_t B = gradcomp::detail::reduction_block;
  static_assert(compact_chunk % B == 0, "chunks must hold whole reduction blocks");
  pooled_array<double> block_norms(workspace_of(policy), chunk_count(e_new.size(), B));
  for_each_chunk(policy, e_new.size(), compact_chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
    const auto first = std::lower_bound(sent.indices.begin(), sent.indices.end(), begin,
                                        [](Index i, std::size_t v) { return static_cast<std::size_t>(i) < v; });
    const auto last = std::lower_bound(first, sent.indices.end(), end,
                                       [](Index i, std::size_t v) { return static_cast<std::size_t>(i) < v; });
    const auto j = static_cast<std::size_t>(first - sent.indices.begin());
    clear_sent(sent.indices.data() + j, sent.values.data() + j, static_cast<std::size_t>(last - first), e_new.data());
    block_sums<summand::square>(e_new.data() + begin, end - begin, block_norms.data() + begin / B);
  });
  return sum_of_blocks(block_norms.span());
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// C(x) on exec::par; bit-identical to the exec::seq reference.
template <std::floating_point T, class Index>
void compress_with(const exec::par_t& policy, const top_k& c, std::span<const T> x, sparse_vector<T, Index>& out) {
  c.validate();
  gradcomp::detail::check_index_fits<Index>(x.size(), "top_k");
  cpu::detail::prepare_for_overwrite(out, x.size());
  if (c.k < x.size() && x.size() < cpu::detail::top_k_sampling_from)
    cpu::detail::top_k_small(policy, x, c.k, out);  // the common per-layer case: no set-up at all
  else
    cpu::detail::top_k_into(policy, cpu::detail::segmented_input<T>(x), c.k, out);
}

/// The error-feedback step with top_k: p = e + scale * g is formed in the candidate pass
/// (written to e_new), the message selected from p, the sent entries of e_new cleared, and
/// ||e_new||^2 returned in the reference order. Bit-identical to the unfused reference.
template <std::floating_point T, class Index>
double feedback_step_with(const exec::par_t& policy, const top_k& c, std::span<const T> e, std::span<const T> g,
                          T scale, std::span<T> e_new, sparse_vector<T, Index>& out) {
  using namespace cpu::detail;
  c.validate();
  gradcomp::detail::check_index_fits<Index>(e.size(), "top_k");
  const std::size_t d = e.size();
  cpu::detail::prepare_for_overwrite(out, d);
  if (c.k >= d || d < top_k_sampling_from) {
    feedback_input_with(policy, e, g, scale, e_new);
    top_k_into(policy, segmented_input<T>(std::span<const T>(e_new)), c.k, out);
  } else {
    const top_k_path path = top_k_by_sample(policy, feedback_source<T>{e, g, scale, e_new}, c.k, out);
    if (path == top_k_path::fallback_direct) feedback_input_with(policy, e, g, scale, e_new);
    if (path != top_k_path::sampled) top_k_exact(policy, segmented_input<T>(std::span<const T>(e_new)), c.k, out);
  }
  return clear_sent_and_sum_squares(policy, out, e_new);
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
