#pragma once
// decompress_add on exec::par: dense += alpha * decode(p) for every payload type, in
// parallel over disjoint ranges of dense, bit-identical to the payloads' own loops
// (dense[i] += alpha * value: two roundings, never fused).
//
// Every kernel first checks what the reference checks. When a check fails, the reference
// runs instead: it raises its own error before writing anything. Sparse payloads are also
// checked for strictly ascending indices (true of every payload a compressor makes): only
// then are the scatter's writes disjoint across threads. A hand-built payload with repeated
// indices is valid, and is added sequentially in its order, as the reference does.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "../detail/bits.hpp"
#include "../detail/scatter.hpp"
#include "../detail/strict_fp.hpp"
#include "../payload/dense.hpp"
#include "../payload/quantized.hpp"
#include "../payload/seeded_sparse.hpp"
#include "../payload/sign.hpp"
#include "../sparse.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "simd.hpp"

namespace gradcomp::cpu::detail {

/// Entries per chunk of the sparse loops, elements per chunk of the dense ones.
inline constexpr std::size_t scatter_chunk = std::size_t{1} << 14;
inline constexpr std::size_t decode_chunk = std::size_t{1} << 16;

/// True when indices[begin, end) are below dim and each is above the one before it
/// (indices[begin - 1] included, so that chunks together check the whole sequence).
template <class Index>
bool ascending_below(const Index* indices, std::size_t begin, std::size_t end, std::size_t dim) {
  if (begin == end) return true;
  bool ok = indices[begin] < dim && (begin == 0 || indices[begin] > indices[begin - 1]);
  for (std::size_t j = begin + 1; j < end; ++j) ok &= (indices[j] < dim) & (indices[j] > indices[j - 1]);
  return ok;
}

template <class T, class Index>
GRADCOMP_NO_FP_CONTRACT void scatter_add_run(const Index* indices, const T* values, std::size_t n, T* dense, T alpha) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  for (std::size_t j = 0; j < n; ++j) dense[indices[j]] += alpha * values[j];
}

/// detail::scatter_add on exec::par.
template <class T, class Index>
void scatter_add(const exec::par_t& policy, std::size_t dim, const std::vector<Index>& indices,
                 const std::vector<T>& values, std::span<T> dense, T alpha) {
  const std::size_t n = indices.size();
  if (dense.size() != dim || values.size() != n || !runs_in_parallel(policy, n, scatter_chunk, random_access_weight))
    return gradcomp::detail::scatter_add(dim, indices, values, dense, alpha);
  std::vector<unsigned char> ok(chunk_count(n, scatter_chunk));
  for_each_chunk(
      policy, n, scatter_chunk,
      [&](std::size_t c, std::size_t begin, std::size_t end) { ok[c] = ascending_below(indices.data(), begin, end, dim); },
      random_access_weight);
  if (std::find(ok.begin(), ok.end(), 0) != ok.end())  // an index >= dim (the reference throws), or a repeat
    return gradcomp::detail::scatter_add(dim, indices, values, dense, alpha);
  for_each_chunk(
      policy, n, scatter_chunk,
      [&](std::size_t, std::size_t begin, std::size_t end) {
        scatter_add_run(indices.data() + begin, values.data() + begin, end - begin, dense.data(), alpha);
      },
      random_access_weight);
}

/// dense[i] += alpha * values[i] for i < n.
template <class T>
GRADCOMP_NO_FP_CONTRACT void dense_add(const T* values, std::size_t n, T* dense, T alpha) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t i = 0;
#if GRADCOMP_CPU_SIMD
  namespace hn = simd::hn;
  const hn::ScalableTag<T> d;
  constexpr std::size_t N = hn::MaxLanes(d);
  const auto va = hn::Set(d, alpha);
  for (; i + N <= n; i += N)
    hn::StoreU(hn::Add(hn::LoadU(d, dense + i), hn::Mul(va, hn::LoadU(d, values + i))), d, dense + i);
#endif
  for (; i < n; ++i) dense[i] += alpha * values[i];
}

/// dense[i] += alpha * (scale * T(levels[i])) for i < n.
template <class T>
GRADCOMP_NO_FP_CONTRACT void levels_add(const std::int32_t* levels, std::size_t n, T scale, T* dense, T alpha) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t i = 0;
#if GRADCOMP_CPU_SIMD
  namespace hn = simd::hn;
  const hn::ScalableTag<T> d;
  const hn::Rebind<std::int32_t, decltype(d)> d32;
  constexpr std::size_t N = hn::MaxLanes(d);
  const auto va = hn::Set(d, alpha);
  const auto vs = hn::Set(d, scale);
  for (; i + N <= n; i += N) {
    hn::Vec<decltype(d)> level;  // exact conversions, as static_cast<T>
    if constexpr (sizeof(T) == 4)
      level = hn::ConvertTo(d, hn::LoadU(d32, levels + i));
    else
      level = hn::PromoteTo(d, hn::LoadU(d32, levels + i));
    hn::StoreU(hn::Add(hn::LoadU(d, dense + i), hn::Mul(va, hn::Mul(vs, level))), d, dense + i);
  }
#endif
  for (; i < n; ++i) dense[i] += alpha * (scale * static_cast<T>(levels[i]));
}

/// The sign payload's elements [begin, end) added to dense: dense[i] += alpha * (+-scale).
template <class T>
GRADCOMP_NO_FP_CONTRACT void signs_add(const sign_vector<T>& p, std::size_t begin, std::size_t end, T* dense,
                                       T alpha) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  const std::size_t b = p.block_size;
  for (std::size_t k = begin / b; k < p.blocks() && k * b < end; ++k) {  // runs of one scale
    const std::size_t lo = std::max(begin, k * b);
    const std::size_t hi = std::min(end, k * b + std::min(b, p.dim - k * b));
    const T s = p.scales[k];
    std::size_t i = lo;
#if GRADCOMP_CPU_SIMD
    namespace hn = simd::hn;
    const hn::ScalableTag<T> d;
    constexpr std::size_t N = hn::MaxLanes(d);
    static_assert(N <= 64);
    const auto va = hn::Set(d, alpha);
    const auto positive = hn::Set(d, s);
    const auto negative = hn::Neg(positive);
    const std::uint64_t* words = p.negative.data();
    for (; i + N <= hi; i += N) {
      // The N sign bits from element i on, which may straddle two words.
      const std::size_t o = i % 64;
      std::uint64_t bits = words[i / 64] >> o;
      if (o + N > 64) bits |= words[i / 64 + 1] << (64 - o);
      std::uint8_t bytes[8];
      for (std::size_t j = 0; j < 8; ++j) bytes[j] = static_cast<std::uint8_t>(bits >> (8 * j));
      const auto value = hn::IfThenElse(hn::LoadMaskBits(d, bytes), negative, positive);
      hn::StoreU(hn::Add(hn::LoadU(d, dense + i), hn::Mul(va, value)), d, dense + i);
    }
#endif
    for (; i < hi; ++i) dense[i] += alpha * (p.is_negative(i) ? -s : s);
  }
}

/// What sign_vector::decompress_add checks before it writes.
template <class T>
bool sign_payload_fits(const sign_vector<T>& p, std::size_t dense_size) {
  return p.block_size != 0 && p.scales.size() == p.blocks() &&
         p.negative.size() == gradcomp::detail::words_for_bits(p.dim) && dense_size == p.dim;
}

}  // namespace gradcomp::cpu::detail

namespace gradcomp::exec {

template <std::floating_point T, class Index>
void decompress_add_with(const par_t& policy, const sparse_vector<T, Index>& p, std::span<T> dense, T alpha) {
  cpu::detail::scatter_add(policy, p.dim, p.indices, p.values, dense, alpha);
}

template <std::floating_point T, class Index>
void decompress_add_with(const par_t& policy, const seeded_sparse_vector<T, Index>& p, std::span<T> dense, T alpha) {
  cpu::detail::scatter_add(policy, p.dim, p.indices, p.values, dense, alpha);
}

template <std::floating_point T>
void decompress_add_with(const par_t& policy, const sign_vector<T>& p, std::span<T> dense, T alpha) {
  if (!cpu::detail::sign_payload_fits(p, dense.size())) return p.decompress_add(dense, alpha);  // throws
  cpu::detail::for_each_chunk(policy, p.dim, cpu::detail::decode_chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                cpu::detail::signs_add(p, begin, end, dense.data(), alpha);
                              });
}

template <std::floating_point T>
void decompress_add_with(const par_t& policy, const quantized_vector<T>& p, std::span<T> dense, T alpha) {
  if (p.levels.size() != p.dim || dense.size() != p.dim) return p.decompress_add(dense, alpha);  // throws
  cpu::detail::for_each_chunk(policy, p.dim, cpu::detail::decode_chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                cpu::detail::levels_add(p.levels.data() + begin, end - begin, p.scale,
                                                        dense.data() + begin, alpha);
                              });
}

template <std::floating_point T>
void decompress_add_with(const par_t& policy, const dense_vector<T>& p, std::span<T> dense, T alpha) {
  if (dense.size() != p.values.size()) return p.decompress_add(dense, alpha);  // throws
  cpu::detail::for_each_chunk(policy, p.values.size(), cpu::detail::decode_chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                cpu::detail::dense_add(p.values.data() + begin, end - begin, dense.data() + begin,
                                                       alpha);
                              });
}

}  // namespace gradcomp::exec
