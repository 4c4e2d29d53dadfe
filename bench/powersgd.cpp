// PowerSGD's per-step compute (lowrank/powersgd.hpp, one worker: no communication) on a
// ResNet-like layer set, exec::seq (reference loops, double accumulation) against exec::par
// (BLAS where gradcomp::blas is linked). Its own binary, gradcomp_bench_powersgd.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include <gradcomp/cpu.hpp>
#include <gradcomp/lowrank/powersgd.hpp>

namespace {

namespace gc = gradcomp;

/// Three layers of ResNet-50-like shapes: a 3x3 convolution with 512 outputs (512 x 4608),
/// one with 256 (256 x 2304), and the 1000-way classifier (1000 x 2048).
const std::vector<gc::tensor_shape>& resnet_like() {
  static const std::vector<gc::tensor_shape> shapes{{512, 4608}, {256, 2304}, {1000, 2048}};
  return shapes;
}

template <class Policy>
void powersgd_step(benchmark::State& state, const Policy& policy) {
  const auto r = static_cast<std::size_t>(state.range(0));
  gc::powersgd<float> ps(resnet_like(), {.rank = r, .seed = 1});
  std::vector<float> g(ps.dim()), decoded(ps.dim());
  std::uint64_t z = 12345;
  for (float& v : g) {  // any fixed data: the cost does not depend on the values
    z = z * 6364136223846793005ULL + 1442695040888963407ULL;
    v = static_cast<float>(static_cast<double>(z >> 40) * 0x1.0p-24 - 0.5);
  }
  for (auto _ : state) {
    ps.step(policy, std::span<const float>(g), 0.01f, std::span<float>(decoded), [](std::span<float>) {});
    benchmark::DoNotOptimize(decoded.data());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()) * static_cast<std::int64_t>(ps.dim()));
  state.counters["values_sent"] = static_cast<double>(ps.values_per_step());
}

void BM_powersgd_seq(benchmark::State& state) { powersgd_step(state, gc::exec::seq); }
void BM_powersgd_par(benchmark::State& state) {
#if defined(GRADCOMP_HAVE_CBLAS)
  state.SetLabel("blas");
#else
  state.SetLabel("no blas: the reference loops");
#endif
  powersgd_step(state, gc::exec::par);
}

BENCHMARK(BM_powersgd_seq)->Arg(1)->Arg(2)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_powersgd_par)->Arg(1)->Arg(2)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
