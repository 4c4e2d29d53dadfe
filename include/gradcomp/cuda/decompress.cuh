#pragma once
// decompress_add on the GPU: dense[i_j] = dense[i_j] + alpha * v_j (detail::add_scaled, two
// roundings) for the entries of a device sparse payload. Indices are distinct, so one thread
// per entry writes without conflicts and the result is the reference's. Payloads that send
// every element (sign, quantized) add their decoded elements with add_decoded.
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

/// dense[i] = add_scaled(dense[i], alpha, decoded(i)) for every i < n: the decompress_add of a
/// payload that sends every element (sign, quantized), decoded(i) being its element rule.
template <class T, class Decoded>
__global__ void add_decoded_kernel(std::size_t n, Decoded decoded, T* dense, T alpha) {
  for (std::size_t i = global_thread(); i < n; i += grid_threads())
    dense[i] = gradcomp::detail::add_scaled(dense[i], alpha, decoded(i));
}

/// The reference's check: dense has the payload's dimension.
inline void check_dense_size(std::size_t dense, std::size_t dim) {
  if (dense != dim) gradcomp::detail::fail("decompress_add", "dense size ", dense, " does not match payload dim ", dim);
}

/// dense += alpha * decoded over every element of a dense-coded payload of dimension dim.
template <class T, class Decoded>
void add_decoded(const par_t& policy, std::size_t dim, Decoded decoded, std::span<T> dense, T alpha) {
  check_dense_size(dense.size(), dim);
  if (dim == 0) return;
  add_decoded_kernel<<<elementwise_grid(dim), tuning::elementwise::block_threads, 0, policy.stream>>>(
      dim, decoded, dense.data(), alpha);
  check_launch("decompress_add", "add_decoded_kernel");
}

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// dense += alpha * decode(p), dense in device memory of p.dim() elements.
template <std::floating_point T, class Index>
void decompress_add_with(const par_t& policy, const sparse_vector<T, Index>& p, std::span<T> dense, T alpha) {
  detail::check_dense_size(dense.size(), p.dim());
  if (p.capacity() == 0) return;
  detail::scatter_add_kernel<<<detail::elementwise_grid(p.capacity()),
                               tuning::elementwise::block_threads, 0, policy.stream>>>(p.indices(), p.values(),
                                                                                        p.count(), dense.data(), alpha);
  detail::check_launch("decompress_add", "scatter_add_kernel");
}

}  // namespace gradcomp::cuda
