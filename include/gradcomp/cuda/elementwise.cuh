#pragma once
// Element-wise kernels of the CUDA back end: the error-feedback input p = e + scale * g
// (detail::feedback_element, the reference's own rule, with g read as float32, bfloat16 or
// float16 and widened exactly), the widening of 16-bit gradients, and x *= factor.
#include <cuda_runtime_api.h>

#include <concepts>
#include <cstddef>
#include <span>

#include "../detail/element_rules.hpp"
#include "../error.hpp"
#include "../float16.hpp"
#include "error.cuh"
#include "launch.cuh"
#include "policy.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// g[i] as the float type of the residual: itself, or a 16-bit value widened exactly.
template <class T, class G>
__device__ inline T gradient_at(const G* g, std::size_t i) {
  if constexpr (half_precision<G>)
    return to_float(g[i]);
  else
    return g[i];
}

template <class T, class G>
__global__ void feedback_input_kernel(const T* e, const G* g, T scale, T* p, std::size_t n) {
  for (std::size_t i = global_thread(); i < n; i += grid_threads())
    p[i] = gradcomp::detail::feedback_element(e[i], gradient_at<T>(g, i), scale);
}

template <class T>
__global__ void scale_kernel(T* x, T factor, std::size_t n) {
  for (std::size_t i = global_thread(); i < n; i += grid_threads()) x[i] = factor * x[i];
}

template <half_precision H>
__global__ void widen_kernel(const H* h, float* out, std::size_t n) {
  for (std::size_t i = global_thread(); i < n; i += grid_threads()) out[i] = to_float(h[i]);
}

/// p = e + scale * g, g of type G (T or 16-bit); p may alias e.
template <class T, class G>
void feedback_input(const par_t& policy, std::span<const T> e, std::span<const G> g, T scale, std::span<T> p) {
  if (e.size() != p.size() || g.size() != p.size())
    gradcomp::detail::fail("cuda::feedback_input", "sizes differ: e ", e.size(), ", g ", g.size(), ", p ", p.size());
  if (p.empty()) return;
  feedback_input_kernel<<<elementwise_grid(p.size()),
                          tuning::elementwise::block_threads, 0, policy.stream>>>(e.data(), g.data(), scale, p.data(),
                                                                                   p.size());
  check_launch("feedback_input", "feedback_input_kernel");
}

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// p = e + scale * g on the device (the reference's feedback_element).
template <std::floating_point T>
void feedback_input_with(const par_t& policy, std::span<const T> e, std::span<const T> g, T scale, std::span<T> p) {
  detail::feedback_input(policy, e, g, scale, p);
}

/// x *= factor on the device (the reference's one rounding per element).
template <std::floating_point T>
void scale_with(const par_t& policy, std::span<T> x, T factor) {
  if (x.empty()) return;
  detail::scale_kernel<<<detail::elementwise_grid(x.size()),
                         tuning::elementwise::block_threads, 0, policy.stream>>>(x.data(), factor, x.size());
  detail::check_launch("scale", "scale_kernel");
}

/// out[i] = to_float(h[i]) on the device.
template <half_precision H>
void widen_with(const par_t& policy, std::span<const H> h, std::span<float> out) {
  if (h.empty()) return;
  detail::widen_kernel<<<detail::elementwise_grid(h.size()),
                         tuning::elementwise::block_threads, 0, policy.stream>>>(h.data(), out.data(), h.size());
  detail::check_launch("widen", "widen_kernel");
}

}  // namespace gradcomp::cuda
