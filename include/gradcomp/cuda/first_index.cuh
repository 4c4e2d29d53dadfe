#pragma once
// The first index where a condition holds, on the device: what the checks need that must
// name the first bad entry, as the reference names it (error feedback's non-finite gradient,
// the quantizers' rejected input).
#include <cuda_runtime_api.h>

#include <cstddef>

#include "error.cuh"
#include "launch.cuh"
#include "policy.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// *first = min(*first, every i < n with where(i)) (atomicMin). A `where` with active(), read
/// on the device, makes the pass do nothing when it is false (a check needed only when an
/// earlier kernel found something).
template <class Where>
__global__ void first_index_kernel(std::size_t n, Where where, unsigned long long* first) {
  if constexpr (requires { where.active(); })
    if (!where.active()) return;
  for (std::size_t i = global_thread(); i < n; i += grid_threads())
    if (where(i)) atomicMin(first, static_cast<unsigned long long>(i));
}

/// Launches first_index_kernel on the policy's stream (nothing for n = 0).
template <class Where>
void first_index_async(const par_t& policy, std::size_t n, Where where, unsigned long long* first, const char* who) {
  if (n == 0) return;
  first_index_kernel<<<elementwise_grid(n), tuning::elementwise::block_threads, 0, policy.stream>>>(n, where, first);
  check_launch(who, "first_index_kernel");
}

}  // namespace gradcomp::cuda::detail
