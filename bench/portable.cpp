// Top-k and hard-threshold as in sparsifiers.cpp, compiled without -march flags (CMake
// builds this file apart, for the compiler's baseline x86-64 only): what a consumer built for
// distribution (a Linux package, a Python wheel) gets. Its kernels still run on the best
// instruction set of the CPU, chosen at run time (cpu/simd.hpp), so the rows
// "<kernel>.portable" should match the -march=native rows "<kernel>" of the same run
// (docs/performance.md, target: within 1.25x at d = 1e8). The label says which SIMD target
// the portable build chose.
//
// The two builds' exec::par back ends live in different inline namespaces (cpu/policy.hpp),
// so sharing one binary is sound: the linker cannot swap one file's kernels for the other's.
// This file's own helpers have internal linkage for the same reason (a template shared with
// the native files, such as run_compressor<top_k>, would be merged with theirs).
#include "common.hpp"

namespace gcbench {

namespace {

template <class C>
void run_portable(benchmark::State& state, const dataset_spec& ds, std::size_t k, const backend& b, C c) {
  const std::span<const float> x(input(ds));
  gc::payload_t<C, float> msg;
  const thread_limit limit(b);
  if (should_warm_up(ds)) gc::compress(gc::exec::par, c, x, msg);
  for (auto _ : state) {
    gc::compress(gc::exec::par, c, x, msg);
    benchmark::DoNotOptimize(msg);
    benchmark::ClobberMemory();
  }
  set_counters(state, ds, k, b, 4.0 * static_cast<double>(ds.d), static_cast<double>(gc::sent_elements(msg)));
  state.counters["par_kernel"] = 1;
  state.SetLabel(std::string("portable build, SIMD ") + gc::cpu::simd_target());
}

}  // namespace

void register_portable(const dataset_spec& ds, const k_case& kc) {
  const backend b = par_backends().back();  // all threads
  add(ds, prefix_of(ds, kc), "top_k.portable", b, [ds, k = kc.k, b](benchmark::State& state) {
    run_portable(state, ds, k, b, gc::top_k{.k = k});
  });
  add(ds, prefix_of(ds, kc), "hard_threshold.portable", b, [ds, k = kc.k, b](benchmark::State& state) {
    run_portable(state, ds, k, b, gc::hard_threshold{.lambda = matching_lambda(ds, k)});
  });
}

}  // namespace gcbench
