#pragma once
// random_k and unbiased_random_k on the GPU: the k indices with the smallest hashes h(i) =
// counter_stream(seed, step).bits(i) (detail/random.hpp, the definition every back end
// shares), found by the radix select of top_k.cuh on the keys ~h(i) (the k largest of ~h are
// the k smallest of h; hashes are distinct, so there are no ties to break), then the values
// gathered with the reference's rule (detail::random_k_value: x_i, or d/k * x_i saturated).
// The same indices and values as exec::seq; the step advances as there. Eight 8-bit digit
// passes over the hashes, each recomputing them: compute, not memory, bounds it. Nothing
// waits for the host.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../compressors/random_k.hpp"
#include "../detail/bits.hpp"
#include "../detail/random.hpp"
#include "decompress.cuh"
#include "error.cuh"
#include "launch.cuh"
#include "payload.cuh"
#include "policy.cuh"
#include "seeded_sparse_vector.cuh"
#include "top_k.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// Keys for the select: ~h(i), so that the largest keys are the smallest hashes.
struct complemented_hash_keys {
  using key_type = std::uint64_t;
  gradcomp::detail::counter_stream stream;
  __device__ key_type operator()(std::size_t i) const { return ~gradcomp::detail::random_k_hash(stream, i); }
};

/// values[j] = random_k_value(x[indices[j]], scale) for j < n.
template <bool Unbiased, class T, class Index>
__global__ void random_k_values_kernel(const T* x, const Index* indices, std::size_t n, T scale, T* values) {
  for (std::size_t j = global_thread(); j < n; j += grid_threads())
    values[j] = gradcomp::detail::random_k_value<Unbiased>(x[indices[j]], scale);
}

/// Every index kept (k >= d): indices[i] = i, the values by the rule, count = d.
template <bool Unbiased, class T, class Index>
__global__ void random_k_all_kernel(const T* x, std::size_t n, T scale, Index* indices, T* values,
                                    std::uint64_t* count) {
  for (std::size_t i = global_thread(); i < n; i += grid_threads()) {
    indices[i] = static_cast<Index>(i);
    values[i] = gradcomp::detail::random_k_value<Unbiased>(x[i], scale);
  }
  if (global_thread() == 0) *count = n;
}

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// out = random_k(x) or unbiased_random_k(x), x in device memory; then c.step advances.
template <bool Unbiased, std::floating_point T, class Index>
void compress_with(const par_t& policy, basic_random_k<Unbiased>& c, std::span<const T> x,
                   seeded_sparse_vector<T, Index>& out) {
  constexpr const char* where = basic_random_k<Unbiased>::name.data();
  c.validate();
  gradcomp::detail::check_index_fits<Index>(x.size(), where);
  const std::size_t d = x.size();
  const std::size_t kept = std::min(c.k, d);
  // The reference's scale d / k, rounded once to T.
  const T scale = Unbiased && kept > 0 ? static_cast<T>(static_cast<double>(d) / static_cast<double>(kept)) : T(1);
  out.prepare(d, kept, c.seed, c.step);
  if (kept == 0) {
    detail::check(cudaMemsetAsync(out.count(), 0, sizeof(std::uint64_t), policy.stream), where, "cudaMemsetAsync");
  } else if (kept == d) {  // every index, in order (no draws, as in the reference)
    detail::random_k_all_kernel<Unbiased><<<detail::elementwise_grid(d), tuning::elementwise::block_threads, 0,
                                            policy.stream>>>(x.data(), d, scale, out.indices(), out.values(),
                                                             out.count());
    detail::check_launch(where, "random_k_all_kernel");
  } else {
    const detail::complemented_hash_keys keys{gradcomp::detail::counter_stream(c.seed, c.step)};
    detail::radix_select(policy, d, kept, 0, detail::histogram_of<detail::complemented_hash_keys>{keys}, out.indices(),
                         out.count());
    detail::random_k_values_kernel<Unbiased><<<detail::elementwise_grid(kept), tuning::elementwise::block_threads, 0,
                                               policy.stream>>>(x.data(), out.indices(), kept, scale, out.values());
    detail::check_launch(where, "random_k_values_kernel");
  }
  ++c.step;
}

/// dense += alpha * decode(p), dense in device memory of p.dim() elements.
template <std::floating_point T, class Index>
void decompress_add_with(const par_t& policy, const seeded_sparse_vector<T, Index>& p, std::span<T> dense, T alpha) {
  decompress_add_with(policy, p.entries(), dense, alpha);
}

template <bool Unbiased, class T>
struct device_payload<basic_random_k<Unbiased>, T> {
  using type = seeded_sparse_vector<T>;
};

}  // namespace gradcomp::cuda
