#pragma once
// Exact Top-k on the GPU: radix select on magnitude keys, then an ordered compaction. The
// same entries as exec::seq, ties at the k-th key going to the lowest indices, NaN above
// Inf (CUB's DeviceTopK, absent from CCCL 3.0 anyway, promises no order and no tie rule).
//
//   1. select: 8-bit digits of the key, most significant first (4 passes for float, 8 for
//      double). Each pass histograms the digit of the keys that match the digits chosen so
//      far (shared-memory counts, then integer atomics: the counts are exact, so the choice
//      is deterministic), and one thread picks the digit holding rank k_left, counting from
//      the largest. At the end the chosen digits are the k-th largest key K, `above` keys
//      are larger and `need` = k - above of the keys equal to K are kept.
//   2. ties: the keys equal to K are counted per tile of 4096 elements; a block scan over the
//      tile counts finds the tile holding the need-th tie, and a block scan inside that tile
//      its index, last_tie.
//   3. keep: i is kept iff key_i > K, or key_i == K and i <= last_tie; DeviceSelect keeps the
//      order, so exactly k ascending indices; then the values are gathered.
//
// Everything stays on the device, in the policy's stream: no call waits for the host, the
// payload has room for exactly k entries, and the whole path can be captured in a CUDA graph
// once the workspace has grown to its size (one warm-up call). The select (radix_select)
// takes any source of unsigned keys: random-k runs it on hashes of the indices.
#include <cuda_runtime_api.h>

#include <cub/block/block_scan.cuh>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../compressors/top_k.hpp"
#include "../detail/bits.hpp"
#include "../detail/radix_digits.hpp"
#include "compact.cuh"
#include "error.cuh"
#include "launch.cuh"
#include "memory.cuh"
#include "payload.cuh"
#include "policy.cuh"
#include "sparse_vector.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

using gradcomp::detail::magnitude_key;
using gradcomp::detail::uint_of;

inline constexpr int radix_bits = tuning::radix_select::digit_bits;
inline constexpr int radix_buckets = 1 << radix_bits;

/// The select's state, in device memory, written by one kernel and read by the next: the
/// digits' progress (detail/radix_digits.hpp) and where the last kept tie is.
struct select_state {
  gradcomp::detail::radix_progress progress;
  unsigned long long ties_before;  // ties in the tiles before `tile`
  unsigned long long tile;         // the tile holding the last kept tie
  unsigned long long last_tie;     // index of the last kept tie
};

static __global__ void select_init_kernel(select_state* s, unsigned long long k) {
  s->progress = gradcomp::detail::radix_progress{0, 0, k, 0};
  s->ties_before = 0;
  s->tile = 0;
  s->last_tie = 0;
}

/// A block's digit counts in shared memory: zero them, count keys, then add them to the
/// global histogram (integer atomics: exact, so the digit chosen does not depend on timing).
/// Shared with the whole-model select (multi_tensor.cuh), whose first pass also copies.
struct block_digit_counts {
  unsigned* counts;  // radix_buckets entries of shared memory
  __device__ void zero() const {
    for (int b = threadIdx.x; b < radix_buckets; b += blockDim.x) counts[b] = 0;
    __syncthreads();
  }
  template <class U>
  __device__ void count(U key, const gradcomp::detail::radix_progress& p) const {
    if (gradcomp::detail::matches_prefix(key, p)) atomicAdd(&counts[gradcomp::detail::next_digit(key, p, radix_bits)], 1u);
  }
  __device__ void flush(unsigned long long* hist) const {
    __syncthreads();
    for (int b = threadIdx.x; b < radix_buckets; b += blockDim.x)
      if (counts[b] != 0) atomicAdd(&hist[b], static_cast<unsigned long long>(counts[b]));
  }
};

/// The keys Top-k selects by: magnitude_key(x_i). (Random-k selects by hashes of i instead:
/// random_k.cuh.) A key source has key_type and key(i) -> key_type, device-callable.
template <class T>
struct magnitude_keys {
  using key_type = uint_of<T>;
  const T* x;
  __device__ key_type operator()(std::size_t i) const { return magnitude_key(x[i]); }
};

/// hist[digit] += the keys that match the prefix, by their next digit.
template <class Keys>
__global__ void __launch_bounds__(tuning::radix_select::block_threads)
    digit_histogram_kernel(Keys keys, std::size_t n, const select_state* state, unsigned long long* hist) {
  __shared__ unsigned counts[radix_buckets];
  const block_digit_counts block{counts};
  block.zero();
  const gradcomp::detail::radix_progress p = state->progress;
  for (std::size_t i = global_thread(); i < n; i += grid_threads()) block.count(keys(i), p);
  block.flush(hist);
}

/// Picks the digit that holds rank k_left, counting from the largest (one thread).
static __global__ void choose_digit_kernel(select_state* s, const unsigned long long* hist) {
  gradcomp::detail::choose_digit(s->progress, hist, radix_bits);
}

/// tile_ties[t] = keys equal to K in tile t.
template <class Keys>
__global__ void __launch_bounds__(tuning::radix_select::block_threads)
    count_ties_kernel(Keys keys, std::size_t n, const select_state* state, unsigned* tile_ties) {
  using U = typename Keys::key_type;
  constexpr std::size_t tile = tuning::radix_select::tie_tile;
  __shared__ unsigned count;
  const U key_k = static_cast<U>(state->progress.prefix);
  const std::size_t tiles = (n + tile - 1) / tile;
  for (std::size_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    if (threadIdx.x == 0) count = 0;
    __syncthreads();
    unsigned mine = 0;
    const std::size_t end = std::min(n, (t + 1) * tile);
    for (std::size_t i = t * tile + threadIdx.x; i < end; i += blockDim.x) mine += keys(i) == key_k;
    if (mine != 0) atomicAdd(&count, mine);
    __syncthreads();
    if (threadIdx.x == 0) tile_ties[t] = count;
    __syncthreads();
  }
}

/// The tile that holds the need-th tie (need = k_left), and the ties before it.
static __global__ void __launch_bounds__(tuning::radix_select::scan_threads)
    find_tie_tile_kernel(const unsigned* tile_ties, std::size_t tiles, select_state* state) {
  constexpr int threads = tuning::radix_select::scan_threads;
  using scan = ::cub::BlockScan<unsigned long long, threads>;
  __shared__ typename scan::TempStorage temp;
  const std::size_t per = (tiles + threads - 1) / threads;
  const std::size_t first = threadIdx.x * per, last = std::min(tiles, first + per);
  unsigned long long mine = 0;
  for (std::size_t t = first; t < last; ++t) mine += tile_ties[t];
  unsigned long long before = 0;
  scan(temp).ExclusiveSum(mine, before);
  const unsigned long long need = state->progress.k_left;
  if (before < need && need <= before + mine) {
    unsigned long long seen = before;
    for (std::size_t t = first; t < last; ++t) {
      if (seen + tile_ties[t] >= need) {
        state->tile = t;
        state->ties_before = seen;
        break;
      }
      seen += tile_ties[t];
    }
  }
}

/// The index of the need-th tie, inside its tile: each thread scans 16 consecutive elements.
template <class Keys>
__global__ void __launch_bounds__(tuning::radix_select::block_threads)
    find_last_tie_kernel(Keys keys, std::size_t n, select_state* state) {
  using U = typename Keys::key_type;
  constexpr int threads = tuning::radix_select::block_threads;
  constexpr std::size_t tile = tuning::radix_select::tie_tile;
  constexpr std::size_t per = tile / threads;
  using scan = ::cub::BlockScan<unsigned, threads>;
  __shared__ typename scan::TempStorage temp;
  const U key_k = static_cast<U>(state->progress.prefix);
  const std::size_t first = state->tile * tile + threadIdx.x * per;
  const std::size_t last = std::min(n, first + per);
  unsigned mine = 0;
  for (std::size_t i = first; i < last; ++i) mine += keys(i) == key_k;
  unsigned before = 0;
  scan(temp).ExclusiveSum(mine, before);
  const unsigned long long rank = state->progress.k_left - state->ties_before;  // 1-based, inside the tile
  if (before < rank && rank <= before + mine) {
    unsigned long long seen = before;
    for (std::size_t i = first; i < last; ++i) {
      if (keys(i) == key_k && ++seen == rank) {
        state->last_tie = i;
        break;
      }
    }
  }
}

/// Keeps i iff key_i > K, or key_i == K and i <= last_tie.
template <class Keys, class Index>
struct select_keep {
  Keys keys;
  const select_state* state;
  __device__ bool operator()(Index i) const {
    using U = typename Keys::key_type;
    return gradcomp::detail::top_k_keeps(keys(static_cast<std::size_t>(i)), static_cast<unsigned long long>(i),
                                         static_cast<U>(state->progress.prefix), state->last_tie);
  }
};

/// Every index kept (k >= d): indices[i] = i, values[i] = x[i], count = d.
template <class T, class Index>
__global__ void keep_all_kernel(const T* x, std::size_t n, Index* indices, T* values, std::uint64_t* count) {
  for (std::size_t i = global_thread(); i < n; i += grid_threads()) {
    indices[i] = static_cast<Index>(i);
    values[i] = x[i];
  }
  if (global_thread() == 0) *count = n;
}

/// The select's first digit pass over a key source itself (see radix_select).
template <class Keys>
struct histogram_of {
  Keys keys;
  /// A key source of the type operator() returns (for the size query of the compaction).
  Keys sample() const { return keys; }
  Keys operator()(const par_t& policy, std::size_t n, const select_state* state, unsigned long long* hist,
                  void* /*input*/) const {
    digit_histogram_kernel<<<grid_for(n, tuning::radix_select::block_threads, tuning::radix_select::max_blocks),
                             tuning::radix_select::block_threads, 0, policy.stream>>>(keys, n, state, hist);
    check_launch("radix_select", "digit_histogram_kernel");
    return keys;
  }
};

/// Selects the k (1 <= k < n) largest keys of n, ties to the lowest indices, and writes their
/// indices (ascending, exactly k) to out_indices and k to *count. Nothing waits for the host.
///
/// first_pass(policy, n, state, hist, input) runs the first digit pass (into hist, with the
/// state's empty prefix) and returns the key source the later passes read (first_pass.sample()
/// is one of that type): its own keys
/// (histogram_of), or, for a list of tensors, magnitude keys of their concatenation, which it
/// writes into `input`, input_bytes of workspace reserved with the select's own storage.
/// Returns that key source, valid until the workspace's next reserve.
template <class Index, class FirstPass>
auto radix_select(const par_t& policy, std::size_t n, std::size_t k, std::size_t input_bytes,
                  const FirstPass& first_pass, Index* out_indices, std::uint64_t* count) {
  using Keys = decltype(first_pass.sample());
  using U = typename Keys::key_type;
  constexpr int passes = static_cast<int>(sizeof(U) * 8) / radix_bits;
  constexpr std::size_t tile = tuning::radix_select::tie_tile;
  const std::size_t tiles = (n + tile - 1) / tile;
  const std::size_t select_bytes =
      compact_indices_bytes<Index>(n, select_keep<Keys, Index>{first_pass.sample(), nullptr}, policy.stream);

  temp_layout layout;
  const std::size_t state_slot = layout.add(sizeof(select_state));
  const std::size_t hist_slot = layout.add(sizeof(unsigned long long) * radix_buckets * passes);
  const std::size_t ties_slot = layout.add(sizeof(unsigned) * tiles);
  const std::size_t select_slot = layout.add(select_bytes);
  const std::size_t input_slot = layout.add(input_bytes);
  void* base = policy.workspace().reserve(layout.total(), policy.stream);
  auto* state = static_cast<select_state*>(layout.at(base, state_slot));
  auto* hist = static_cast<unsigned long long*>(layout.at(base, hist_slot));
  auto* tile_ties = static_cast<unsigned*>(layout.at(base, ties_slot));

  cudaStream_t stream = policy.stream;
  check(cudaMemsetAsync(hist, 0, sizeof(unsigned long long) * radix_buckets * passes, stream), "radix_select",
        "cudaMemsetAsync");
  select_init_kernel<<<1, 1, 0, stream>>>(state, k);
  check_launch("radix_select", "select_init_kernel");
  const Keys keys = first_pass(policy, n, state, hist, layout.at(base, input_slot));
  const unsigned grid = grid_for(n, tuning::radix_select::block_threads, tuning::radix_select::max_blocks);
  for (int pass = 0; pass < passes; ++pass) {
    unsigned long long* h = hist + static_cast<std::size_t>(pass) * radix_buckets;
    if (pass > 0) {
      digit_histogram_kernel<<<grid, tuning::radix_select::block_threads, 0, stream>>>(keys, n, state, h);
      check_launch("radix_select", "digit_histogram_kernel");
    }
    choose_digit_kernel<<<1, 1, 0, stream>>>(state, h);
    check_launch("radix_select", "choose_digit_kernel");
  }
  count_ties_kernel<<<grid_for(tiles, 1, tuning::radix_select::max_blocks), tuning::radix_select::block_threads, 0,
                      stream>>>(keys, n, state, tile_ties);
  check_launch("radix_select", "count_ties_kernel");
  find_tie_tile_kernel<<<1, tuning::radix_select::scan_threads, 0, stream>>>(tile_ties, tiles, state);
  check_launch("radix_select", "find_tie_tile_kernel");
  find_last_tie_kernel<<<1, tuning::radix_select::block_threads, 0, stream>>>(keys, n, state);
  check_launch("radix_select", "find_last_tie_kernel");
  compact_indices(layout.at(base, select_slot), select_bytes, n, select_keep<Keys, Index>{keys, state}, out_indices,
                  count, stream);
  return keys;
}

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// out = top_k(x), x in device memory: the same min(k, d) entries as exec::seq, without a
/// host round trip (the count is written on the device; it is min(k, d)).
template <std::floating_point T, class Index>
void compress_with(const par_t& policy, const top_k& c, std::span<const T> x, sparse_vector<T, Index>& out) {
  c.validate();
  gradcomp::detail::check_index_fits<Index>(x.size(), "top_k");
  const std::size_t d = x.size();
  const std::size_t kept = std::min(c.k, d);
  out.prepare(d, kept);
  if (kept == d) {
    if (d == 0) {
      detail::check(cudaMemsetAsync(out.count(), 0, sizeof(std::uint64_t), policy.stream), "top_k", "cudaMemsetAsync");
      return;
    }
    detail::keep_all_kernel<<<detail::elementwise_grid(d),
                              tuning::elementwise::block_threads, 0, policy.stream>>>(x.data(), d, out.indices(),
                                                                                       out.values(), out.count());
    detail::check_launch("top_k", "keep_all_kernel");
    return;
  }
  detail::radix_select(policy, d, kept, 0, detail::histogram_of<detail::magnitude_keys<T>>{{x.data()}}, out.indices(),
                       out.count());
  detail::gather(policy, x.data(), out.indices(), out.count(), out.values(), kept);
}

template <class T>
struct device_payload<top_k, T> {
  using type = sparse_vector<T>;
};

}  // namespace gradcomp::cuda
