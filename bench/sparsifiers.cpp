// The sparsifiers through the public API: gc::compress(policy, top_k{k}, x, msg) and
// gc::compress(policy, hard_threshold{lambda}, x, msg), lambda giving the density of Top-k.
#include "common.hpp"

namespace gcbench {

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
