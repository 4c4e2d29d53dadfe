// Case 3's other compressors: scaled_sign, blockwise_sign(256), qsgd (s = 127, 8-bit
// levels) and random_k at the Top-k k, and decompress_add of the Top-k message into a dense
// vector. GB/s counts the d floats of the dense input (or of the dense vector that
// decompress_add updates), so random_k and decompress_add, which touch only k entries, can
// beat the read baseline.
#include "common.hpp"

namespace gcbench {

void register_dense(const dataset_spec& ds) {
  for (const backend& b : all_backends()) {
    add(ds, prefix_of(ds), "scaled_sign", b,
        [ds, b](benchmark::State& state) { run_compressor(state, ds, 0, b, gc::scaled_sign{}); });
    add(ds, prefix_of(ds), "blockwise_sign", b,
        [ds, b](benchmark::State& state) { run_compressor(state, ds, 0, b, gc::blockwise_sign{.block_size = 256}); });
    add(ds, prefix_of(ds), "qsgd", b,
        [ds, b](benchmark::State& state) { run_compressor(state, ds, 0, b, gc::qsgd{.s = 127, .seed = 1}); });
  }
}

void register_sparse_extras(const dataset_spec& ds, const k_case& kc) {
  for (const backend& b : all_backends()) {
    add(ds, prefix_of(ds, kc), "random_k", b, [ds, k = kc.k, b](benchmark::State& state) {
      run_compressor(state, ds, k, b, gc::random_k{.k = k, .seed = 1});
    });
    add(ds, prefix_of(ds, kc), "decompress_add", b, [ds, k = kc.k, b](benchmark::State& state) {
      const auto& msg = top_k_message(ds, k);
      std::vector<float> dense(ds.d);
      const thread_limit limit(b);
      with_policy(b, [&](const auto& policy) {
        for (auto _ : state) {
          gc::decompress_add(policy, msg, dense);
          benchmark::ClobberMemory();
        }
      });
      set_counters(state, ds, k, b, 4.0 * static_cast<double>(ds.d), static_cast<double>(msg.nnz()));
      state.counters["par_kernel"] =
          b.par && dispatch::has_par_decompress<gc::sparse_vector<float>>;
    });
  }
}

}  // namespace gcbench
