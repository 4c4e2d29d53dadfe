#pragma once
// Parallel, vectorised versions of detail/reduce.hpp's sums, bit-identical to them.
//
// The reference order (blocks of 4096, element i of a block in double lane i % 8, a fixed
// fold, block sums left to right) maps directly onto SIMD: with N double lanes per vector
// (8 on AVX-512, 4 on AVX2), 8 / N accumulators hold the 8 lanes, and loading 8 elements at
// a time from the block start keeps element i in lane i % 8. Each lane is still a strict
// left-to-right chain, so a block sum's speed is bound by the add latency; four blocks are
// summed side by side to hide it. Threads compute block sums of whole chunks; the block
// sums are then added in order on the calling thread.
#include <array>
#include <cmath>
#include <cstddef>
#include <span>
#include <vector>

#include "../detail/reduce.hpp"
#include "../detail/strict_fp.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "simd.hpp"

namespace gradcomp::cpu::detail {

/// Which function of x_i a reduction sums.
enum class summand { abs, square };

template <summand F, class T>
double summand_of(T v) noexcept {
  const double w = static_cast<double>(v);
  if constexpr (F == summand::abs)
    return std::fabs(w);
  else
    return w * w;
}

/// The reference fold of the eight lanes.
inline double fold_lanes(const std::array<double, 8>& lane) noexcept {
  return ((lane[0] + lane[4]) + (lane[2] + lane[6])) + ((lane[1] + lane[5]) + (lane[3] + lane[7]));
}

#if GRADCOMP_CPU_SIMD
namespace hn = simd::hn;

/// f(x[0..8)) as 8 / N double vectors, in lane order.
template <summand F, class T, class DD>
HWY_INLINE hn::Vec<DD> summand_vector(DD dd, const T* p) {
  if constexpr (sizeof(T) == 4) {
    const hn::Rebind<float, DD> df;
    const auto w = hn::PromoteTo(dd, hn::LoadU(df, p));
    if constexpr (F == summand::abs) return hn::Abs(w);
    else return hn::Mul(w, w);
  } else {
    const auto w = hn::LoadU(dd, p);
    if constexpr (F == summand::abs) return hn::Abs(w);
    else return hn::Mul(w, w);
  }
}

/// Sums of f over Count (1 to 4) blocks of n elements (n <= reduction_block) starting at
/// p, p + stride, ..., written to out[0..Count) in the reference lane order; the blocks'
/// lane chains interleave to hide the add latency.
template <summand F, class T, std::size_t Count>
GRADCOMP_NO_FP_CONTRACT void block_sums_simd(const T* p, std::size_t n, std::size_t stride, double* out) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  const hn::CappedTag<double, 8> dd;
  constexpr std::size_t N = hn::MaxLanes(dd);
  constexpr std::size_t V = 8 / N;  // vectors per 8 lanes
  static_assert(N * V == 8);
  hn::Vec<decltype(dd)> acc[Count][V];
  for (std::size_t b = 0; b < Count; ++b)
    for (std::size_t v = 0; v < V; ++v) acc[b][v] = hn::Zero(dd);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (std::size_t b = 0; b < Count; ++b)
      for (std::size_t v = 0; v < V; ++v)
        acc[b][v] = hn::Add(acc[b][v], summand_vector<F>(dd, p + b * stride + i + v * N));
  for (std::size_t b = 0; b < Count; ++b) {
    std::array<double, 8> lane;
    for (std::size_t v = 0; v < V; ++v) hn::StoreU(acc[b][v], dd, lane.data() + v * N);
    for (std::size_t j = i; j < n; ++j) lane[j % 8] += summand_of<F>(p[b * stride + j]);
    out[b] = fold_lanes(lane);
  }
}
#endif

/// out[s] = the reference block_sum of f over x[s * stride, s * stride + n) for s < count;
/// n <= reduction_block. (Contiguous blocks are stride = n; the sign compressors' per-block
/// scales use any stride.)
template <summand F, class T>
void strided_block_sums(const T* x, std::size_t count, std::size_t stride, std::size_t n, double* out) {
  std::size_t s = 0;
#if GRADCOMP_CPU_SIMD
  for (; s + 4 <= count; s += 4) block_sums_simd<F, T, 4>(x + s * stride, n, stride, out + s);
  for (; s < count; ++s) block_sums_simd<F, T, 1>(x + s * stride, n, stride, out + s);
#else
  for (; s < count; ++s)
    out[s] = gradcomp::detail::block_sum(std::span<const T>(x + s * stride, n),
                                         [](T v) { return summand_of<F>(v); });
#endif
}

/// The reference block sums of f over x[0..n): out[b] = sum of block b.
template <summand F, class T>
void block_sums(const T* x, std::size_t n, double* out) {
  constexpr std::size_t B = gradcomp::detail::reduction_block;
  const std::size_t full = n / B;
  strided_block_sums<F>(x, full, B, B, out);
  if (n % B != 0) strided_block_sums<F>(x + full * B, 1, B, n % B, out + full);
}

/// The reference ordered_sum of f over x (detail/reduce.hpp), computed in parallel.
template <summand F, class T>
double ordered_sum(const exec::par_t& policy, std::span<const T> x) {
  constexpr std::size_t B = gradcomp::detail::reduction_block;
  constexpr std::size_t chunk = 16 * B;
  const std::size_t blocks = chunk_count(x.size(), B);
  double total = 0.0;
  if (!runs_in_parallel(policy, x.size(), chunk)) {
    std::array<double, 4> sums;
    for (std::size_t begin = 0; begin < x.size(); begin += 4 * B) {
      const std::size_t n = x.size() - begin < 4 * B ? x.size() - begin : 4 * B;
      block_sums<F>(x.data() + begin, n, sums.data());
      for (std::size_t b = 0; b < chunk_count(n, B); ++b) total += sums[b];
    }
    return total;
  }
  std::vector<double> sums(blocks);
  for_each_chunk(policy, x.size(), chunk, [&](std::size_t, std::size_t begin, std::size_t end) {
    block_sums<F>(x.data() + begin, end - begin, sums.data() + begin / B);
  });
  for (const double s : sums) total += s;
  return total;
}

/// detail::l1_norm on exec::par.
template <class T>
double l1_norm(const exec::par_t& policy, std::span<const T> x) {
  return ordered_sum<summand::abs>(policy, x);
}

/// detail::squared_norm on exec::par.
template <class T>
double squared_norm(const exec::par_t& policy, std::span<const T> x) {
  return ordered_sum<summand::square>(policy, x);
}

/// detail::mean_abs on exec::par (the rare overflow rescue runs the reference).
template <class T>
double mean_abs(const exec::par_t& policy, std::span<const T> x) {
  const double sum = l1_norm(policy, x);
  if (!std::isinf(sum)) return sum / static_cast<double>(x.size());
  return gradcomp::detail::mean_abs(x);
}

/// detail::l2_norm on exec::par (the rare overflow/underflow rescue runs the reference).
template <class T>
double l2_norm(const exec::par_t& policy, std::span<const T> x) {
  const double sum = squared_norm(policy, x);
  if (std::isnan(sum) || (sum >= 0x1p-900 && !std::isinf(sum))) return std::sqrt(sum);
  return gradcomp::detail::l2_norm(x);
}

}  // namespace gradcomp::cpu::detail
