#pragma once
// The largest magnitude key of a device vector (detail::magnitude_key: |x| order, +Inf and NaN
// above every finite value), the device counterpart of cpu/max_magnitude.hpp. A maximum does
// not depend on the order its parts are combined in, so integer atomics give the reference's
// value. The casts take max|x| from it (and learn whether every entry is finite), natural
// compression whether any entry could round up to Inf: one pass decides both.
#include <cuda_runtime_api.h>

#include <cstddef>
#include <span>

#include "../detail/bits.hpp"
#include "error.cuh"
#include "launch.cuh"
#include "policy.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// *largest = max(*largest, magnitude_key(x_i) for every i < n), the key widened to 64 bits
/// (which keeps its order): a per-thread maximum, a warp maximum, one atomic per warp.
template <class T>
__global__ void max_magnitude_key_kernel(const T* x, std::size_t n, unsigned long long* largest) {
  unsigned long long key = 0;
  for (std::size_t i = global_thread(); i < n; i += grid_threads()) {
    const unsigned long long k = gradcomp::detail::magnitude_key(x[i]);
    key = k > key ? k : key;
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    const unsigned long long other = __shfl_xor_sync(0xffffffffu, key, offset);
    key = other > key ? other : key;
  }
  if (threadIdx.x % 32 == 0 && key != 0) atomicMax(largest, key);
}

/// *largest (device memory) = the largest magnitude key of x, or 0 (the key of +-0) for an
/// empty x; on the policy's stream, without waiting.
template <class T>
void max_magnitude_key_async(const par_t& policy, std::span<const T> x, unsigned long long* largest,
                             const char* where) {
  check(cudaMemsetAsync(largest, 0, sizeof *largest, policy.stream), where, "cudaMemsetAsync");
  if (x.empty()) return;
  max_magnitude_key_kernel<<<elementwise_grid(x.size()), tuning::elementwise::block_threads, 0, policy.stream>>>(
      x.data(), x.size(), largest);
  check_launch(where, "max_magnitude_key_kernel");
}

}  // namespace gradcomp::cuda::detail
