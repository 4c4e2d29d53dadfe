#pragma once
// The error-feedback building blocks on exec::par, used by error_feedback<C> for compressors
// without a fused kernel: p = e + scale * g, and ||e||^2 in the reference order.
#include <algorithm>
#include <concepts>
#include <cstddef>
#include <span>

#include "../detail/strict_fp.hpp"
#include "../feedback/error_feedback.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "reduce.hpp"
#include "simd.hpp"

namespace gradcomp::cpu::detail {

/// p[0, n) = e + scale * g with two roundings per element, as detail::feedback_input.
template <class T>
GRADCOMP_NO_FP_CONTRACT void feedback_input(const T* e, const T* g, T scale, T* p, std::size_t n) {
  GRADCOMP_NO_FP_CONTRACT_BODY
  std::size_t i = 0;
  const bool unit_scale = scale == T(1);
#if GRADCOMP_CPU_SIMD
  namespace hn = simd::hn;
  const hn::ScalableTag<T> d;
  constexpr std::size_t L = hn::MaxLanes(d);
  const auto vscale = hn::Set(d, scale);
  if (unit_scale) {
    for (; i + L <= n; i += L) hn::StoreU(hn::Add(hn::LoadU(d, e + i), hn::LoadU(d, g + i)), d, p + i);
  } else {
    for (; i + L <= n; i += L)
      hn::StoreU(hn::Add(hn::LoadU(d, e + i), hn::Mul(vscale, hn::LoadU(d, g + i))), d, p + i);
  }
#endif
  if (unit_scale) {
    for (; i < n; ++i) p[i] = e[i] + g[i];
  } else {
    for (; i < n; ++i) p[i] = e[i] + scale * g[i];
  }
}

/// Chunk size of element-wise loops.
inline constexpr std::size_t elementwise_chunk = std::size_t{1} << 16;

}  // namespace gradcomp::cpu::detail

namespace gradcomp::exec {

template <std::floating_point T>
void feedback_input_with(const par_t& policy, std::span<const T> e, std::span<const T> g, T scale, std::span<T> p) {
  cpu::detail::for_each_chunk(policy, p.size(), cpu::detail::elementwise_chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                cpu::detail::feedback_input(e.data() + begin, g.data() + begin, scale, p.data() + begin,
                                                            end - begin);
                              });
}

template <std::floating_point T>
double squared_norm_with(const par_t& policy, std::span<const T> x) {
  return cpu::detail::squared_norm(policy, x);
}

}  // namespace gradcomp::exec
