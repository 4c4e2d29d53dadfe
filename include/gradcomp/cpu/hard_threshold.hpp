#pragma once
// hard_threshold on exec::par: one ordered compaction pass, and the fused error-feedback
// step (one pass over g and e that writes the new residual, the message and ||e||^2).
#include <concepts>
#include <cstddef>
#include <span>
#include <vector>

#include "../compressors/hard_threshold.hpp"
#include "../detail/reduce.hpp"
#include "../payload/sparse.hpp"
#include "compact.hpp"
#include "kernel_types.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "reduce.hpp"
#include "simd.hpp"
#include "workspace.hpp"

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// C(x) on exec::par; bit-identical to the exec::seq reference.
template <std::floating_point T, class Index>
void compress_with(const exec::par_t& policy, const hard_threshold& c, std::span<const T> x,
                   sparse_vector<T, Index>& out) {
  c.validate();
  gradcomp::detail::check_index_fits<Index>(x.size(), "hard_threshold");
  cpu::detail::prepare_for_overwrite(out, x.size());
  cpu::detail::compact_at_least(policy, cpu::detail::segmented_input<T>(x), cpu::detail::threshold_key<T>(c.lambda),
                                out.indices, out.values);
}

/// The error-feedback step with hard_threshold fused into one pass: reads e and g, writes
/// e_new and out, and returns ||e_new||^2 in the reference summation order. Bit-identical
/// to the unfused reference (feedback_input, compress, decompress_add(-1), squared_norm).
template <std::floating_point T, class Index>
double feedback_step_with(const exec::par_t& policy, const hard_threshold& c, std::span<const T> e,
                          std::span<const T> g, T scale, std::span<T> e_new, sparse_vector<T, Index>& out) {
  using namespace cpu::detail;
  c.validate();
  gradcomp::detail::check_index_fits<Index>(e.size(), "hard_threshold");
  const std::size_t d = e.size();
  const auto bound = threshold_key<T>(c.lambda);
  constexpr std::size_t B = gradcomp::detail::reduction_block;
  static_assert(compact_block == B && compact_chunk % B == 0, "norm blocks must align with compaction blocks");
  pooled_array<double> block_norms(workspace_of(policy), chunk_count(d, B));
  cpu::detail::prepare_for_overwrite(out, d);
  collect_sparse<T, Index>(
      policy, d, chunk_count(d, compact_chunk),
      [&](std::size_t chunk, const sparse_sink<T, Index>& sink) {
        compact_buffer<T> buffer;
        const std::size_t first = chunk * compact_chunk;
        const std::size_t end = std::min(d, first + compact_chunk);
        cpu::simd::dispatch([&](auto tag) {
          for (std::size_t begin = first; begin < end; begin += B) {
            const feedback_block<T> in{e.data() + begin, g.data() + begin, scale, e_new.data() + begin};
            const std::size_t kept =
                feedback_threshold(tag, in, std::min(B, end - begin), bound, buffer, &block_norms[begin / B]);
            sink.append(begin, buffer, kept);
          }
        });
      },
      out.indices, out.values);
  return sum_of_blocks(block_norms.span());
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
