#pragma once
// hard_threshold on exec::par: one ordered compaction pass, and the fused error-feedback
// step (one pass over g and e that writes the new residual and the message).
#include <array>
#include <concepts>
#include <cstddef>
#include <span>
#include <vector>

#include "../compressors/hard_threshold.hpp"
#include "../sparse.hpp"
#include "compact.hpp"
#include "policy.hpp"
#include "reduce.hpp"
#include "simd.hpp"

namespace gradcomp::cpu::detail {

/// The fused error-feedback threshold step on one reduction block (n <= 4096 elements,
/// starting at a block boundary):
///   p = e + scale * g (two roundings; e + g when unit_scale);
///   p is kept iff magnitude_key(p) >= bound: its offset and value go to out;
///   e_new = kept ? p + (-1) * p : p, exactly what the reference's decompress_add(-1) leaves;
///   *norm = the block's sum of e_new^2 in the reference lane order.
/// The squares are summed in registers as e_new is produced: a separate pass, even over
/// cached data, cost 15% of the step; in the loop it hides under the memory traffic.
/// Returns the number kept.
template <class T>
GRADCOMP_NO_FP_CONTRACT std::size_t feedback_threshold_block(const T* e, const T* g, T scale, bool unit_scale,
                                                             std::size_t n, uint_of<T> bound, T* e_new,
                                                             compact_buffer<T>& out, double* norm) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t count = 0;
  std::size_t i = 0;
  std::array<double, 8> lane{};
#if GRADCOMP_CPU_SIMD
  namespace hn = simd::hn;
  const hn::ScalableTag<T> d;
  const hn::RebindToSigned<decltype(d)> di;
  const hn::RebindToUnsigned<decltype(d)> du;
  using S = hn::TFromD<decltype(di)>;
  constexpr std::size_t L = hn::MaxLanes(d);
  const hn::CappedTag<double, 8> dd;
  constexpr std::size_t N = hn::MaxLanes(dd);  // double lanes per vector
  constexpr std::size_t V = 8 / N;             // vectors holding the 8 reference lanes
  static_assert(N * V == 8 && (sizeof(T) == 8 ? L == N : L == 2 * N));
  hn::Vec<decltype(dd)> acc[V];
  for (auto& a : acc) a = hn::Zero(dd);
  const auto magnitude = hn::Set(di, static_cast<S>(~uint_of<T>{0} >> 1));
  const auto below = hn::Set(di, static_cast<S>(bound));
  const auto vscale = hn::Set(d, scale);
  const auto minus_one = hn::Set(d, T(-1));
  for (; i + L <= n; i += L) {
    const auto gv = hn::LoadU(d, g + i);
    const auto p = hn::Add(hn::LoadU(d, e + i), unit_scale ? gv : hn::Mul(vscale, gv));
    const auto keep = hn::Not(hn::Lt(hn::And(hn::BitCast(di, p), magnitude), below));
    auto kept_p = p;
    if (!hn::AllFalse(di, keep)) {
      const auto keep_d = hn::RebindMask(d, keep);
      kept_p = hn::IfThenElse(keep_d, hn::Add(p, hn::Mul(minus_one, p)), p);
      // Compress into a register, then store: compress-to-memory is microcoded on Zen 4/5.
      hn::StoreU(hn::Compress(p, keep_d), d, out.values.data() + count);
      hn::StoreU(hn::Compress(hn::Iota(du, static_cast<uint_of<T>>(i)), hn::RebindMask(du, keep)), du,
                 out.offsets.data() + count);
      count += hn::CountTrue(di, keep);
    }
    hn::StoreU(kept_p, d, e_new + i);
    // Element i of the block belongs to reference lane i % 8, i.e. accumulator (i / N) % V.
    const std::size_t a = (i / N) % V;
    if constexpr (sizeof(T) == 4) {
      const hn::Half<decltype(d)> dh;
      const auto lo = hn::PromoteTo(dd, hn::LowerHalf(dh, kept_p));
      const auto hi = hn::PromoteTo(dd, hn::UpperHalf(dh, kept_p));
      acc[a] = hn::Add(acc[a], hn::Mul(lo, lo));
      acc[(a + 1) % V] = hn::Add(acc[(a + 1) % V], hn::Mul(hi, hi));
    } else {
      const auto w = hn::BitCast(dd, kept_p);
      acc[a] = hn::Add(acc[a], hn::Mul(w, w));
    }
  }
  for (std::size_t v = 0; v < V; ++v) hn::StoreU(acc[v], dd, lane.data() + v * N);
#endif
  for (; i < n; ++i) {
    const T p = unit_scale ? e[i] + g[i] : e[i] + scale * g[i];
    T kept_p = p;
    if (magnitude_key(p) >= bound) {
      out.offsets[count] = static_cast<uint_of<T>>(i);
      out.values[count] = p;
      ++count;
      kept_p = p + T(-1) * p;
    }
    e_new[i] = kept_p;
    const double w = static_cast<double>(kept_p);
    lane[i % 8] += w * w;
  }
  *norm = fold_lanes(lane);
  return count;
}

}  // namespace gradcomp::cpu::detail

namespace gradcomp::exec {

/// C(x) on exec::par; bit-identical to the exec::seq reference.
template <std::floating_point T, class Index>
void compress_with(const exec::par_t& policy, const hard_threshold& c, std::span<const T> x,
                   sparse_vector<T, Index>& out) {
  c.validate();
  detail::check_index_fits<Index>(x.size(), "hard_threshold");
  out.reset(x.size());
  cpu::detail::compact_at_least(policy, x, cpu::detail::threshold_key<T>(c.lambda), out.indices, out.values);
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
  const bool unit_scale = scale == T(1);
  constexpr std::size_t B = gradcomp::detail::reduction_block;
  static_assert(compact_block == B && compact_chunk % B == 0, "norm blocks must align with compaction blocks");
  std::vector<double> block_norms(chunk_count(d, B));
  out.reset(d);
  collect_sparse<T, Index>(
      policy, d, chunk_count(d, compact_chunk),
      [&](std::size_t chunk, const sparse_sink<T, Index>& sink) {
        compact_buffer<T> buffer;
        const std::size_t first = chunk * compact_chunk;
        const std::size_t end = std::min(d, first + compact_chunk);
        for (std::size_t begin = first; begin < end; begin += B) {
          const std::size_t n = std::min(B, end - begin);
          const std::size_t kept = feedback_threshold_block(e.data() + begin, g.data() + begin, scale, unit_scale, n,
                                                            bound, e_new.data() + begin, buffer, &block_norms[begin / B]);
          sink.append(begin, buffer, kept);
        }
      },
      out.indices, out.values);
  double total = 0.0;
  for (const double s : block_norms) total += s;
  return total;
}

}  // namespace gradcomp::exec
