#pragma once
// PowerSGD's three products on the GPU, for every compressed tensor of a model in one launch
// each (lowrank_layout.cuh), without cuBLAS. r is small (1..32 in practice), so they are skinny
// products that a plain kernel runs at memory speed, and each fixes its summation order, so a
// result repeats bit for bit from run to run (atomics only count, they never add values):
//
//   P = M Q     (rows x cols times cols x r): one warp per row i of M. Lane l adds
//               M[i][k] Q[k][c] over k = l, l + 32, l + 64, ... in order, for every column c of
//               a group of at most 32 (one double accumulator each); then the 32 lane sums
//               are added by a fixed shuffle tree (offsets 16, 8, 4, 2, 1). Reads of a row of
//               M are coalesced; Q (cols x r) is read through the cache.
//   Q = M^T P   (cols x rows times rows x r): one thread per column j of M, adding
//               M[i][j] P[i][c] over i = 0, 1, ..., rows - 1 in order: the reference's own
//               order (lowrank/matmul.hpp), so given the same M and P the bits are exec::seq's.
//               Adjacent threads read adjacent elements of a row of M (coalesced); P[i][.] is
//               the same address for a whole warp (a broadcast).
//   decoded = P Q^T, and M -= decoded: one thread per element (i, j), adding P[i][c] Q[j][c]
//               over c = 0, ..., r - 1 in order (the reference's order again), rounded once to
//               T; the residual is M minus that rounded value (one rounding), as the host's
//               loop computes it.
//
// Every sum is accumulated in lowrank::accumulator (double), as the reference's: only P = M Q
// adds in another order (32 interleaved partial sums), which changes its last bits. Kernels
// rely on -fmad=false (the gradcomp::cuda target sets it): a fused multiply-add would change
// the products' roundings.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <type_traits>

#include "../lowrank/matmul.hpp"
#include "error.cuh"
#include "launch.cuh"
#include "lowrank_layout.cuh"
#include "policy.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

using lowrank_accumulator = gradcomp::lowrank::accumulator;

inline constexpr int warp_lanes = 32;

/// P[., c0 .. c0 + width - 1] = M Q[., c0 .. c0 + width - 1] for every compressed tensor
/// (width <= R). p points at the P buffer, q at the Q buffer (each tensor at its offsets).
template <class T, int R>
__global__ void __launch_bounds__(tuning::powersgd::row_block_threads)
    m_times_q_kernel(const factor_slot* slots, std::size_t count, std::size_t total_rows, const T* m, const T* q, T* p,
                     std::size_t r, std::size_t c0, int width) {
  const int lane = static_cast<int>(threadIdx.x) % warp_lanes;
  const std::size_t warps_per_block = blockDim.x / warp_lanes;
  const std::size_t warps = static_cast<std::size_t>(gridDim.x) * warps_per_block;
  // The loop's bounds are the same for the 32 lanes of a warp, so the shuffles see them all.
  for (std::size_t row = blockIdx.x * warps_per_block + threadIdx.x / warp_lanes; row < total_rows; row += warps) {
    const factor_slot s = slots[slot_index(slots, count, row, &factor_slot::row_begin)];
    const std::size_t i = row - s.row_begin;
    const T* m_row = m + s.offset + i * s.cols;
    const T* q_cols = q + s.q_offset + c0;
    lowrank_accumulator acc[R];
#pragma unroll
    for (int c = 0; c < R; ++c) acc[c] = 0;
    for (std::size_t k = static_cast<std::size_t>(lane); k < s.cols; k += warp_lanes) {
      const lowrank_accumulator x = static_cast<lowrank_accumulator>(m_row[k]);
      const T* q_row = q_cols + k * r;
#pragma unroll
      for (int c = 0; c < R; ++c)
        if (c < width) acc[c] += x * static_cast<lowrank_accumulator>(q_row[c]);
    }
#pragma unroll
    for (int c = 0; c < R; ++c) {
      if (c < width) {  // width is the same for the whole grid
        lowrank_accumulator v = acc[c];
#pragma unroll
        for (int offset = warp_lanes / 2; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
        acc[c] = v;  // lane 0 holds the row's sum
      }
    }
    if (lane == 0) {
      T* p_row = p + s.p_offset + i * r + c0;
#pragma unroll
      for (int c = 0; c < R; ++c)
        if (c < width) p_row[c] = static_cast<T>(acc[c]);
    }
  }
}

/// Q[., c0 .. c0 + width - 1] = M^T P[., c0 .. c0 + width - 1] for every compressed tensor.
template <class T, int R>
__global__ void __launch_bounds__(tuning::powersgd::column_block_threads)
    mt_times_p_kernel(const factor_slot* slots, std::size_t count, std::size_t total_cols, const T* m, const T* p, T* q,
                      std::size_t r, std::size_t c0, int width) {
  for (std::size_t col = global_thread(); col < total_cols; col += grid_threads()) {
    const factor_slot s = slots[slot_index(slots, count, col, &factor_slot::col_begin)];
    const std::size_t j = col - s.col_begin;
    const T* m_col = m + s.offset + j;
    const T* p_cols = p + s.p_offset + c0;
    lowrank_accumulator acc[R];
#pragma unroll
    for (int c = 0; c < R; ++c) acc[c] = 0;
    for (std::size_t i = 0; i < s.rows; ++i) {
      const lowrank_accumulator x = static_cast<lowrank_accumulator>(m_col[i * s.cols]);
      const T* p_row = p_cols + i * r;
#pragma unroll
      for (int c = 0; c < R; ++c)
        if (c < width) acc[c] += x * static_cast<lowrank_accumulator>(p_row[c]);
    }
    T* q_row = q + s.q_offset + j * r + c0;
#pragma unroll
    for (int c = 0; c < R; ++c)
      if (c < width) q_row[c] = static_cast<T>(acc[c]);
  }
}

/// decoded = P Q^T and m = m - decoded on every compressed tensor's elements.
template <class T>
__global__ void __launch_bounds__(tuning::powersgd::column_block_threads)
    decode_factors_kernel(const factor_slot* slots, std::size_t count, std::size_t total_elements, const T* p, const T* q,
                  T* decoded, T* m, std::size_t r) {
  for (std::size_t e = global_thread(); e < total_elements; e += grid_threads()) {
    const factor_slot s = slots[slot_index(slots, count, e, &factor_slot::element_begin)];
    const std::size_t local = e - s.element_begin;
    const std::size_t i = local / s.cols, j = local % s.cols;
    const T* p_row = p + s.p_offset + i * r;
    const T* q_row = q + s.q_offset + j * r;
    lowrank_accumulator sum = 0;
    for (std::size_t c = 0; c < r; ++c)
      sum += static_cast<lowrank_accumulator>(p_row[c]) * static_cast<lowrank_accumulator>(q_row[c]);
    const T d = static_cast<T>(sum);
    decoded[s.offset + local] = d;
    m[s.offset + local] = m[s.offset + local] - d;
  }
}

/// Calls launch(std::integral_constant<int, R>{}) with the smallest R in {1, 2, 4, 8, 16, 32}
/// that holds `width` (1 <= width <= 32) columns: the accumulators stay in registers.
template <class Launch>
void with_group_width(int width, Launch&& launch) {
  static_assert(tuning::powersgd::group_columns == 32, "with_group_width instantiates up to 32 columns");
  if (width <= 1)
    launch(std::integral_constant<int, 1>{});
  else if (width <= 2)
    launch(std::integral_constant<int, 2>{});
  else if (width <= 4)
    launch(std::integral_constant<int, 4>{});
  else if (width <= 8)
    launch(std::integral_constant<int, 8>{});
  else if (width <= 16)
    launch(std::integral_constant<int, 16>{});
  else
    launch(std::integral_constant<int, 32>{});
}

/// The column groups of r: c0 = 0, 32, 64, ... with width min(32, r - c0).
template <class Launch>
void for_column_groups(std::size_t r, Launch&& launch) {
  constexpr std::size_t group = tuning::powersgd::group_columns;
  for (std::size_t c0 = 0; c0 < r; c0 += group) {
    const int width = static_cast<int>(r - c0 < group ? r - c0 : group);
    with_group_width(width, [&](auto R) { launch(R, c0, width); });
  }
}

/// P = M Q for every compressed tensor, on the policy's stream.
template <class T>
void m_times_q_async(const par_t& policy, const lowrank_tables& t, std::size_t r, const T* m, const T* q, T* p) {
  if (t.total_rows() == 0) return;
  constexpr int threads = tuning::powersgd::row_block_threads;
  static_assert(threads % warp_lanes == 0);
  const unsigned blocks = grid_for(t.total_rows(), threads / warp_lanes, tuning::powersgd::row_max_blocks);
  for_column_groups(r, [&](auto R, std::size_t c0, int width) {
    m_times_q_kernel<T, decltype(R)::value><<<blocks, threads, 0, policy.stream>>>(t.factors(), t.factor_count(),
                                                                                   t.total_rows(), m, q, p, r, c0, width);
    check_launch("powersgd", "m_times_q_kernel");
  });
}

/// Q = M^T P for every compressed tensor, on the policy's stream.
template <class T>
void mt_times_p_async(const par_t& policy, const lowrank_tables& t, std::size_t r, const T* m, const T* p, T* q) {
  if (t.total_cols() == 0) return;
  constexpr int threads = tuning::powersgd::column_block_threads;
  const unsigned blocks = grid_for(t.total_cols(), threads, tuning::powersgd::column_max_blocks);
  for_column_groups(r, [&](auto R, std::size_t c0, int width) {
    mt_times_p_kernel<T, decltype(R)::value><<<blocks, threads, 0, policy.stream>>>(t.factors(), t.factor_count(),
                                                                                    t.total_cols(), m, p, q, r, c0, width);
    check_launch("powersgd", "mt_times_p_kernel");
  });
}

/// decoded = P Q^T and m -= decoded on every compressed tensor, on the policy's stream.
template <class T>
void decode_factors_async(const par_t& policy, const lowrank_tables& t, std::size_t r, const T* p, const T* q, T* decoded, T* m) {
  if (t.total_elements() == 0) return;
  constexpr int threads = tuning::powersgd::column_block_threads;
  decode_factors_kernel<T><<<grid_for(t.total_elements(), threads, tuning::powersgd::column_max_blocks), threads, 0,
                     policy.stream>>>(t.factors(), t.factor_count(), t.total_elements(), p, q, decoded, m, r);
  check_launch("powersgd", "decode_factors_kernel");
}

}  // namespace gradcomp::cuda::detail
