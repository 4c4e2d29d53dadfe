#pragma once
// qsgd, terngrad and grid_rounding on the GPU: the levels of exec::seq (the reference's element rules
// detail::qsgd_level and detail::grid_level with the same counter stream), the same scale,
// the same level_bits, and the same errors.
//
// Both check their input before writing anything, as the reference does, and the check
// needs the host: each call synchronises once.
//   - qsgd: one pass sums the squares in the reference order. Only when that sum is not
//     finite does a second pass look for the first non-finite entry, and (double input) only
//     when it under- or overflowed do two more find the largest |x_i| and the sum of
//     (x_i 2^-e)^2 for the reference's rescue; otherwise those kernels return at once.
//     The host reads those four numbers and computes the scale with the reference's own
//     functions (detail::l2_norm_from_parts, qsgd::checked_scale_from).
//   - grid_rounding: one pass finds the first entry that is not finite or whose level is out
//     of range (grid_rounding::element_fails).
// An input the reference rejects is copied to the host and handed to the reference, which
// throws its error (naming the first bad entry); `out` and the step stay as they are. Then
// one kernel writes the levels and ORs their zigzag codes (a warp reduction, then one
// atomic per warp) for level_bits, and the step advances.
#include <cuda_runtime_api.h>

#include <bit>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "../compressors/grid_rounding.hpp"
#include "../compressors/qsgd.hpp"
#include "../compressors/terngrad.hpp"
#include "../detail/bitpack.hpp"
#include "../detail/element_rules.hpp"
#include "../detail/random.hpp"
#include "../detail/reduce.hpp"
#include "../error.hpp"
#include "../payload/quantized.hpp"
#include "decompress.cuh"
#include "error.cuh"
#include "first_index.cuh"
#include "launch.cuh"
#include "memory.cuh"
#include "payload.cuh"
#include "policy.cuh"
#include "quantized_vector.cuh"
#include "reduce.cuh"
#include "reference_error.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// What the quantizers' checks leave for the host to read (one copy).
struct quantize_state {
  double squares;               // the reference sum of squares (qsgd)
  double scaled_squares;        // the rescue's sum of (x_i 2^-e)^2, when needed (qsgd, double)
  unsigned long long first_bad; // the first index the reference would reject, or n
  unsigned long long largest;   // the bits of the largest finite |x_i| (0: none nonzero), when needed
  int shift;                    // e, from largest
};

static __global__ void quantize_state_init_kernel(quantize_state* s, unsigned long long n) {
  s->squares = 0.0;
  s->scaled_squares = 0.0;
  s->first_bad = n;
  s->largest = 0;
  s->shift = 0;
}

/// The index where the reference would reject x: bad(x[i]).
template <class T, class Bad>
struct rejected_at {
  const T* x;
  Bad bad;
  __device__ bool operator()(std::size_t i) const { return bad(x[i]); }
};

/// The first non-finite x_i, looked for only when the sum of squares is not finite (finite
/// squares of finite values sum to a finite value or to +Inf; NaN or Inf input makes the sum
/// NaN or Inf): a pass the usual input does not pay for.
template <class T>
struct non_finite_if_squares_are {
  const T* x;
  const quantize_state* state;
  __device__ bool active() const { return !std::isfinite(state->squares); }
  __device__ bool operator()(std::size_t i) const { return !std::isfinite(x[i]); }
};

/// x is NaN or Inf (terngrad rejects it).
template <class T>
struct non_finite {
  __device__ bool operator()(T x) const { return !std::isfinite(x); }
};

/// Every entry's largest |x_i| goes to one place (terngrad's scale).
struct shared_target {
  unsigned long long* target;
  __device__ unsigned long long* operator()(std::size_t) const { return target; }
};

/// grid_rounding rejects x.
template <class T>
struct grid_rejects {
  grid_rounding c;
  T q;
  grid_rounding::level_limits limits;
  __device__ bool operator()(T x) const { return !std::isfinite(x) || c.element_fails(x, q, limits); }
};

/// qsgd's level of x may overflow.
template <class T>
struct level_overflows {
  T scale;
  double top;
  __device__ bool operator()(T x) const { return qsgd::level_may_overflow(x, scale, top); }
};

/// Where the l2 rescue's largest |x_i| goes: the state, when the sum of squares needs it.
struct l2_rescue_target {
  quantize_state* state;
  __device__ unsigned long long* operator()(std::size_t) const {
    return gradcomp::detail::l2_needs_rescue(state->squares) ? &state->largest : nullptr;
  }
};

static __global__ void rescue_shift_kernel(quantize_state* state) {
  if (state->largest != 0) state->shift = rescue_shift(state->largest);
}

/// The rescue's leaf: (x_i 2^-e)^2, summed only when the rescue is needed.
template <class T>
struct scaled_square_leaf {
  const T* x;
  const quantize_state* state;
  __device__ bool active() const { return gradcomp::detail::l2_needs_rescue(state->squares); }
  __device__ double operator()(std::size_t i) const {
    return gradcomp::detail::scaled_square_summand(x[i], state->shift);
  }
};

/// The level rules, for the one level kernel.
template <class T>
struct qsgd_rule {
  gradcomp::detail::counter_stream stream;
  T scale;
  __device__ std::int32_t operator()(T x, std::size_t i) const {
    // scale == 0 only for x == 0, or ||x|| / s below T's smallest subnormal (as the reference).
    return scale > T(0) ? gradcomp::detail::qsgd_level(x, static_cast<double>(scale), stream, i) : 0;
  }
};
template <class T>
struct grid_rule {
  gradcomp::detail::counter_stream stream;
  T q;
  bool stochastic;
  __device__ std::int32_t operator()(T x, std::size_t i) const {
    return gradcomp::detail::grid_level(x, static_cast<double>(q), stochastic, stream, i);
  }
};

/// levels[i] = rule(x[i], i); *coded_or |= every level's code under coding.
template <class T, class Rule>
__global__ void levels_kernel(const T* x, std::size_t n, Rule rule, level_coding coding, std::int32_t* levels,
                              std::uint32_t* coded_or) {
  const std::size_t warp = global_thread() / 32, warps = grid_threads() / 32;
  const unsigned lane = threadIdx.x % 32;
  for (std::size_t base = warp * 32; base < n; base += warps * 32) {  // warp-uniform: every lane reduces
    const std::size_t i = base + lane;
    std::uint32_t code = 0;
    if (i < n) {
      const std::int32_t level = rule(x[i], i);
      levels[i] = level;
      code = gradcomp::detail::level_code(level, coding);
    }
    const std::uint32_t warp_or = __reduce_or_sync(0xffffffffu, code);
    if (lane == 0 && warp_or != 0) atomicOr(coded_or, warp_or);
  }
}

/// A quantized payload's element i: scale * level i.
template <class T>
struct dequantized {
  const std::int32_t* levels;
  T scale;
  __device__ T operator()(std::size_t i) const { return gradcomp::detail::dequantize(scale, levels[i]); }
};

inline quantize_state read_state(const par_t& policy, const quantize_state* device_state, const char* where) {
  quantize_state s{};
  check(cudaMemcpyAsync(&s, device_state, sizeof s, cudaMemcpyDeviceToHost, policy.stream), where, "cudaMemcpyAsync");
  check(cudaStreamSynchronize(policy.stream), where, "cudaStreamSynchronize");
  return s;
}

/// Writes the levels by rule into out (prepared), zeroing its code OR first.
template <class T, class Rule>
void write_levels(const par_t& policy, std::span<const T> x, Rule rule, cuda::quantized_vector<T>& out,
                  const char* where) {
  check(cudaMemsetAsync(out.coded_or(), 0, sizeof(std::uint32_t), policy.stream), where, "cudaMemsetAsync");
  if (x.empty()) return;
  levels_kernel<<<elementwise_grid(x.size()), tuning::elementwise::block_threads, 0, policy.stream>>>(
      x.data(), x.size(), rule, out.coding(), out.levels(), out.coded_or());
  check_launch(where, "levels_kernel");
}

/// ||x||_2 in the reference's order, and what the reference's rescue needs, read back in
/// one synchronisation; an input the reference rejects (NaN, Inf) goes to the reference c,
/// which throws its error. state stays reserved in the policy's workspace for later checks.
struct l2_norm_result {
  quantize_state read;   // the numbers the host read
  quantize_state* state; // the device state, for further first_index passes
  double norm;

  /// max_exponent(x), for detail::l2_scale (asked for only when the norm is not finite).
  auto shift() const {
    return [s = read]() -> int { return s.shift; };
  }
  /// The rescue's scaled sum.
  auto scaled_sum() const {
    return [s = read](int) { return s.scaled_squares; };
  }
};

template <class C, class T>
l2_norm_result l2_norm_checked(const par_t& policy, const C& c, std::span<const T> x, const char* where) {
  const std::size_t d = x.size();
  temp_layout layout;
  const std::size_t state_slot = layout.add(sizeof(quantize_state));
  const std::size_t sums_slot = layout.add(block_sums_bytes(d));
  void* base = policy.workspace().reserve(layout.total(), policy.stream);
  auto* state = static_cast<quantize_state*>(layout.at(base, state_slot));
  auto* sums = static_cast<double*>(layout.at(base, sums_slot));

  quantize_state_init_kernel<<<1, 1, 0, policy.stream>>>(state, d);
  check_launch(where, "quantize_state_init_kernel");
  ordered_sum_async(policy, d, square_leaf<T>{x.data()}, sums, &state->squares);
  first_index_async(policy, d, non_finite_if_squares_are<T>{x.data(), state}, &state->first_bad, where);
  if constexpr (sizeof(T) == 8) {  // float squares neither underflow nor overflow a double sum
    if (d > 0) {
      largest_finite_kernel<<<elementwise_grid(d), tuning::elementwise::block_threads, 0, policy.stream>>>(
          x.data(), d, l2_rescue_target{state});
      check_launch(where, "largest_finite_kernel");
    }
    rescue_shift_kernel<<<1, 1, 0, policy.stream>>>(state);
    check_launch(where, "rescue_shift_kernel");
    // Its block sums are written only when the rescue is needed, and only then read.
    ordered_sum_async(policy, d, scaled_square_leaf<T>{x.data(), state}, sums, &state->scaled_squares);
  }
  const quantize_state s = read_state(policy, state, where);
  if (s.first_bad < d) reference_rejects(c, x, where);
  const auto shift = [&]() -> std::optional<int> {
    if (s.largest == 0) return std::nullopt;
    return s.shift;
  };
  const double norm = gradcomp::detail::l2_norm_from_parts(s.squares, shift, [&](int) { return s.scaled_squares; });
  return {s, state, norm};
}

/// max |x_i| (0 for none or all zero) read back in one synchronisation, after checking that
/// x is finite: an input the reference rejects (NaN, Inf) goes to the reference c, which
/// throws its error. state stays reserved in the policy's workspace for later checks.
template <class T>
struct max_abs_result {
  quantize_state* state;
  T largest;
};

template <class C, class T>
max_abs_result<T> max_abs_checked(const par_t& policy, const C& c, std::span<const T> x, const char* where) {
  const std::size_t d = x.size();
  auto* state = static_cast<quantize_state*>(policy.workspace().reserve(sizeof(quantize_state), policy.stream));
  quantize_state_init_kernel<<<1, 1, 0, policy.stream>>>(state, d);
  check_launch(where, "quantize_state_init_kernel");
  first_index_async(policy, d, rejected_at<T, non_finite<T>>{x.data(), {}}, &state->first_bad, where);
  if (d > 0) {
    largest_finite_kernel<<<elementwise_grid(d), tuning::elementwise::block_threads, 0, policy.stream>>>(
        x.data(), d, shared_target{&state->largest});
    check_launch(where, "largest_finite_kernel");
  }
  const quantize_state s = read_state(policy, state, where);
  if (s.first_bad < d) reference_rejects(c, x, where);
  // max |x_i| of T, held exactly as a double (0: every entry is zero).
  return {state, s.largest == 0 ? T(0) : static_cast<T>(std::bit_cast<double>(s.largest))};
}

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// out = qsgd(x), x in device memory; then c.step advances. Synchronises once (more only on
/// the rare paths: a level that may overflow, an input the reference rejects).
template <std::floating_point T>
void compress_with(const par_t& policy, qsgd& c, std::span<const T> x, quantized_vector<T>& out) {
  constexpr const char* where = "qsgd";
  c.validate();
  const std::size_t d = x.size();
  const detail::l2_norm_result norm = detail::l2_norm_checked(policy, c, x, where);
  const T scale = c.checked_scale_from<T>(norm.norm, [] {}, norm.shift(), norm.scaled_sum());
  if (!gradcomp::detail::every_level_decodes_finite(scale)) {
    const double top = static_cast<double>(gradcomp::detail::largest_finite_level(scale));
    detail::first_index_async(policy, d, detail::rejected_at<T, detail::level_overflows<T>>{x.data(), {scale, top}},
                              &norm.state->first_bad, where);
    if (detail::read_state(policy, norm.state, where).first_bad < d) detail::reference_rejects(c, x, where);
  }
  out.prepare(d, scale);
  detail::write_levels(policy, x, detail::qsgd_rule<T>{gradcomp::detail::counter_stream(c.seed, c.step), scale}, out,
                       where);
  ++c.step;
}

/// out = terngrad(x), x in device memory; then c.step advances. Synchronises once: the first
/// non-finite entry and the largest |x_i| (an integer atomicMax on its bits, exact in any
/// order) come back together.
template <std::floating_point T>
void compress_with(const par_t& policy, terngrad& c, std::span<const T> x, quantized_vector<T>& out) {
  constexpr const char* where = "terngrad";
  const std::size_t d = x.size();
  const T scale = detail::max_abs_checked(policy, c, x, where).largest;
  out.prepare(d, scale);
  detail::write_levels(policy, x, detail::qsgd_rule<T>{gradcomp::detail::counter_stream(c.seed, c.step), scale}, out,
                       where);
  ++c.step;
}

/// out = grid_rounding(x), x in device memory; then c.step advances. Synchronises once.
template <std::floating_point T>
void compress_with(const par_t& policy, grid_rounding& c, std::span<const T> x, quantized_vector<T>& out) {
  constexpr const char* where = "grid_rounding";
  c.validate();
  const T q = c.checked_spacing<T>();
  const std::size_t d = x.size();
  auto* state = static_cast<detail::quantize_state*>(
      policy.workspace().reserve(sizeof(detail::quantize_state), policy.stream));
  detail::quantize_state_init_kernel<<<1, 1, 0, policy.stream>>>(state, d);
  detail::check_launch(where, "quantize_state_init_kernel");
  detail::first_index_async(
      policy, d, detail::rejected_at<T, detail::grid_rejects<T>>{x.data(), {c, q, grid_rounding::limits_for(q)}},
      &state->first_bad, where);
  if (detail::read_state(policy, state, where).first_bad < d) detail::reference_rejects(c, x, where);
  out.prepare(d, q);
  detail::write_levels(policy, x, detail::grid_rule<T>{gradcomp::detail::counter_stream(c.seed, c.step), q, c.stochastic},
                       out, where);
  ++c.step;
}

/// dense += alpha * decode(p), dense in device memory of p.dim() elements.
template <std::floating_point T>
void decompress_add_with(const par_t& policy, const quantized_vector<T>& p, std::span<T> dense, T alpha) {
  detail::add_decoded(policy, p.dim(), detail::dequantized<T>{p.levels(), p.scale()}, dense, alpha);
}

template <class T>
struct device_payload<qsgd, T> {
  using type = quantized_vector<T>;
};
template <class T>
struct device_payload<terngrad, T> {
  using type = quantized_vector<T>;
};
template <class T>
struct device_payload<grid_rounding, T> {
  using type = quantized_vector<T>;
};

}  // namespace gradcomp::cuda
