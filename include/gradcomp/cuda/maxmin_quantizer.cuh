#pragma once
// maxmin_quantizer on the GPU: the buckets' (min, unit) and the levels of exec::seq, with the
// reference's rules (maxmin_quantizer::grid_of, detail::maxmin_level with the same counter
// stream) and its errors.
//
//   1. extremes: every bucket's smallest and largest value as integer atomics (atomicMin,
//      atomicMax) on an order-preserving key (order_key below), so the result does not depend
//      on the order the threads arrive in. Each warp takes a tile of consecutive elements
//      (tuning::maxmin): a tile inside one bucket is reduced in the warp first, two atomics per
//      tile; a tile that crosses buckets flushes each lane's extremes when its bucket changes.
//      Zeros are then stored as +0 (detail::positive_zero), as the reference stores them, so
//      which zero the atomics kept does not matter;
//   2. grids: one thread per bucket, the reference's grid_of on those extremes, and whether the
//      bucket is acceptable: its extremes finite (a NaN or Inf entry makes its bucket's min or
//      max non-finite: a negative NaN's key is below -Inf's, a positive one's above +Inf's) and
//      its top level finite (maxmin_quantizer::top_level_finite);
//   3. the host reads that one verdict (each call synchronises once). A rejected input is
//      handed to the reference on a host copy (reference_error.cuh), which throws its own error
//      (the first non-finite entry, else the first bad bucket); `out` and the step stay;
//   4. levels: one thread per element, maxmin_level with draw i; the thread of each bucket's
//      first element also writes the bucket's (min, unit) into the payload.
#include <cuda_runtime_api.h>

#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "../compressors/maxmin_quantizer.hpp"
#include "../detail/bits.hpp"
#include "../detail/maxmin.hpp"
#include "../detail/random.hpp"
#include "../payload/bucket_quantized.hpp"
#include "bucket_quantized_vector.cuh"
#include "decompress.cuh"
#include "error.cuh"
#include "launch.cuh"
#include "memory.cuh"
#include "payload.cuh"
#include "policy.cuh"
#include "reference_error.cuh"
#include "tuning.cuh"

namespace gradcomp::cuda::detail {

/// An unsigned key in the order of T's values (total: -NaN < -Inf < ... < -0 < +0 < ... <
/// +Inf < +NaN): the sign bit flipped for non-negative values, every bit for negative ones.
/// Exact min and max become integer min and max.
template <class T>
__host__ __device__ constexpr gradcomp::detail::uint_of<T> order_key(T x) noexcept {
  using U = gradcomp::detail::uint_of<T>;
  constexpr U sign = U{1} << (sizeof(T) * 8 - 1);
  const U u = std::bit_cast<U>(x);
  return (u & sign) != 0 ? static_cast<U>(~u) : static_cast<U>(u | sign);
}

/// The value of an order key (order_key's inverse).
template <class T>
__host__ __device__ constexpr T from_order_key(gradcomp::detail::uint_of<T> k) noexcept {
  using U = gradcomp::detail::uint_of<T>;
  constexpr U sign = U{1} << (sizeof(T) * 8 - 1);
  return std::bit_cast<T>((k & sign) != 0 ? static_cast<U>(k & ~sign) : static_cast<U>(~k));
}

/// Every bucket's order keys of its smallest and largest value, widened to 64 bits (which
/// keeps their order): lo[b] = min, hi[b] = max over bucket b (lo starts at all ones, hi at 0).
template <class T>
__global__ void bucket_extremes_kernel(const T* x, std::size_t n, std::size_t bucket_size, unsigned long long* lo,
                                       unsigned long long* hi) {
  constexpr std::size_t tile = tuning::maxmin::warp_tile;
  static_assert(tile % 32 == 0);
  const std::size_t warp = global_thread() / 32, warps = grid_threads() / 32;
  const unsigned lane = threadIdx.x % 32;
  for (std::size_t base = warp * tile; base < n; base += warps * tile) {
    const std::size_t end = n - base < tile ? n : base + tile;
    const std::size_t bucket = base / bucket_size;
    if (bucket == (end - 1) / bucket_size) {  // warp-uniform: the tile lies in one bucket
      unsigned long long l = ~0ull, h = 0;
      for (std::size_t i = base + lane; i < end; i += 32) {
        const unsigned long long k = order_key(x[i]);
        l = k < l ? k : l;
        h = k > h ? k : h;
      }
      for (int offset = 16; offset > 0; offset /= 2) {
        const unsigned long long ol = __shfl_xor_sync(0xffffffffu, l, offset);
        const unsigned long long oh = __shfl_xor_sync(0xffffffffu, h, offset);
        l = ol < l ? ol : l;
        h = oh > h ? oh : h;
      }
      if (lane == 0) {
        atomicMin(&lo[bucket], l);
        atomicMax(&hi[bucket], h);
      }
    } else {  // several buckets: each lane flushes its extremes when its bucket changes
      std::size_t current = base / bucket_size, next = (current + 1) * bucket_size;
      unsigned long long l = ~0ull, h = 0;
      for (std::size_t i = base + lane; i < end; i += 32) {
        if (i >= next) {
          if (h != 0 || l != ~0ull) {
            atomicMin(&lo[current], l);
            atomicMax(&hi[current], h);
          }
          current = i / bucket_size;
          next = (current + 1) * bucket_size;
          l = ~0ull;
          h = 0;
        }
        const unsigned long long k = order_key(x[i]);
        l = k < l ? k : l;
        h = k > h ? k : h;
      }
      if (h != 0 || l != ~0ull) {
        atomicMin(&lo[current], l);
        atomicMax(&hi[current], h);
      }
    }
  }
}

/// Bucket b's grid by the reference's rule, into mins and units; *rejected = 1 when a bucket
/// holds a non-finite value or its top level overflows (the reference would throw).
template <class T>
__global__ void bucket_grids_kernel(std::size_t buckets, maxmin_quantizer c, const unsigned long long* lo,
                                    const unsigned long long* hi, T* mins, T* units, unsigned* rejected) {
  using U = gradcomp::detail::uint_of<T>;
  for (std::size_t b = global_thread(); b < buckets; b += grid_threads()) {
    const gradcomp::detail::bucket_extremes<T> e{gradcomp::detail::positive_zero(from_order_key<T>(static_cast<U>(lo[b]))),
                                                 gradcomp::detail::positive_zero(from_order_key<T>(static_cast<U>(hi[b])))};
    const maxmin_quantizer::grid<T> g = c.grid_of(e);
    mins[b] = g.min;
    units[b] = g.unit;
    if (!std::isfinite(e.lo) || !std::isfinite(e.hi) || !c.top_level_finite(g)) atomicOr(rejected, 1u);
  }
}

/// levels[i] = maxmin_level(x_i) with draw i; bucket b's first element also copies its grid
/// into the payload.
template <class T>
__global__ void maxmin_levels_kernel(const T* x, std::size_t n, std::size_t bucket_size,
                                     gradcomp::detail::counter_stream stream, const T* grid_mins,
                                     const T* grid_units, T* mins, T* units, std::uint8_t* levels) {
  for (std::size_t i = global_thread(); i < n; i += grid_threads()) {
    const std::size_t b = i / bucket_size;
    const T min = grid_mins[b], unit = grid_units[b];
    levels[i] = static_cast<std::uint8_t>(gradcomp::detail::maxmin_level(x[i], min, unit, stream, i));
    if (i == b * bucket_size) {
      mins[b] = min;
      units[b] = unit;
    }
  }
}

/// A bucket-quantized payload's element i: min + unit * level (detail::maxmin_value).
template <class T>
struct maxmin_decoded {
  const T* mins;
  const T* units;
  const std::uint8_t* levels;
  std::size_t bucket_size;
  __device__ T operator()(std::size_t i) const {
    const std::size_t b = i / bucket_size;
    return gradcomp::detail::maxmin_value(mins[b], units[b], levels[i]);
  }
};

}  // namespace gradcomp::cuda::detail

namespace gradcomp::cuda {

/// out = maxmin_quantizer(x), x in device memory; then c.step advances. Synchronises once.
template <std::floating_point T>
void compress_with(const par_t& policy, maxmin_quantizer& c, std::span<const T> x, bucket_quantized_vector<T>& out) {
  constexpr const char* where = "maxmin_quantizer";
  c.validate();
  const std::size_t d = x.size();
  const std::size_t nb = gradcomp::detail::bucket_count(d, c.bucket_size);
  detail::temp_layout layout;
  const std::size_t lo_slot = layout.add(nb * sizeof(unsigned long long));
  const std::size_t hi_slot = layout.add(nb * sizeof(unsigned long long));
  const std::size_t mins_slot = layout.add(nb * sizeof(T));
  const std::size_t units_slot = layout.add(nb * sizeof(T));
  const std::size_t flag_slot = layout.add(sizeof(unsigned));
  void* base = policy.workspace().reserve(layout.total(), policy.stream);
  auto* lo = static_cast<unsigned long long*>(layout.at(base, lo_slot));
  auto* hi = static_cast<unsigned long long*>(layout.at(base, hi_slot));
  auto* grid_mins = static_cast<T*>(layout.at(base, mins_slot));
  auto* grid_units = static_cast<T*>(layout.at(base, units_slot));
  auto* rejected = static_cast<unsigned*>(layout.at(base, flag_slot));
  cudaStream_t stream = policy.stream;

  detail::check(cudaMemsetAsync(rejected, 0, sizeof(unsigned), stream), where, "cudaMemsetAsync");
  if (nb > 0) {
    detail::check(cudaMemsetAsync(lo, 0xff, nb * sizeof(unsigned long long), stream), where, "cudaMemsetAsync");
    detail::check(cudaMemsetAsync(hi, 0, nb * sizeof(unsigned long long), stream), where, "cudaMemsetAsync");
    const std::size_t tiles = (d + tuning::maxmin::warp_tile - 1) / tuning::maxmin::warp_tile;
    detail::bucket_extremes_kernel<<<detail::grid_for(tiles * 32, tuning::elementwise::block_threads,
                                                      tuning::elementwise::max_blocks),
                                     tuning::elementwise::block_threads, 0, stream>>>(x.data(), d, c.bucket_size, lo,
                                                                                      hi);
    detail::check_launch(where, "bucket_extremes_kernel");
    detail::bucket_grids_kernel<<<detail::elementwise_grid(nb), tuning::elementwise::block_threads, 0, stream>>>(
        nb, c, lo, hi, grid_mins, grid_units, rejected);
    detail::check_launch(where, "bucket_grids_kernel");
  }
  if (detail::read_device_value(policy, rejected, where) != 0) detail::reference_rejects(c, x, where);

  out.prepare(d, c.bucket_size, c.bits);
  if (d > 0) {
    detail::maxmin_levels_kernel<<<detail::elementwise_grid(d), tuning::elementwise::block_threads, 0, stream>>>(
        x.data(), d, c.bucket_size, gradcomp::detail::counter_stream(c.seed, c.step), grid_mins, grid_units,
        out.mins(), out.units(), out.levels());
    detail::check_launch(where, "maxmin_levels_kernel");
  }
  ++c.step;
}

/// dense += alpha * decode(p), dense in device memory of p.dim() elements.
template <std::floating_point T>
void decompress_add_with(const par_t& policy, const bucket_quantized_vector<T>& p, std::span<T> dense, T alpha) {
  detail::add_decoded(policy, p.dim(),
                      detail::maxmin_decoded<T>{p.mins(), p.units(), p.levels(), p.bucket_size()}, dense, alpha);
}

template <class T>
struct device_payload<maxmin_quantizer, T> {
  using type = bucket_quantized_vector<T>;
};

}  // namespace gradcomp::cuda
