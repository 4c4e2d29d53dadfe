#pragma once
// Ordered stream compaction of indices, and the gather of their values: how the sparsifiers
// build their payloads on the GPU. cub::DeviceSelect::If keeps the order of its input (a
// single pass with decoupled look-back), so the indices come out ascending, as the
// reference lists them, and the count stays on the device.
#include <cuda_runtime_api.h>

#include <cub/device/device_select.cuh>
#include <thrust/iterator/counting_iterator.h>

#include <cstddef>
#include <cstdint>

#include "error.cuh"
#include "launch.cuh"
#include "memory.cuh"
#include "policy.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// Bytes of DeviceSelect's temporary storage for n indices of type Index under keep.
template <class Index, class Keep>
std::size_t compact_indices_bytes(std::size_t n, Keep keep, cudaStream_t stream) {
  std::size_t bytes = 0;
  check(::cub::DeviceSelect::If(nullptr, bytes, ::thrust::counting_iterator<Index>(0), static_cast<Index*>(nullptr),
                                static_cast<std::uint64_t*>(nullptr), static_cast<std::int64_t>(n), keep, stream),
        "compact", "cub::DeviceSelect::If (size query)");
  return bytes;
}

/// out[0, *count) = the i in [0, n) with keep(i), ascending; temp: compact_indices_bytes.
template <class Index, class Keep>
void compact_indices(void* temp, std::size_t temp_bytes, std::size_t n, Keep keep, Index* out, std::uint64_t* count,
                     cudaStream_t stream) {
  if (n == 0) {  // write the count ourselves: whether CUB does for an empty input is not promised
    check(cudaMemsetAsync(count, 0, sizeof(std::uint64_t), stream), "compact", "cudaMemsetAsync");
    return;
  }
  check(::cub::DeviceSelect::If(temp, temp_bytes, ::thrust::counting_iterator<Index>(0), out, count,
                                static_cast<std::int64_t>(n), keep, stream),
        "compact", "cub::DeviceSelect::If");
}

/// values[j] = x[indices[j]] for j < *count.
template <class T, class Index>
__global__ void gather_kernel(const T* x, const Index* indices, const std::uint64_t* count, T* values) {
  const std::size_t n = static_cast<std::size_t>(*count);
  for (std::size_t j = global_thread(); j < n; j += grid_threads()) values[j] = x[indices[j]];
}

/// values[j] = x[indices[j]] for j < *count (at most capacity).
template <class T, class Index>
void gather(const par_t& policy, const T* x, const Index* indices, const std::uint64_t* count, T* values,
            std::size_t capacity) {
  if (capacity == 0) return;
  gather_kernel<<<elementwise_grid(capacity),
                  tuning::elementwise::block_threads, 0, policy.stream>>>(x, indices, count, values);
  check_launch("gather", "gather_kernel");
}

}  // namespace gradcomp::cuda::detail
