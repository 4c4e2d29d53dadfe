#pragma once
// Whole-model compression on the GPU: gc::compress_model(gc::cuda::par, c, tensors, out) for
// top_k and hard_threshold, c applied to the concatenation of a list of device tensors
// (indices count over the concatenation, tensor 0 first): the entries of exec::seq's
// compress_model.
//
// The tensors are copied into the workspace, one launch per tuning::multi_tensor::batch
// tensors, their pointers and sizes passed as kernel parameters: nothing is uploaded, so the
// call stays asynchronous and can be captured in a CUDA graph. For Top-k the copy is the
// select's first digit pass (it counts each element's top digit as it copies it), so a model
// costs one extra write of its d elements over one call on a contiguous input.
//
// Other compressors have no whole-model kernel on this back end, and compress_model does not
// compile for them: the reference would concatenate on the host, reading device memory.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>

#include "../backend.hpp"
#include "../compressors/hard_threshold.hpp"
#include "../compressors/top_k.hpp"
#include "../detail/bits.hpp"
#include "../multi_tensor.hpp"
#include "compact.cuh"
#include "error.cuh"
#include "hard_threshold.cuh"
#include "launch.cuh"
#include "memory.cuh"
#include "policy.cuh"
#include "sparse_vector.cuh"
#include "top_k.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// Up to tuning::multi_tensor::batch non-empty tensors, by value (a kernel parameter).
template <class T>
struct tensor_batch {
  static constexpr int capacity = tuning::multi_tensor::batch;
  const T* data[capacity];
  std::size_t offset[capacity];  // where the tensor starts in the concatenation
  std::size_t size[capacity];
  int count;
};

/// joined[offset_t + i] = tensor_t[i] for the batch's tensors; with Histogram, also the
/// select's digit pass over the copied keys (block_digit_counts, top_k.cuh).
template <class T, bool Histogram>
__global__ void __launch_bounds__(tuning::radix_select::block_threads)
    concatenate_kernel(const tensor_batch<T> batch, T* joined, const select_state* state, unsigned long long* hist) {
  __shared__ unsigned counts[radix_buckets];
  const block_digit_counts block{counts};
  gradcomp::detail::radix_progress p{};
  if constexpr (Histogram) {
    block.zero();
    p = state->progress;
  }
  for (int t = 0; t < batch.count; ++t) {
    const T* src = batch.data[t];
    T* dst = joined + batch.offset[t];
    for (std::size_t i = global_thread(); i < batch.size[t]; i += grid_threads()) {
      const T v = src[i];
      dst[i] = v;
      if constexpr (Histogram) block.count(magnitude_key(v), p);
    }
  }
  if constexpr (Histogram) block.flush(hist);
}

/// Copies the tensors, in order, into joined (with Histogram: and counts the first digit).
template <class T, bool Histogram>
void concatenate(const par_t& policy, std::span<const std::span<const T>> tensors, T* joined,
                 const select_state* state = nullptr, unsigned long long* hist = nullptr) {
  tensor_batch<T> batch{};
  std::size_t offset = 0, batch_elements = 0;
  const auto launch = [&] {
    if (batch.count == 0) return;
    concatenate_kernel<T, Histogram>
        <<<grid_for(batch_elements, tuning::radix_select::block_threads, tuning::radix_select::max_blocks),
           tuning::radix_select::block_threads, 0, policy.stream>>>(batch, joined, state, hist);
    check_launch("compress_model", "concatenate_kernel");
    batch.count = 0;
    batch_elements = 0;
  };
  for (const std::span<const T> t : tensors) {
    if (t.empty()) continue;
    batch.data[batch.count] = t.data();
    batch.offset[batch.count] = offset;
    batch.size[batch.count] = t.size();
    ++batch.count;
    offset += t.size();
    batch_elements += t.size();
    if (batch.count == tensor_batch<T>::capacity) launch();
  }
  launch();
}

/// The select's first pass for a list of tensors: concatenate them into the select's input
/// storage while counting their first digit (radix_select's FirstPass).
template <class T>
struct concatenating_histogram {
  std::span<const std::span<const T>> tensors;
  magnitude_keys<T> sample() const { return {nullptr}; }
  magnitude_keys<T> operator()(const par_t& policy, std::size_t, const select_state* state, unsigned long long* hist,
                               void* input) const {
    concatenate<T, true>(policy, tensors, static_cast<T*>(input), state, hist);
    return {static_cast<const T*>(input)};
  }
};

template <class C>
inline constexpr bool has_model_kernel_v =
    std::same_as<std::remove_const_t<C>, top_k> || std::same_as<std::remove_const_t<C>, hard_threshold>;

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// out = top_k(concatenation of tensors), the tensors in device memory.
template <std::floating_point T, class Index>
void compress_model_with(const par_t& policy, const top_k& c, std::span<const std::span<const T>> tensors,
                         sparse_vector<T, Index>& out) {
  c.validate();
  const std::size_t d = gradcomp::detail::total_size(tensors, "compress_model");
  gradcomp::detail::check_index_fits<Index>(d, "top_k");
  const std::size_t kept = std::min(c.k, d);
  out.prepare(d, kept);
  if (kept < d) {
    const auto joined = detail::radix_select(policy, d, kept, d * sizeof(T), detail::concatenating_histogram<T>{tensors},
                                             out.indices(), out.count());
    detail::gather(policy, joined.x, out.indices(), out.count(), out.values(), kept);
    return;
  }
  if (d == 0) {
    detail::check(cudaMemsetAsync(out.count(), 0, sizeof(std::uint64_t), policy.stream), "compress_model",
                  "cudaMemsetAsync");
    return;
  }
  T* joined = static_cast<T*>(policy.workspace().reserve(d * sizeof(T), policy.stream));
  detail::concatenate<T, false>(policy, tensors, joined);
  detail::keep_all_kernel<<<detail::elementwise_grid(d), tuning::elementwise::block_threads, 0, policy.stream>>>(
      joined, d, out.indices(), out.values(), out.count());
  detail::check_launch("compress_model", "keep_all_kernel");
}

/// out = hard_threshold(concatenation of tensors), the tensors in device memory.
template <std::floating_point T, class Index>
void compress_model_with(const par_t& policy, const hard_threshold& c, std::span<const std::span<const T>> tensors,
                         sparse_vector<T, Index>& out) {
  c.validate();
  const std::size_t d = gradcomp::detail::total_size(tensors, "compress_model");
  gradcomp::detail::check_index_fits<Index>(d, "hard_threshold");
  out.prepare(d, d);
  const auto bound = gradcomp::detail::threshold_key<T>(c.lambda);
  const std::size_t select_bytes = detail::compact_indices_bytes<Index>(d, detail::key_at_least<T, Index>{nullptr, bound},
                                                                       policy.stream);
  detail::temp_layout layout;
  const std::size_t joined_slot = layout.add(d * sizeof(T));
  const std::size_t select_slot = layout.add(select_bytes);
  void* base = policy.workspace().reserve(layout.total(), policy.stream);
  T* joined = static_cast<T*>(layout.at(base, joined_slot));
  detail::concatenate<T, false>(policy, tensors, joined);
  detail::compact_indices(layout.at(base, select_slot), select_bytes, d, detail::key_at_least<T, Index>{joined, bound},
                          out.indices(), out.count(), policy.stream);
  detail::gather(policy, joined, out.indices(), out.count(), out.values(), d);
}

/// Any other compressor: no whole-model kernel on the GPU (see the top of this header).
template <class C, class T, class Out>
  requires(!detail::has_model_kernel_v<C>)
void compress_model_with(const par_t&, C&, std::span<const std::span<const T>>, Out&) {
  static_assert(gradcomp::detail::always_false<C>,
                "gc::compress_model on gc::cuda::par has kernels for top_k and hard_threshold only; for another "
                "compressor, concatenate the tensors in device memory and call gc::compress");
}

}  // namespace gradcomp::cuda
