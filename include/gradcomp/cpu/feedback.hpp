#pragma once
// The error-feedback building blocks on exec::par, used by error_feedback<C> for compressors
// without a fused kernel (backend.hpp's feedback_step reference): p = e + scale * g, and
// ||e||^2 in the reference order; and x *= factor (gradient clipping).
#include <concepts>
#include <cstddef>
#include <span>

#include "../float16.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "reduce.hpp"
#include "simd.hpp"
#include "tuning.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

/// p[0, n) = e + scale * g (detail::feedback_element), on the calling thread.
template <class T>
void feedback_input(const T* e, const T* g, T scale, T* p, std::size_t n) {
  simd::dispatch([&](auto tag) { feedback_input(tag, e, g, scale, p, n); });
}

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

template <std::floating_point T>
void feedback_input_with(const par_t& policy, std::span<const T> e, std::span<const T> g, T scale, std::span<T> p) {
  cpu::detail::for_each_chunk(policy, p.size(), cpu::tuning::elementwise::chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                cpu::detail::feedback_input(e.data() + begin, g.data() + begin, scale, p.data() + begin,
                                                            end - begin);
                              });
}

/// x *= factor, chunk by chunk (the reference's one rounding per element).
template <std::floating_point T>
void scale_with(const par_t& policy, std::span<T> x, T factor) {
  cpu::detail::for_each_chunk(policy, x.size(), cpu::tuning::elementwise::chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                for (std::size_t i = begin; i < end; ++i) x[i] = factor * x[i];
                              });
}

/// A 16-bit gradient widened to float32 (exact), chunk by chunk.
template <half_precision H>
void widen_with(const par_t& policy, std::span<const H> h, std::span<float> out) {
  cpu::detail::for_each_chunk(policy, h.size(), cpu::tuning::elementwise::chunk,
                              [&](std::size_t, std::size_t begin, std::size_t end) {
                                for (std::size_t i = begin; i < end; ++i) out[i] = to_float(h[i]);
                              });
}

template <std::floating_point T>
double squared_norm_with(const par_t& policy, std::span<const T> x) {
  return cpu::detail::squared_norm(policy, x);
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
