#pragma once
// Tensor lists on exec::par (see multi_tensor.hpp for the semantics).
//
// Whole model: top_k and hard_threshold read the tensors in place through a segmented view
// (no concatenated copy): the sample, the candidate pass and the exact fallback all run over
// the concatenation's index space, chunks crossing tensor boundaries where they fall.
//
// Layer-wise: a model has many small tensors (biases, norms), and a parallel kernel launched
// per tensor would cost more in set-up than the tensor's work. Tensors are spread over the
// threads instead, each compressed by the calling thread's SIMD kernels (tensors below the
// policy's min_parallel_size never launch nested parallel work; large ones still may).
// Stateless compressors are shared; a seeded compressor is copied per tensor with step
// step0 + i, exactly the step the sequential loop would use, and ends at step0 + n. On a
// failure the lowest failing tensor's error is thrown, as the sequential loop would
// (compress_layers then puts a seeded compressor's step back to step0 on every back end).
#include <atomic>
#include <concepts>
#include <cstddef>
#include <exception>
#include <mutex>
#include <span>
#include <type_traits>
#include <utility>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "../compress.hpp"
#include "../compressors/hard_threshold.hpp"
#include "../compressors/top_k.hpp"
#include "../concepts.hpp"
#include "../multi_tensor.hpp"
#include "../payload/sparse.hpp"
#include "compact.hpp"
#include "policy.hpp"
#include "segmented.hpp"
#include "top_k.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

/// A compressor whose sequential reference is const: calling it changes nothing, so threads
/// can share it.
template <class C, class T, class P>
concept stateless_compressor =
    requires(const std::remove_cvref_t<C>& c, std::span<const T> x, P& out) { c.compress(exec::seq, x, out); };

/// Compressors layer-wise compression may run on several tensors at once.
template <class C, class T, class P>
concept layerwise_parallel =
    std::copy_constructible<std::remove_cvref_t<C>> &&
    (stateless_compressor<C, T, P> || (seeded_compressor<C> && !std::is_const_v<std::remove_reference_t<C>>));

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// Whole-model top_k on exec::par: bit-identical to top_k on the concatenation.
template <std::floating_point T, class Index>
void compress_model_with(const exec::par_t& policy, const top_k& c, std::span<const std::span<const T>> tensors,
                         sparse_vector<T, Index>& out) {
  c.validate();
  const std::size_t d = gradcomp::detail::total_size(tensors, "top_k");
  gradcomp::detail::check_index_fits<Index>(d, "top_k");
  cpu::detail::prepare_for_overwrite(out, d);
  cpu::detail::top_k_into(policy, cpu::detail::segmented_input<T>(tensors), c.k, out);
}

/// Whole-model hard_threshold on exec::par: bit-identical to hard_threshold on the
/// concatenation.
template <std::floating_point T, class Index>
void compress_model_with(const exec::par_t& policy, const hard_threshold& c,
                         std::span<const std::span<const T>> tensors, sparse_vector<T, Index>& out) {
  c.validate();
  const std::size_t d = gradcomp::detail::total_size(tensors, "hard_threshold");
  gradcomp::detail::check_index_fits<Index>(d, "hard_threshold");
  cpu::detail::prepare_for_overwrite(out, d);
  cpu::detail::compact_at_least(policy, cpu::detail::segmented_input<T>(tensors),
                                cpu::detail::threshold_key<T>(c.lambda), out.indices, out.values);
}

/// Layer-wise compression on exec::par: outs[i] = c(tensors[i]), tensors spread over the
/// threads. Same results (and final step of a seeded compressor) as the sequential loop.
template <class C, std::floating_point T, class P>
  requires cpu::detail::layerwise_parallel<C, T, P>
void compress_layers_with(const exec::par_t& policy, C& c, std::span<const std::span<const T>> tensors,
                          std::span<P> outs) {
  const std::size_t n = tensors.size();
  std::size_t total = 0;
  for (const std::span<const T> t : tensors) total += t.size();
  if (n <= 1 || total < policy.min_parallel_size) {  // not worth waking the workers
    for (std::size_t i = 0; i < n; ++i) gradcomp::compress(policy, c, tensors[i], outs[i]);
    return;
  }
  // A failing tensor does not cancel the others: the error thrown is the lowest failing
  // index's, the one the sequential loop would throw (tensors past a known failure are
  // skipped, as that loop would never reach them).
  std::mutex failure_mutex;
  std::size_t first_failure = n;
  std::exception_ptr failure;
  std::atomic<std::size_t> failed_at{n};
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, n), [&](const tbb::blocked_range<std::size_t>& r) {
    for (std::size_t i = r.begin(); i < r.end() && i < failed_at.load(std::memory_order_relaxed); ++i) {
      try {
        if constexpr (cpu::detail::stateless_compressor<C, T, P>) {
          gradcomp::compress(policy, std::as_const(c), tensors[i], outs[i]);
        } else {
          std::remove_cvref_t<C> mine = c;
          mine.step = c.step + i;  // the step the sequential loop would be at
          gradcomp::compress(policy, mine, tensors[i], outs[i]);
        }
      } catch (...) {
        const std::lock_guard<std::mutex> lock(failure_mutex);
        if (i < first_failure) {
          first_failure = i;
          failure = std::current_exception();
          failed_at.store(i, std::memory_order_relaxed);
        }
      }
    }
  });
  if (failure) std::rethrow_exception(failure);                            // step unchanged
  if constexpr (!cpu::detail::stateless_compressor<C, T, P>) c.step += n;  // only once all succeeded
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
