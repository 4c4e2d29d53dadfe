#pragma once
// PowerSGD's orthogonalisation of P on the GPU: lowrank/orthogonalise.hpp's modified
// Gram-Schmidt, step for step, one CUDA block per compressed tensor (all tensors in one
// launch). Column j = 0, 1, ..., r - 1 in order: its norm before; its projection onto each
// earlier column i = 0, ..., j - 1 subtracted in turn, each from the updated column; then the
// degenerate-column rule (what is left at most lowrank::degenerate_column_ratio<T> times the
// norm before, or a zero column: set to zero, counted) or the division by its norm. Every
// updated entry is rounded to T once, from the same double expression as the host's
// (col - along * done, col / norm).
//
// Only the dot products differ from the reference: each of the block's threads adds the
// entries k = t, t + B, t + 2B, ... (B = tuning::powersgd::tensor_block_threads) in order, in
// double, and the B partial sums are added by a fixed shared-memory tree; the reference adds
// k = 0, 1, ... in order. The order is fixed, so the bits repeat run to run. A thread updates
// only its own entries, so the only synchronisation is the sums'.
#include <cuda_runtime_api.h>

#include <cmath>
#include <cstddef>
#include <type_traits>

#include "../lowrank/orthogonalise.hpp"
#include "error.cuh"
#include "launch.cuh"
#include "lowrank_layout.cuh"
#include "policy.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// sum over k < rows of a[k * r] * b[k * r] (columns of a row-major rows x r matrix), in
/// double: per-thread partial sums in index order, then the block's tree. Every thread of the
/// block calls it; every thread gets the sum.
template <class T>
__device__ double column_dot(const T* a, const T* b, std::size_t rows, std::size_t r, double* partial) {
  constexpr int threads = tuning::powersgd::tensor_block_threads;
  static_assert((threads & (threads - 1)) == 0, "the block's sum tree needs a power of two");
  double s = 0;
  for (std::size_t k = threadIdx.x; k < rows; k += threads)
    s += static_cast<double>(a[k * r]) * static_cast<double>(b[k * r]);
  partial[threadIdx.x] = s;
  __syncthreads();
  for (int width = threads / 2; width > 0; width /= 2) {
    if (static_cast<int>(threadIdx.x) < width) partial[threadIdx.x] = partial[threadIdx.x] + partial[threadIdx.x + width];
    __syncthreads();
  }
  const double sum = partial[0];
  __syncthreads();  // every thread has read it before the next sum overwrites it
  return sum;
}

/// Orthonormalises every compressed tensor's P (rows x r, at its p_offset in p) in place;
/// adds the number of degenerate columns to *degenerate.
template <class T>
__global__ void __launch_bounds__(tuning::powersgd::tensor_block_threads)
    orthogonalise_kernel(const factor_slot* slots, std::size_t count, T* p, std::size_t r, double ratio,
                         unsigned long long* degenerate) {
  constexpr int threads = tuning::powersgd::tensor_block_threads;
  __shared__ double partial[threads];
  for (std::size_t t = blockIdx.x; t < count; t += gridDim.x) {
    const factor_slot s = slots[t];
    T* base = p + s.p_offset;
    unsigned long long zeroed = 0;
    for (std::size_t j = 0; j < r; ++j) {
      T* col = base + j;  // column j: col[k * r]
      const double before = sqrt(column_dot(col, col, s.rows, r, partial));
      for (std::size_t i = 0; i < j; ++i) {
        const T* done = base + i;  // an earlier column: unit length, or zero
        const double along = column_dot(done, col, s.rows, r, partial);
        for (std::size_t k = threadIdx.x; k < s.rows; k += threads)
          col[k * r] = static_cast<T>(static_cast<double>(col[k * r]) - along * static_cast<double>(done[k * r]));
      }
      const double after = sqrt(column_dot(col, col, s.rows, r, partial));
      const bool zero = !(before > 0) || !(after > ratio * before);  // the same verdict in every thread
      for (std::size_t k = threadIdx.x; k < s.rows; k += threads)
        col[k * r] = zero ? T(0) : static_cast<T>(static_cast<double>(col[k * r]) / after);
      zeroed += zero ? 1 : 0;
    }
    if (threadIdx.x == 0 && zeroed > 0) atomicAdd(degenerate, zeroed);
  }
}

/// Launches orthogonalise_kernel on the policy's stream (nothing without compressed tensors).
template <class T>
void orthogonalise_async(const par_t& policy, const lowrank_tables& t, std::size_t r, T* p,
                         unsigned long long* degenerate) {
  if (t.factor_count() == 0) return;
  static_assert(std::is_same_v<gradcomp::lowrank::accumulator, double>, "the kernel's sums are double");
  const double ratio = gradcomp::lowrank::degenerate_column_ratio<T>;  // read on the host, passed by value
  orthogonalise_kernel<T><<<grid_for(t.factor_count(), 1, tuning::powersgd::tensor_max_blocks),
                            tuning::powersgd::tensor_block_threads, 0, policy.stream>>>(t.factors(), t.factor_count(), p,
                                                                                         r, ratio, degenerate);
  check_launch("powersgd", "orthogonalise_kernel");
}

}  // namespace gradcomp::cuda::detail
