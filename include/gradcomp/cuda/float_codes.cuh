#pragma once
// float16_cast, bfloat16_cast and natural_compression on the GPU: the codes of exec::seq (the
// reference's element rules detail::round_to_half and detail::natural_code, with natural
// compression's draws from the same counter stream), the same scale exponent, the same errors.
//
// Both families accept or reject their input by its largest magnitude key alone, as exec::par
// decides (cpu/half_cast.hpp, cpu/natural_compression.hpp): the key is +Inf's or above for
// NaN or Inf input; the casts take max|x| from it, hence the pre-scale exponent, and rounding
// is monotone in |x|, so the largest entry decides whether any code overflows; natural
// compression's top-binade test (detail::natural_may_overflow) is monotone in the key too.
// So each call is one reduction (max_magnitude.cuh), one wait for the host to read the key
// (the exponent and the verdict are computed there with the reference's own functions), and
// one kernel writing a code per element. An input the reference rejects is handed to the
// reference on a host copy (reference_error.cuh), which throws its own error naming the first
// bad entry; `out` and natural compression's step stay as they are.
#include <cuda_runtime_api.h>

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>

#include "../compressors/half_cast.hpp"
#include "../compressors/natural_compression.hpp"
#include "../detail/bits.hpp"
#include "../detail/float_codes.hpp"
#include "../detail/random.hpp"
#include "../payload/float_code.hpp"
#include "decompress.cuh"
#include "error.cuh"
#include "float_code_vector.cuh"
#include "launch.cuh"
#include "max_magnitude.cuh"
#include "memory.cuh"
#include "payload.cuh"
#include "policy.cuh"
#include "reference_error.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// The casts' element rule: x * 2^e rounded to the 16-bit format.
template <code_format Format, class T>
struct half_code_rule {
  std::int32_t e;
  __device__ std::uint16_t operator()(T x, std::size_t) const { return gradcomp::detail::round_to_half(Format, x, e); }
};

/// Natural compression's element rule, with draw i of the (seed, step) stream for element i.
template <class T>
struct natural_code_rule {
  gradcomp::detail::counter_stream stream;
  __device__ std::uint16_t operator()(T x, std::size_t i) const {
    return gradcomp::detail::natural_code(x, stream.uniform(i));
  }
};

/// codes[i] = rule(x[i], i).
template <class T, class Rule>
__global__ void codes_kernel(const T* x, std::size_t n, Rule rule, std::uint16_t* codes) {
  for (std::size_t i = global_thread(); i < n; i += grid_threads()) codes[i] = rule(x[i], i);
}

/// A float_code payload's element i (detail::decode_code).
template <class T>
struct code_decoded {
  const std::uint16_t* codes;
  code_format format;
  std::int32_t scale_exponent;
  __device__ T operator()(std::size_t i) const {
    return gradcomp::detail::decode_code<T>(format, scale_exponent, codes[i]);
  }
};

/// The largest magnitude key of x, read back on the host (synchronises): the one number
/// both families' checks need.
template <class T>
gradcomp::detail::uint_of<T> largest_magnitude_key(const par_t& policy, std::span<const T> x, const char* where) {
  auto* largest = static_cast<unsigned long long*>(policy.workspace().reserve(sizeof(unsigned long long), policy.stream));
  max_magnitude_key_async(policy, x, largest, where);
  return static_cast<gradcomp::detail::uint_of<T>>(read_device_value(policy, largest, where));
}

/// out = the codes of x by rule, with the format and scale exponent given (prepared first: if
/// it cannot allocate, out is unchanged).
template <class T, class Rule>
void write_codes(const par_t& policy, std::span<const T> x, Rule rule, code_format format, std::int32_t e,
                 cuda::float_code_vector<T>& out, const char* where) {
  out.prepare(x.size(), format, e);
  if (x.empty()) return;
  codes_kernel<<<elementwise_grid(x.size()), tuning::elementwise::block_threads, 0, policy.stream>>>(
      x.data(), x.size(), rule, out.codes());
  check_launch(where, "codes_kernel");
}

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// out = float16_cast(x) or bfloat16_cast(x), x in device memory. Synchronises once.
template <code_format Format, std::floating_point T>
void compress_with(const par_t& policy, const half_cast<Format>& c, std::span<const T> x, float_code_vector<T>& out) {
  const char* where = half_cast<Format>::name.data();
  c.validate();
  const auto largest = detail::largest_magnitude_key(policy, x, where);
  const T max_abs = std::bit_cast<T>(largest);  // |x_i| of the largest key: max|x| when finite
  const bool finite = largest < gradcomp::detail::magnitude_key(std::numeric_limits<T>::infinity());
  const std::int32_t e = finite ? c.scale_exponent_for(max_abs) : 0;
  // NaN or Inf input, or a largest entry whose code overflows: the reference's error.
  if (!finite || !c.decodes_finite(max_abs, e)) detail::reference_rejects(c, x, where);
  detail::write_codes(policy, x, detail::half_code_rule<Format, T>{e}, Format, e, out, where);
}

/// out = natural_compression(x), x in device memory; then c.step advances. Synchronises once.
template <std::floating_point T>
void compress_with(const par_t& policy, natural_compression& c, std::span<const T> x, float_code_vector<T>& out) {
  const char* where = natural_compression::name.data();
  c.validate();
  // NaN, Inf, or an entry of the top binade that is not a power of two: the reference's error.
  if (gradcomp::detail::natural_may_overflow(std::bit_cast<T>(detail::largest_magnitude_key(policy, x, where))))
    detail::reference_rejects(c, x, where);
  detail::write_codes(policy, x, detail::natural_code_rule<T>{gradcomp::detail::counter_stream(c.seed, c.step)},
                      code_format::power_of_two, 0, out, where);
  ++c.step;
}

/// dense += alpha * decode(p), dense in device memory of p.dim() elements.
template <std::floating_point T>
void decompress_add_with(const par_t& policy, const float_code_vector<T>& p, std::span<T> dense, T alpha) {
  detail::add_decoded(policy, p.dim(), detail::code_decoded<T>{p.codes(), p.format(), p.scale_exponent()}, dense,
                      alpha);
}

template <code_format Format, class T>
struct device_payload<half_cast<Format>, T> {
  using type = float_code_vector<T>;
};
template <class T>
struct device_payload<natural_compression, T> {
  using type = float_code_vector<T>;
};

}  // namespace gradcomp::cuda
