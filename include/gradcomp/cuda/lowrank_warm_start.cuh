#pragma once
// PowerSGD's warm start on the GPU: the redraw of every all-zero column of Q (cols x r per
// compressed tensor) with step `step`'s draw, lowrank/warm_start.hpp's rule with its own
// functions (lowrank::q_stream and lowrank::q_draw are GRADCOMP_HD), so the redrawn columns
// are the host's bits: entry (i, c) is q_draw(q_stream(seed, tensor, step), i * r + c). One
// CUDA block per tensor (all tensors in one launch): for each column c in turn, the block
// decides whether every entry is zero (-0 counts as zero, as on the host), and if so writes
// the draw. (Q's initial value is the host's initial_q, drawn on the host and copied.)
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "../lowrank/warm_start.hpp"
#include "error.cuh"
#include "launch.cuh"
#include "lowrank_layout.cuh"
#include "policy.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// Redraws every all-zero column of every compressed tensor's Q (at its q_offset in q); adds
/// the number redrawn to *redrawn.
template <class T>
__global__ void __launch_bounds__(tuning::powersgd::tensor_block_threads)
    redraw_zero_columns_kernel(const factor_slot* slots, std::size_t count, T* q, std::size_t r, std::uint64_t seed,
                               std::uint64_t step, unsigned long long* redrawn) {
  for (std::size_t t = blockIdx.x; t < count; t += gridDim.x) {
    const factor_slot s = slots[t];
    T* base = q + s.q_offset;
    const gradcomp::detail::counter_stream stream = gradcomp::lowrank::q_stream(seed, s.tensor, step);
    unsigned long long drawn = 0;
    for (std::size_t c = 0; c < r; ++c) {
      int nonzero = 0;
      for (std::size_t i = threadIdx.x; i < s.cols; i += blockDim.x) nonzero |= base[i * r + c] != T(0) ? 1 : 0;
      if (__syncthreads_or(nonzero)) continue;  // the same answer in every thread
      for (std::size_t i = threadIdx.x; i < s.cols; i += blockDim.x)
        base[i * r + c] = gradcomp::lowrank::q_draw<T>(stream, i * r + c);
      ++drawn;
    }
    if (threadIdx.x == 0 && drawn > 0) atomicAdd(redrawn, drawn);
  }
}

/// Launches redraw_zero_columns_kernel on the policy's stream (nothing without compressed
/// tensors).
template <class T>
void redraw_zero_columns_async(const par_t& policy, const lowrank_tables& t, std::size_t r, T* q, std::uint64_t seed,
                               std::uint64_t step, unsigned long long* redrawn) {
  if (t.factor_count() == 0) return;
  redraw_zero_columns_kernel<T><<<grid_for(t.factor_count(), 1, tuning::powersgd::tensor_max_blocks),
                                  tuning::powersgd::tensor_block_threads, 0, policy.stream>>>(
      t.factors(), t.factor_count(), q, r, seed, step, redrawn);
  check_launch("powersgd", "redraw_zero_columns_kernel");
}

}  // namespace gradcomp::cuda::detail
