#pragma once
// dithering on the GPU: the reference's scale (max |x_i| as terngrad finds it, ||x||_2 as qsgd
// does, each divided by dithering::divisor()), the same overflow check, and the partition's
// level rule (dithering::level) in the quantizers' one level kernel, coded as the reference
// codes it.
#include <cuda_runtime_api.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../compressors/dithering.hpp"
#include "../compressors/qsgd.hpp"
#include "../detail/random.hpp"
#include "../payload/quantized.hpp"
#include "first_index.cuh"
#include "payload.cuh"
#include "policy.cuh"
#include "quantize.cuh"
#include "quantized_vector.cuh"

namespace gradcomp::cuda::detail {

/// dithering's level of x may overflow.
template <class T>
struct dithering_level_overflows {
  dithering::partition_kind partition;
  T scale;
  double top;
  __device__ bool operator()(T x) const { return dithering::largest_level(partition, x, scale) > top; }
};

template <class T>
struct dithering_rule {
  gradcomp::detail::counter_stream stream;
  T scale;
  dithering::partition_kind partition;
  __device__ std::int32_t operator()(T x, std::size_t i) const {
    // scale == 0 only for x == 0, or N / divisor below T's smallest subnormal (as the reference).
    return scale > T(0) ? dithering::level(partition, x, static_cast<double>(scale), stream, i) : 0;
  }
};

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// out = dithering(x), x in device memory; then c.step advances. Synchronises once (more only
/// on the rare paths: a level that may overflow, an input the reference rejects).
template <std::floating_point T>
void compress_with(const par_t& policy, dithering& c, std::span<const T> x, quantized_vector<T>& out) {
  constexpr const char* where = "dithering";
  c.validate();
  const std::size_t d = x.size();
  detail::quantize_state* state;
  T scale;
  if (c.norm == dithering::max) {
    const auto m = detail::max_abs_checked(policy, c, x, where);
    state = m.state;
    scale = c.max_scale(m.largest);
  } else {
    const detail::l2_norm_result n = detail::l2_norm_checked(policy, c, x, where);
    state = n.state;
    scale = gradcomp::detail::l2_scale<T>(n.norm, c.divisor(), c.divisor_name(), [] {}, n.shift(),
                                          n.scaled_sum());
  }
  if (!gradcomp::detail::every_level_decodes_finite(scale)) {
    const double top = static_cast<double>(gradcomp::detail::largest_finite_level(scale));
    detail::first_index_async(
        policy, d, detail::rejected_at<T, detail::dithering_level_overflows<T>>{x.data(), {c.partition, scale, top}},
        &state->first_bad, where);
    if (detail::read_state(policy, state, where).first_bad < d) detail::reference_rejects(c, x, where);
  }
  out.prepare(d, scale, dithering::coding_of(c.partition));
  detail::write_levels(
      policy, x, detail::dithering_rule<T>{gradcomp::detail::counter_stream(c.seed, c.step), scale, c.partition}, out,
      where);
  ++c.step;
}

template <class T>
struct device_payload<dithering, T> {
  using type = quantized_vector<T>;
};

}  // namespace gradcomp::cuda
