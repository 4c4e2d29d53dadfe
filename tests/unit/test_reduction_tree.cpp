// The pieces the CUDA back end sums with (detail::pairwise_accumulator, aligned_run_sum,
// fold_lanes: __host__ __device__), checked on the CPU against the reference tree. The last
// test composes them exactly as cuda/reduce.cuh's kernels do (a thread per lane and run of
// 16 rows, 32 runs per lane, then 1024 threads over the block sums), so a GPU that runs
// those kernels computes detail::squared_norm's bits; tests/cuda checks that on a GPU.
#include <doctest/doctest.h>

#include <gradcomp/detail/reduce.hpp>

#include <bit>
#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "test_support.hpp"

namespace gc = gradcomp;
namespace gt = gradcomp_test;

TEST_CASE("pairwise_accumulator: the pairwise tree's bits for every power of two of leaves") {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int levels = 0; levels <= 14; ++levels) {
    const std::size_t leaves = std::size_t{1} << levels;
    for (const std::size_t real : {leaves, leaves / 2 + 1, std::size_t{1}}) {
      if (real > leaves) continue;
      std::vector<double> v(real);
      for (double& x : v) x = u(rng) * std::ldexp(1.0, static_cast<int>(rng() % 80) - 40);
      const auto leaf = [&](std::size_t i) { return v[i]; };
      gc::detail::pairwise_accumulator<14> acc;
      for (std::size_t i = 0; i < leaves; ++i) acc.push(i < real ? v[i] : 0.0);
      const double want = gc::detail::pairwise_sum(real, leaf);
      CAPTURE(levels);
      CAPTURE(real);
      CHECK(std::bit_cast<std::uint64_t>(acc.result()) == std::bit_cast<std::uint64_t>(want));
      CHECK(std::bit_cast<std::uint64_t>(gc::detail::aligned_run_sum<14>(leaf, 0, leaves, real)) ==
            std::bit_cast<std::uint64_t>(want));
    }
  }
}

namespace {

/// cuda/reduce.cuh's ordered sum, its threads run one after another.
template <class T>
double gpu_decomposition_squared_norm(const std::vector<T>& x) {
  constexpr std::size_t lanes = 8, groups = 32, rows = 16, block = 4096, threads = 1024;
  const std::size_t n = x.size();
  const std::size_t blocks = (n + block - 1) / block;
  std::vector<double> block_sums(blocks);
  for (std::size_t b = 0; b < blocks; ++b) {  // block_sums_kernel
    const std::size_t base = b * block;
    double run_sum[groups][lanes];
    for (std::size_t group = 0; group < groups; ++group)
      for (std::size_t lane = 0; lane < lanes; ++lane) {
        const auto element = [&](std::size_t row) { return gc::detail::square_summand(x[base + row * lanes + lane]); };
        const std::size_t rows_here = (std::min(n - base, block) + lanes - 1 - lane) / lanes;
        run_sum[group][lane] = gc::detail::aligned_run_sum<4>(element, group * rows, rows, rows_here);
      }
    double lane_sum[lanes];
    for (std::size_t lane = 0; lane < lanes; ++lane) {
      gc::detail::pairwise_accumulator<5> runs;
      for (std::size_t g = 0; g < groups; ++g) runs.push(run_sum[g][lane]);
      lane_sum[lane] = runs.result();
    }
    block_sums[b] = gc::detail::fold_lanes(lane_sum);
  }
  // tree_sum_kernel
  const std::size_t padded = blocks <= 1 ? 1 : std::bit_ceil(blocks);
  const std::size_t per = padded > threads ? padded / threads : 1, used = padded / per;
  std::vector<double> level(used);
  const auto leaf = [&](std::size_t i) { return block_sums[i]; };
  for (std::size_t t = 0; t < used; ++t) level[t] = gc::detail::aligned_run_sum<54>(leaf, t * per, per, blocks);
  for (std::size_t width = used / 2; width >= 1; width /= 2)
    for (std::size_t t = 0; t < width; ++t) level[t] = level[2 * t] + level[2 * t + 1];
  return blocks == 0 ? 0.0 : level[0];
}

}  // namespace

TEST_CASE_TEMPLATE("the CUDA sum's decomposition gives detail::squared_norm's bits", T, float, double) {
  for (const std::size_t d : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{9}, std::size_t{4095},
                              std::size_t{4096}, std::size_t{4097}, std::size_t{100003}, std::size_t{4096 * 1024},
                              std::size_t{4096 * 1024 + 5}, std::size_t{4096 * 2900 + 77}}) {
    for (const gt::input_kind kind : {gt::input_kind::normal, gt::input_kind::heavy_tailed, gt::input_kind::denormals}) {
      CAPTURE(d);
      const std::vector<T> x = gt::make_input<T>(kind, d, d + 1);
      const double want = gc::detail::squared_norm(std::span<const T>(x));
      CHECK(std::bit_cast<std::uint64_t>(gpu_decomposition_squared_norm(x)) == std::bit_cast<std::uint64_t>(want));
    }
  }
}
