// Baselines measured in the same binary as the kernels:
//   read        the memory limit: a vectorised sum over the input (cpu::detail::l1_norm);
//   copy        a copy of the input's bytes (memcpy per 256 KiB chunk, chunks on oneTBB);
//   inplace_update  the least the error-feedback step must move: e = e + scale * g in place
//               (reads g and e, writes e), exec::feedback_input_with on exec::par with the
//               output aliasing e; the EF step's baseline;
//   same_bytes  p = e + scale * g into a third vector (reads g and e, writes p): a third more
//               traffic than the in-place update when the written vector is not in cache, kept
//               as a second row;
// and what a user would write instead (one thread, as written):
//   copy_nth_element   copy x, std::nth_element by |x| (finds the k-th magnitude only);
//   copy_partial_sort  copy x, std::partial_sort of the k largest |x|;
//   scalar_threshold   for each i: if |x_i| >= lambda, push_back(i, x_i).
#include <algorithm>
#include <cmath>
#include <cstring>

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include "common.hpp"

namespace gcbench {

namespace {

void parallel_copy(const float* src, float* dst, std::size_t n) {
  constexpr std::size_t chunk = std::size_t{1} << 16;
  const std::size_t chunks = (n + chunk - 1) / chunk;
  tbb::parallel_for(tbb::blocked_range<std::size_t>(0, chunks), [&](const tbb::blocked_range<std::size_t>& r) {
    const std::size_t begin = r.begin() * chunk, end = std::min(n, r.end() * chunk);
    std::memcpy(dst + begin, src + begin, (end - begin) * sizeof(float));
  });
}

bool by_magnitude(float a, float b) { return std::fabs(a) > std::fabs(b); }

const backend one_thread{"seq", false, 1};

}  // namespace

void register_baselines(const dataset_spec& ds) {
  const double bytes = 4.0 * static_cast<double>(ds.d);
  for (const backend& b : par_backends()) {
    add(ds, prefix_of(ds), "read", b, [ds, b, bytes](benchmark::State& state) {
      const std::span<const float> x(input(ds));
      const thread_limit limit(b);
      for (auto _ : state) benchmark::DoNotOptimize(gc::cpu::detail::l1_norm(gc::exec::par, x));
      set_counters(state, ds, 0, b, bytes, 0);
    });
    add(ds, prefix_of(ds), "copy", b, [ds, b, bytes](benchmark::State& state) {
      const std::vector<float>& x = input(ds);
      std::vector<float> dst(x.size());
      const thread_limit limit(b);
      for (auto _ : state) {
        parallel_copy(x.data(), dst.data(), x.size());
        benchmark::ClobberMemory();
      }
      set_counters(state, ds, 0, b, bytes, 0);
    });
    add(ds, prefix_of(ds), "inplace_update", b, [ds, b, bytes](benchmark::State& state) {
      const std::span<const float> g(input(ds));
      std::vector<float> e(g.size());
      const thread_limit limit(b);
      std::uint64_t call = 0;
      for (auto _ : state) {
        // +s, then -s: e stays bounded (0, s*g, 0, ...) and every call does the same work.
        const float scale = call++ % 2 == 0 ? feedback_scale : -feedback_scale;
        gc::exec::feedback_input_with(gc::exec::par, std::span<const float>(e), g, scale, std::span<float>(e));
        benchmark::ClobberMemory();
      }
      set_counters(state, ds, 0, b, 2 * bytes, 0);
    });
    add(ds, prefix_of(ds), "same_bytes", b, [ds, b, bytes](benchmark::State& state) {
      const std::span<const float> g(input(ds));
      std::vector<float> e(g.size()), p(g.size());
      const thread_limit limit(b);
      for (auto _ : state) {
        gc::exec::feedback_input_with(gc::exec::par, std::span<const float>(e), g, feedback_scale, std::span<float>(p));
        benchmark::ClobberMemory();
      }
      set_counters(state, ds, 0, b, 2 * bytes, 0);
    });
  }
}

void register_user_baselines(const dataset_spec& ds, const k_case& kc) {
  const double bytes = 4.0 * static_cast<double>(ds.d);
  const std::size_t k = std::min(kc.k, ds.d);
  add(
      ds, prefix_of(ds, kc), "copy_nth_element", one_thread,
      [ds, k, bytes](benchmark::State& state) {
        const std::vector<float>& x = input(ds);
        std::vector<float> buffer(x.size());
        for (auto _ : state) {
          std::copy(x.begin(), x.end(), buffer.begin());
          std::nth_element(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(k - 1), buffer.end(),
                           by_magnitude);
          benchmark::DoNotOptimize(buffer[k - 1]);
        }
        set_counters(state, ds, k, one_thread, bytes, static_cast<double>(k));
      });
  if (!ds.huge) {
    add(
        ds, prefix_of(ds, kc), "copy_partial_sort", one_thread,
        [ds, k, bytes](benchmark::State& state) {
          const std::vector<float>& x = input(ds);
          std::vector<float> buffer(x.size());
          for (auto _ : state) {
            std::copy(x.begin(), x.end(), buffer.begin());
            std::partial_sort(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(k), buffer.end(),
                              by_magnitude);
            benchmark::DoNotOptimize(buffer[k - 1]);
          }
          set_counters(state, ds, k, one_thread, bytes, static_cast<double>(k));
        });
  }
  add(
      ds, prefix_of(ds, kc), "scalar_threshold", one_thread,
      [ds, k, bytes](benchmark::State& state) {
        const std::vector<float>& x = input(ds);
        const auto lambda = static_cast<float>(matching_lambda(ds, k));  // a float magnitude: exact
        std::vector<std::uint32_t> indices;
        std::vector<float> values;
        for (auto _ : state) {
          indices.clear();
          values.clear();
          for (std::size_t i = 0; i < x.size(); ++i) {
            if (std::fabs(x[i]) >= lambda) {
              indices.push_back(static_cast<std::uint32_t>(i));
              values.push_back(x[i]);
            }
          }
          benchmark::DoNotOptimize(values.data());
          benchmark::ClobberMemory();
        }
        set_counters(state, ds, k, one_thread, bytes, static_cast<double>(values.size()));
      });
}

}  // namespace gcbench
