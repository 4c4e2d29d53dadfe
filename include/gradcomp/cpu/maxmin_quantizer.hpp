#pragma once
// maxmin_quantizer on exec::par. Two parallel passes over the same tasks:
//   1. every bucket's extremes (SIMD min/max, with a finiteness check) and its grid (min,
//      unit), into workspace scratch; nothing is written to the payload yet;
//   2. if every entry is finite and every bucket's top level decodes finite, every element's
//      level (SIMD, the reference's counter-stream draws) and the buckets' (min, unit).
// Otherwise the reference runs and raises its error (first bad entry, then first bad bucket),
// so the payload and the step stay as they are.
//
// Tasks follow the buckets: a bucket of at most one chunk (tuning::elementwise::chunk
// elements) is handled whole by one task, several per task; a longer bucket is cut into
// segments of a chunk, one per task, whose extremes are merged per bucket afterwards. Min and
// max are exact, so the order of merging does not change them.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>

#include "../compressors/maxmin_quantizer.hpp"
#include "../detail/maxmin.hpp"
#include "../detail/random.hpp"
#include "../payload/bucket_quantized.hpp"
#include "parallel.hpp"
#include "policy.hpp"
#include "simd.hpp"
#include "tuning.hpp"
#include "workspace.hpp"

namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail {

/// How the elements of d are cut into tasks that never straddle a bucket boundary mid-task
/// (see the header comment).
struct bucket_tasks {
  std::size_t dim;
  std::size_t bucket_size;
  std::size_t chunk;

  bool whole_buckets() const noexcept { return bucket_size <= chunk; }
  std::size_t buckets() const noexcept { return gradcomp::detail::bucket_count(dim, bucket_size); }
  /// Buckets per task (whole buckets), or tasks per full bucket (segments).
  std::size_t per_task() const noexcept { return chunk / bucket_size; }
  std::size_t segments_per_bucket() const noexcept { return (bucket_size - 1) / chunk + 1; }

  std::size_t count() const noexcept {
    const std::size_t nb = buckets();
    if (nb == 0) return 0;
    if (whole_buckets()) return (nb - 1) / per_task() + 1;
    const std::size_t last = dim - (nb - 1) * bucket_size;  // elements of the last bucket
    return (nb - 1) * segments_per_bucket() + (last - 1) / chunk + 1;
  }

  /// The elements [begin, end) of task t.
  std::pair<std::size_t, std::size_t> range(std::size_t t) const noexcept {
    if (whole_buckets()) {
      const std::size_t begin = t * per_task() * bucket_size;
      return {begin, std::min(dim, begin + per_task() * bucket_size)};
    }
    const std::size_t b = t / segments_per_bucket(), j = t % segments_per_bucket();
    const std::size_t bucket_end = std::min(dim, (b + 1) * bucket_size);
    const std::size_t begin = b * bucket_size + j * chunk;
    return {begin, std::min(bucket_end, begin + chunk)};
  }

  /// Calls f(t, begin, end) for every task, in parallel when d is large enough.
  template <class F>
  void for_each(const exec::par_t& policy, F&& f) const {
    // for_each_chunk counts in tasks; one task is worth about a chunk of streamed elements.
    for_each_chunk(
        policy, count(), 1,
        [&](std::size_t t, std::size_t, std::size_t) {
          const auto [begin, end] = range(t);
          f(t, begin, end);
        },
        std::max<std::size_t>(1, std::min(chunk, dim)));
  }
};

}  // namespace gradcomp::cpu::inline GRADCOMP_CPU_ABI::detail

namespace gradcomp::exec::inline GRADCOMP_CPU_ABI {

/// maxmin_quantizer on exec::par; bit-identical to exec::seq for the same seed and step, and
/// advances step the same way (not at all on error).
template <std::floating_point T>
void compress_with(const par_t& policy, maxmin_quantizer& c, std::span<const T> x, bucket_quantized_vector<T>& out) {
  namespace gd = gradcomp::detail;
  using grid = maxmin_quantizer::grid<T>;
  c.validate();
  const cpu::detail::bucket_tasks tasks{x.size(), c.bucket_size, cpu::tuning::elementwise::chunk};
  const std::size_t nb = tasks.buckets();
  const std::uint32_t top = gd::top_level(c.bits);
  cpu::workspace& ws = cpu::detail::workspace_of(policy);
  cpu::detail::pooled_array<grid> grids(ws, nb);
  // Segment extremes, for buckets longer than a task (one per task).
  cpu::detail::pooled_array<gd::bucket_extremes<T>> parts(ws, tasks.whole_buckets() ? 0 : tasks.count());
  std::atomic<bool> ok{true};
  const auto grid_fits = [&](const grid& g) { return std::isfinite(gd::maxmin_value(g.min, g.unit, top)); };

  // Pass 1: extremes and grids.
  tasks.for_each(policy, [&](std::size_t t, std::size_t begin, std::size_t end) {
    bool fine = true;
    for (std::size_t first = begin; first < end;) {
      const std::size_t last = std::min(end, (first / c.bucket_size + 1) * c.bucket_size);
      gd::bucket_extremes<T> e;
      fine &= cpu::simd::dispatch([&](auto tag) { return bucket_extremes_of(tag, x.data() + first, last - first, e); });
      if (tasks.whole_buckets()) {
        const grid g = c.grid_of(e);
        fine &= grid_fits(g);
        grids[first / c.bucket_size] = g;
      } else {
        parts[t] = e;
      }
      first = last;
    }
    if (!fine) ok.store(false, std::memory_order_relaxed);
  });
  if (ok.load() && !tasks.whole_buckets()) {
    const std::size_t per = tasks.segments_per_bucket();
    for (std::size_t b = 0; b < nb; ++b) {
      gd::bucket_extremes<T> e = parts[b * per];
      for (std::size_t t = b * per + 1; t < std::min(tasks.count(), (b + 1) * per); ++t) {
        e.lo = std::min(e.lo, parts[t].lo);  // exact; zeros are already +0
        e.hi = std::max(e.hi, parts[t].hi);
      }
      grids[b] = c.grid_of(e);
      if (!grid_fits(grids[b])) ok.store(false, std::memory_order_relaxed);
    }
  }
  if (!ok.load()) {
    // Non-finite input, or a bucket whose top level overflows: the reference raises its
    // error before writing anything.
    c.compress(seq, x, out);
    return;
  }

  // Pass 2: the payload.
  out.dim = x.size();
  out.bucket_size = c.bucket_size;
  out.bits = c.bits;
  out.mins.resize(nb);
  out.units.resize(nb);
  out.levels.resize(x.size());
  const gd::counter_stream stream(c.seed, c.step);
  tasks.for_each(policy, [&](std::size_t, std::size_t begin, std::size_t end) {
    for (std::size_t first = begin; first < end;) {
      const std::size_t b = first / c.bucket_size;
      const std::size_t last = std::min(end, (b + 1) * c.bucket_size);
      const grid g = grids[b];
      if (first == b * c.bucket_size) {
        out.mins[b] = g.min;
        out.units[b] = g.unit;
      }
      cpu::simd::dispatch([&](auto tag) {
        maxmin_levels(tag, x.data(), first, last, g.min, g.unit, stream, out.levels.data() + first);
      });
      first = last;
    }
  });
  ++c.step;
}

}  // namespace gradcomp::exec::inline GRADCOMP_CPU_ABI
