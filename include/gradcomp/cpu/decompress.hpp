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
#include "../detail/element_rules.hpp"
#include "../detail/scatter.hpp"
#include "../detail/strict_fp.hpp"
#include "../payload/bucket_quantized.hpp"
#include "../payload/dense.hpp"
#include "../payload/float_code.hpp"
#include "../payload/quantized.hpp"
#include "../payload/seeded_sparse.hpp"
#include "../payload/sign.hpp"
#include "../payload/sparse.hpp"
#include "../payload/two_level.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "simd.hpp"
#include "tuning.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

inline constexpr std::size_t scatter_chunk = tuning::scatter::chunk;
inline constexpr std::size_t decode_chunk = tuning::elementwise::chunk;

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
  for (std::size_t j = 0; j < n; ++j) dense[indices[j]] = gradcomp::detail::add_scaled(dense[indices[j]], alpha, values[j]);
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

/// The sign payload's elements [begin, end) added to dense: dense[i] += alpha * (+-scale),
/// one run of one block's scale at a time.
template <class T>
void signs_add(const sign_vector<T>& p, std::size_t begin, std::size_t end, T* dense, T alpha) {
  const std::size_t b = p.block_size;
  simd::dispatch([&](auto tag) {
    for (std::size_t k = begin / b; k < p.blocks() && k * b < end; ++k) {
      const std::size_t lo = std::max(begin, k * b);
      const std::size_t hi = std::min(end, k * b + std::min(b, p.dim - k * b));
      signs_add(tag, p.negative.data(), lo, hi, p.scales[k], dense, alpha);
    }
  });
}

/// Elements [begin, end) of a float_code, bucket_quantized or two_level payload added to dense
/// with the reference's rule (value(i), maxmin_value or two_level_value; add_scaled): each
/// element alone, so chunks give the reference's bits.
template <class T, class Value>
GRADCOMP_NO_FP_CONTRACT void values_add(std::size_t begin, std::size_t end, T* dense, T alpha, Value&& value) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  for (std::size_t i = begin; i < end; ++i) dense[i] = gradcomp::detail::add_scaled(dense[i], alpha, value(i));
}

/// What sign_vector::decompress_add checks before it writes.
template <class T>
bool sign_payload_fits(const sign_vector<T>& p, std::size_t dense_size) {
  return p.block_size != 0 && p.scales.size() == p.blocks() &&
         p.negative.size() == gradcomp::detail::words_for_bits(p.dim) && dense_size == p.dim;
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

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
                                cpu::simd::dispatch([&](auto tag) {
                                  levels_add(tag, p.levels.data() + begin, end - begin, p.scale, dense.data() + begin,
                                             alpha);
                                });
                              });
}

/// float_code_vector (the casts, natural compression) on exec::par; bit-identical to exec::seq.
template <std::floating_point T>
void decompress_add_with(const par_t& policy, const float_code_vector<T>& p, std::span<T> dense, T alpha) {
  p.validate_shape("decompress_add");  // the reference's checks, in its order, before any write
  if (dense.size() != p.dim) return p.decompress_add(dense, alpha);  // throws
  cpu::detail::for_each_chunk(policy, p.dim, cpu::detail::decode_chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                cpu::detail::values_add(begin, end, dense.data(), alpha,
                                                        [&](std::size_t i) { return p.value(i); });
                              });
}

/// bucket_quantized_vector (max-min quantization) on exec::par; bit-identical to exec::seq.
template <std::floating_point T>
void decompress_add_with(const par_t& policy, const bucket_quantized_vector<T>& p, std::span<T> dense, T alpha) {
  p.check_sizes("decompress_add");
  if (dense.size() != p.dim) return p.decompress_add(dense, alpha);  // throws
  cpu::detail::for_each_chunk(policy, p.dim, cpu::detail::decode_chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                cpu::detail::values_add(begin, end, dense.data(), alpha, [&](std::size_t i) {
                                  const std::size_t b = i / p.bucket_size;
                                  return gradcomp::detail::maxmin_value(p.mins[b], p.units[b], p.levels[i]);
                                });
                              });
}

/// two_level_vector (onebit) on exec::par; bit-identical to exec::seq.
template <std::floating_point T>
void decompress_add_with(const par_t& policy, const two_level_vector<T>& p, std::span<T> dense, T alpha) {
  p.validate("decompress_add");  // the reference's checks, in its order, before any write
  if (dense.size() != p.dim) return p.decompress_add(dense, alpha);  // throws
  cpu::detail::for_each_chunk(policy, p.dim, cpu::detail::decode_chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                cpu::detail::values_add(begin, end, dense.data(), alpha, [&](std::size_t i) {
                                  const std::size_t b = i / p.block_size;
                                  return gradcomp::detail::two_level_value(p.lows[b], p.highs[b], p.is_negative(i));
                                });
                              });
}

template <std::floating_point T>
void decompress_add_with(const par_t& policy, const dense_vector<T>& p, std::span<T> dense, T alpha) {
  if (dense.size() != p.values.size()) return p.decompress_add(dense, alpha);  // throws
  cpu::detail::for_each_chunk(policy, p.values.size(), cpu::detail::decode_chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                cpu::simd::dispatch([&](auto tag) {
                                  dense_add(tag, p.values.data() + begin, end - begin, dense.data() + begin, alpha);
                                });
                              });
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
