#pragma once
// decompress_add on the GPU: dense[i_j] = dense[i_j] + alpha * v_j (detail::add_scaled, two
// roundings) for the entries of a device sparse payload. Indices are distinct, so one thread
// per entry writes without conflicts and the result is the reference's.
#include <cuda_runtime_api.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../detail/element_rules.hpp"
#include "../error.hpp"
#include "error.cuh"
#include "launch.cuh"
#include "policy.cuh"
#include "sparse_vector.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

template <class T, class Index>
__global__ void scatter_add_kernel(const Index* indices, const T* values, const std::uint64_t* count, T* dense,
                                   T alpha) {
  const std::size_t n = static_cast<std::size_t>(*count);
  for (std::size_t j = global_thread(); j < n; j += grid_threads())
    dense[indices[j]] = gradcomp::detail::add_scaled(dense[indices[j]], alpha, values[j]);
}

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// dense += alpha * decode(p), dense in device memory of p.dim() elements.
template <std::floating_point T, class Index>
void decompress_add_with(const par_t& policy, const sparse_vector<T, Index>& p, std::span<T> dense, T alpha) {
  if (dense.size() != p.dim())
    gradcomp::detail::fail("decompress_add", "dense size ", dense.size(), " does not match payload dim ", p.dim());
  if (p.capacity() == 0) return;
  detail::scatter_add_kernel<<<detail::elementwise_grid(p.capacity()),
                               tuning::elementwise::block_threads, 0, policy.stream>>>(p.indices(), p.values(),
                                                                                        p.count(), dense.data(), alpha);
  detail::check_launch("decompress_add", "scatter_add_kernel");
}

}  // namespace gradcomp::cuda
