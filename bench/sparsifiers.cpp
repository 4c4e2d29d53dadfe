// The sparsifiers through the public API: gc::compress(policy, top_k{k}, x, msg) and
// gc::compress(policy, hard_threshold{lambda}, x, msg), lambda giving the density of Top-k.
#include "common.hpp"

namespace gcbench {

namespace {

template <class C>
void run_compressor(benchmark::State& state, const dataset_spec& ds, std::size_t k, const backend& b, C c) {
  const std::span<const float> x(input(ds));
  gc::payload_t<C, float> msg;
  const thread_limit limit(b);
  with_policy(b, [&](const auto& policy) {
    if (should_warm_up(state)) gc::compress(policy, c, x, msg);
    for (auto _ : state) {
      gc::compress(policy, c, x, msg);
      benchmark::DoNotOptimize(msg);
      benchmark::ClobberMemory();
    }
  });
  set_counters(state, ds, k, b, 4.0 * static_cast<double>(ds.d), static_cast<double>(gc::sent_elements(msg)));
  state.counters["par_kernel"] = b.par && dispatch::has_par_kernel<C>;
}

}  // namespace

void register_sparsifiers(const dataset_spec& ds, const k_case& kc) {
  for (const backend& b : all_backends()) {
    add(ds, prefix_of(ds, kc), "top_k", b, [ds, k = kc.k, b](benchmark::State& state) {
      run_compressor(state, ds, k, b, gc::top_k{.k = k});
    });
    add(ds, prefix_of(ds, kc), "hard_threshold", b, [ds, k = kc.k, b](benchmark::State& state) {
      run_compressor(state, ds, k, b, gc::hard_threshold{.lambda = matching_lambda(ds, k)});
    });
  }
}

}  // namespace gcbench
