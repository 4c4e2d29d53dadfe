#pragma once
// hard_threshold on the GPU: keep every x_i with magnitude_key(x_i) >= threshold_key(lambda)
// (the reference's !(|x_i| < lambda), NaN kept), by ordered compaction. The output size is
// data-dependent: the payload has room for d entries and its count stays on the device, so
// the call does not synchronise; reading the count (nnz(), to_host()) does.
#include <cuda_runtime_api.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../compressors/hard_threshold.hpp"
#include "../detail/bits.hpp"
#include "compact.cuh"
#include "payload.cuh"
#include "policy.cuh"
#include "sparse_vector.cuh"

namespace gradcomp::cuda::detail {

/// Keeps index i when x_i's magnitude key is at least the bound.
template <class T, class Index>
struct key_at_least {
  const T* x;
  gradcomp::detail::uint_of<T> bound;
  __device__ bool operator()(Index i) const { return gradcomp::detail::magnitude_key(x[i]) >= bound; }
};

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// out = hard_threshold(x), x in device memory; the same entries as exec::seq.
template <std::floating_point T, class Index>
void compress_with(const par_t& policy, const hard_threshold& c, std::span<const T> x, sparse_vector<T, Index>& out) {
  c.validate();
  gradcomp::detail::check_index_fits<Index>(x.size(), "hard_threshold");
  const std::size_t d = x.size();
  out.prepare(d, d);
  const detail::key_at_least<T, Index> keep{x.data(), gradcomp::detail::threshold_key<T>(c.lambda)};
  const std::size_t bytes = detail::compact_indices_bytes<Index>(d, keep, policy.stream);
  void* temp = policy.workspace().reserve(bytes, policy.stream);
  detail::compact_indices(temp, bytes, d, keep, out.indices(), out.count(), policy.stream);
  detail::gather(policy, x.data(), out.indices(), out.count(), out.values(), d);
}

template <class T>
struct device_payload<hard_threshold, T> {
  using type = sparse_vector<T>;
};

}  // namespace gradcomp::cuda
